/*
 * The client side of an XMPP stream (RFC 6120), one simulated user per
 * sb_sess_t: stream header, SASL (auth.c), stream restart, resource
 * binding, stream management on request (XEP-0198, --sm: enable, count
 * stanzas both ways, answer <r/>; no resumption and no resending), initial
 * presence; then one2one messages or roster-presence updates out and in. The
 * server's bytes go through the project's incremental parser (core/xml),
 * whose state is the session's 64-byte sz_xml_parser_t; an element tree is
 * built only for the rare elements whose content matters (features, SASL,
 * errors, server iqs), never for a delivered message.
 *
 * Every stream error, SASL failure and stanza error is counted by
 * condition (sb_err). Owner thread of the session only (sb_cur).
 */
#include "bench/stanza_bench/sb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/stanza_bench/tls.h"
#include "core/xml/tree.h"

#define NS_SASL    "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND    "urn:ietf:params:xml:ns:xmpp-bind"
#define NS_TLS     "urn:ietf:params:xml:ns:xmpp-tls"
#define NS_STREAMS "urn:ietf:params:xml:ns:xmpp-streams"
#define NS_STANZAS "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_PING    "urn:xmpp:ping"
#define NS_SM      "urn:xmpp:sm:3"

#define BIND_ID "sb-bind"
#define NS_ROSTER "jabber:iq:roster"
#define ROSTER_ID "sb-roster"
#define CARBONS_ID "sb-carbons"
#define NS_CARBONS "urn:xmpp:carbons:2"
/* A message body starts with this tag, the intended send time (ns,
 * CLOCK_MONOTONIC) and the global message number. */
#define BODY_TAG "sb "

static void sendz(sb_thread_t *t, sb_sess_t *s, const char *str)
{
    sb_send(t, s, str, strlen(str));
}

static inline void bump(uint64_t *c)
{
    __atomic_store_n(c, *c + 1, __ATOMIC_RELAXED);
}

/* Sends one stanza (message, presence, iq): with stream management on,
 * the server acks it by count, so it is counted (XEP-0198 §4). */
static void send_stanza(sb_thread_t *t, sb_sess_t *s, const char *p, size_t n)
{
    if (s->sm == SB_SM_ON)
        s->sm_out++;
    sb_send(t, s, p, n);
}

/* The 0-based user of session <s> (sb.h: session j is resource j / users
 * of user j % users). */
static uint32_t user_of(const sb_conf_t *cf, const sb_sess_t *s)
{
    return s->user % cf->users;
}

/* The resource of session index <j>: --resource, followed by the index
 * among the user's sessions when there are several. */
static void resource_of(const sb_conf_t *cf, uint32_t j, char *out, size_t cap)
{
    if (cf->resources > 1)
        snprintf(out, cap, "%s%u", cf->resource, j / cf->users);
    else
        snprintf(out, cap, "%s", cf->resource);
}

static void sendz_stanza(sb_thread_t *t, sb_sess_t *s, const char *str)
{
    send_stanza(t, s, str, strlen(str));
}

static void send_header(sb_thread_t *t, sb_sess_t *s)
{
    char buf[512];
    int n = snprintf(buf, sizeof(buf),
                     "<?xml version='1.0'?><stream:stream to='%s' version='1.0' "
                     "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
                     t->run->conf.domain);
    sb_send(t, s, buf, (size_t)n);
}

/* Ends the stream politely (our closing tag), then the session. */
static void end_stream(sb_thread_t *t, sb_sess_t *s)
{
    sendz(t, s, "</stream:stream>");
    sb_close(t, s);
}

void sb_xmpp_connected(sb_thread_t *t, sb_sess_t *s)
{
    s->state = SB_ST_FEAT1;
    send_header(t, s);
}

static bool name_is(const char *span, const sz_xml_head_t *h, const char *name)
{
    size_t n = strlen(name);
    return h->name.len == n && memcmp(span + h->name.off, name, n) == 0;
}

static bool attr_is(const char *span, const sz_xml_head_t *h, enum sz_xml_attr_idx i,
                    const char *v)
{
    size_t n = strlen(v);
    return h->attr[i].off && h->attr[i].len == n && memcmp(span + h->attr[i].off, v, n) == 0;
}

/* The first child element of <n> in namespace <ns>: a condition. */
static const char *condition(const sz_xml_node_t *n, const char *ns)
{
    for (const sz_xml_node_t *c = n ? n->children : NULL; c; c = c->next)
        if (c->kind == SZ_XML_ELEM && c->ns && strcmp(c->ns, ns) == 0 &&
            strcmp(c->name, "text") != 0)
            return c->name;
    return "undefined-condition";
}

static void count(sb_thread_t *t, const char *kind, const char *cond)
{
    char name[56];
    snprintf(name, sizeof(name), "%s:%s", kind, cond);
    sb_err(t, name);
}

/* A stanza of type 'error': counted as stanza:<kind>:<condition>. */
static void stanza_error(sb_thread_t *t, const char *span, size_t len, const sz_xml_head_t *h)
{
    sz_xml_tree_t *tr = sz_xml_tree_parse(span, len, h->scope);
    const sz_xml_node_t *root = tr ? sz_xml_tree_root(tr) : NULL;
    const sz_xml_node_t *e = root ? sz_xml_child(root, "error", NULL) : NULL;
    char kind[32];
    snprintf(kind, sizeof(kind), "stanza:%.*s", (int)h->name.len, span + h->name.off);
    count(t, kind, condition(e, NS_STANZAS));
    sz_xml_tree_free(tr);
}

/* ---- features, SASL, binding -------------------------------------------- */

static void start_auth(sb_thread_t *t, sb_sess_t *s, const sz_xml_node_t *mechs)
{
    const sb_conf_t *cf = &t->run->conf;
    const char *want = sb_mech_name(cf->mech);
    bool offered = false;
    for (const sz_xml_node_t *m = sz_xml_child(mechs, "mechanism", NS_SASL); m;
         m = sz_xml_next(m, "mechanism", NS_SASL))
        if (strcmp(m->text, want) == 0)
            offered = true;
    if (!offered) {
        sb_err(t, "client:mechanism-not-offered");
        end_stream(t, s);
        return;
    }
    char user[160], pass[160], out[SB_AUTH_OUT_MAX];
    uint8_t cb[SB_TLS_EXPORTER_BYTES];
    if (sb_mech_is_plus(cf->mech) && sb_tls_exporter(s, cb) < 0) {
        sb_err(t, "client:no-tls-exporter");
        end_stream(t, s);
        return;
    }
    sb_pattern(cf->user_pattern, cf->first + user_of(cf, s), user, sizeof(user));
    sb_pattern(cf->pass_pattern, cf->first + user_of(cf, s), pass, sizeof(pass));
    s->auth = sb_auth_start_cb(cf->mech, user, pass, NULL, sb_mech_is_plus(cf->mech) ? cb : NULL,
                               out);
    if (!s->auth) {
        sb_err(t, "client:credentials-too-long");
        end_stream(t, s);
        return;
    }
    char buf[SB_AUTH_OUT_MAX + 128];
    int n = snprintf(buf, sizeof(buf), "<auth xmlns='" NS_SASL "' mechanism='%s'>%s</auth>", want,
                     out);
    sb_send(t, s, buf, (size_t)n);
    s->state = SB_ST_AUTH;
}

static void on_features(sb_thread_t *t, sb_sess_t *s, const char *span, size_t len,
                        const sz_xml_head_t *h)
{
    if (s->state != SB_ST_FEAT1 && s->state != SB_ST_FEAT2)
        return; /* features at another time: nothing to do */
    sz_xml_tree_t *tr = sz_xml_tree_parse(span, len, h->scope);
    const sz_xml_node_t *root = tr ? sz_xml_tree_root(tr) : NULL;
    if (!root) {
        sb_err(t, "client:bad-features");
        end_stream(t, s);
    } else if (s->state == SB_ST_FEAT1 && t->run->conf.tls == SB_TLS_STARTTLS && !s->ssl) {
        if (sz_xml_child(root, "starttls", NS_TLS)) {
            sendz(t, s, "<starttls xmlns='" NS_TLS "'/>");
            s->state = SB_ST_STARTTLS;
        } else {
            sb_err(t, "client:starttls-not-offered");
            end_stream(t, s);
        }
    } else if (s->state == SB_ST_FEAT1) {
        const sz_xml_node_t *mechs = sz_xml_child(root, "mechanisms", NS_SASL);
        if (mechs) {
            start_auth(t, s, mechs);
        } else {
            /* --tls none, and the server wants STARTTLS first */
            sb_err(t, sz_xml_child(root, "starttls", NS_TLS) ? "client:tls-required"
                                                             : "client:no-sasl-mechanisms");
            end_stream(t, s);
        }
    } else if (!sz_xml_child(root, "bind", NS_BIND)) {
        sb_err(t, "client:no-bind-feature");
        end_stream(t, s);
    } else {
        /* XEP-0198 §2: offered among the features after SASL; enabled
         * after the bind (--sm) */
        if (t->run->conf.sm && sz_xml_child(root, "sm", NS_SM))
            s->sm = SB_SM_OFFERED;
        char buf[256], res[160];
        resource_of(&t->run->conf, s->user, res, sizeof(res));
        int n = snprintf(buf, sizeof(buf),
                         "<iq type='set' id='" BIND_ID "'><bind xmlns='" NS_BIND
                         "'><resource>%s</resource></bind></iq>",
                         res);
        sb_send(t, s, buf, (size_t)n);
        s->state = SB_ST_BIND;
    }
    sz_xml_tree_free(tr);
}

static void on_sasl(sb_thread_t *t, sb_sess_t *s, const char *span, size_t len,
                    const sz_xml_head_t *h)
{
    if (s->state != SB_ST_AUTH) {
        sb_err(t, "client:unexpected-sasl");
        end_stream(t, s);
        return;
    }
    sz_xml_tree_t *tr = sz_xml_tree_parse(span, len, h->scope);
    const sz_xml_node_t *root = tr ? sz_xml_tree_root(tr) : NULL;
    const char *why = NULL;
    if (!root) {
        sb_err(t, "client:bad-sasl-element");
        end_stream(t, s);
    } else if (name_is(span, h, "challenge")) {
        char out[SB_AUTH_OUT_MAX], buf[SB_AUTH_OUT_MAX + 64];
        if (sb_auth_step(s->auth, root->text, root->text_len, out, &why) < 0) {
            count(t, "client", why);
            end_stream(t, s);
        } else {
            int n = snprintf(buf, sizeof(buf), "<response xmlns='" NS_SASL "'>%s</response>", out);
            sb_send(t, s, buf, (size_t)n);
        }
    } else if (name_is(span, h, "success")) {
        if (sb_auth_finish(s->auth, root->text, root->text_len, &why) < 0) {
            count(t, "client", why);
            end_stream(t, s);
        } else {
            sb_auth_free(s->auth);
            s->auth = NULL;
            /* RFC 6120 §6.4.6: a new stream on the same connection. */
            sz_xml_parser_reset(&s->xp);
            s->state = SB_ST_FEAT2;
            send_header(t, s);
        }
    } else if (name_is(span, h, "failure")) {
        count(t, "sasl", condition(root, NS_SASL));
        end_stream(t, s);
    }
    sz_xml_tree_free(tr);
}

/* ---- stanzas ---------------------------------------------------------------- */

/* Bound (and stream management settled): the initial presence, and the
 * login is done. */
static void go_online(sb_thread_t *t, sb_sess_t *s)
{
    /* roster-presence: the roster get goes out with the initial presence
     * (a server without rosters answers it with an error, counted by
     * condition) */
    if (t->run->conf.scenario == SB_SC_ROSTER)
        sendz_stanza(t, s, "<iq type='get' id='" ROSTER_ID "'><query xmlns='" NS_ROSTER "'/></iq>");
    /* --carbons: XEP-0280 §4, sent with the presence, answered later */
    if (t->run->conf.carbons)
        sendz_stanza(t, s, "<iq type='set' id='" CARBONS_ID "'><enable xmlns='" NS_CARBONS
                           "'/></iq>");
    sendz_stanza(t, s, "<presence/>");
    sb_online(t, s);
}

/* Answers an iq get/set from the server: a ping and a roster push (RFC 6121
 * §2.1.6: the client acknowledges it) get a result, anything else
 * service-unavailable (RFC 6120 §8.2.3 wants an answer to both). */
static void on_server_iq(sb_thread_t *t, sb_sess_t *s, const char *span, size_t len,
                         const sz_xml_head_t *h)
{
    sz_xml_tree_t *tr = sz_xml_tree_parse(span, len, h->scope);
    const sz_xml_node_t *root = tr ? sz_xml_tree_root(tr) : NULL;
    const sz_xml_str_t *id = &h->attr[SZ_XML_A_ID], *from = &h->attr[SZ_XML_A_FROM];
    /* Raw values are copied as they came: a raw value holding ' was
     * quoted with " (and then holds no "), so quote it the same way. */
    char q1 = id->off && memchr(span + id->off, '\'', id->len) ? '"' : '\'';
    char q2 = from->off && memchr(span + from->off, '\'', from->len) ? '"' : '\'';
    char buf[1600];
    int n;
    bool push =
        root && attr_is(span, h, SZ_XML_A_TYPE, "set") && sz_xml_child(root, "query", NS_ROSTER);
    /* a roster push comes from our own account, often without 'from'
     * (RFC 6121 §2.1.6): the answer then has no 'to' */
    char to[1100] = "";
    if (from->off && from->len > sizeof(to) - 8)
        goto out; /* no JID is that long: not worth an answer */
    if (from->off)
        snprintf(to, sizeof(to), " to=%c%.*s%c", q2, (int)from->len, span + from->off, q2);
    if (root && (sz_xml_child(root, "ping", NS_PING) || push))
        n = snprintf(buf, sizeof(buf), "<iq type='result' id=%c%.*s%c%s/>", q1, (int)id->len,
                     span + id->off, q1, to);
    else
        n = snprintf(buf, sizeof(buf),
                     "<iq type='error' id=%c%.*s%c%s><error type='cancel'>"
                     "<service-unavailable xmlns='" NS_STANZAS "'/></error></iq>",
                     q1, (int)id->len, span + id->off, q1, to);
    if (n > 0 && (size_t)n < sizeof(buf) && id->off)
        send_stanza(t, s, buf, (size_t)n);
out:
    sz_xml_tree_free(tr);
}

static uint64_t parse_u64(const char **pp, const char *end)
{
    const char *p = *pp;
    uint64_t v = 0;
    while (p < end && *p >= '0' && *p <= '9')
        v = v * 10 + (uint64_t)(*p++ - '0');
    *pp = p;
    return v;
}

/* A message (body) or presence (status) of the tool for one of our users:
 * its latency from the intended send time in the text of its <tag> child
 * (open loop). Returns false for anything else. */
static bool on_timed(sb_thread_t *t, const char *span, size_t len, const char *tag)
{
    const char *end = span + len;
    const char *b = memmem(span, len, tag, strlen(tag));
    const char *gt = b ? memchr(b, '>', (size_t)(end - b)) : NULL;
    const char *p = gt ? gt + 1 : NULL;
    if (!p || (size_t)(end - p) < sizeof(BODY_TAG) || memcmp(p, BODY_TAG, 3) != 0)
        return false;
    p += 3;
    const char *q = p;
    uint64_t when = parse_u64(&p, end);
    if (p == q)
        return false;
    uint64_t now = sb_now_ns();
    uint64_t lat = now > when ? now - when : 0;
    sb_hist_add(&t->deliver_h, lat);
    sb_hist_add(&t->ival_h, lat);
    if (lat > (uint64_t)(t->run->conf.loss_timeout * 1e9))
        __atomic_store_n(&t->c.late, t->c.late + 1, __ATOMIC_RELAXED);
    else
        __atomic_store_n(&t->c.received, t->c.received + 1, __ATOMIC_RELAXED);
    return true;
}

/* The answer to the login's roster get: its items are counted, and with
 * --broadcast each roster must hold the <contacts> items provisioned
 * (`stanza-bench provision --contacts`), or the run measures another
 * fan-out than it says. */
static void on_roster_result(sb_thread_t *t, const char *span, size_t len, const sz_xml_head_t *h)
{
    sz_xml_tree_t *tr = sz_xml_tree_parse(span, len, h->scope);
    const sz_xml_node_t *root = tr ? sz_xml_tree_root(tr) : NULL;
    const sz_xml_node_t *q = root ? sz_xml_child(root, "query", NS_ROSTER) : NULL;
    uint64_t n = 0;
    for (const sz_xml_node_t *i = q ? sz_xml_child(q, "item", NS_ROSTER) : NULL; i;
         i = sz_xml_next(i, "item", NS_ROSTER))
        n++;
    bump(&t->c.roster_results);
    __atomic_store_n(&t->c.roster_items, t->c.roster_items + n, __ATOMIC_RELAXED);
    if (!q)
        sb_err(t, "client:roster-result-without-query");
    else if (t->run->conf.broadcast && n != t->run->conf.contacts)
        sb_err(t, "client:roster-size-not-contacts");
    sz_xml_tree_free(tr);
}

/* A presence from <s>'s own account: the server's copy of our own
 * broadcast to all our resources (RFC 6121 §4.4.2), not a delivery. */
static bool from_self(sb_thread_t *t, sb_sess_t *s, const char *span, const sz_xml_head_t *h)
{
    const sz_xml_str_t *from = &h->attr[SZ_XML_A_FROM];
    if (!from->off)
        return false;
    char me[320], u[160];
    sb_pattern(t->run->conf.user_pattern, t->run->conf.first + user_of(&t->run->conf, s), u,
               sizeof(u));
    int n = snprintf(me, sizeof(me), "%s@%s", u, t->run->conf.domain);
    const char *f = span + from->off;
    return n > 0 && from->len >= (size_t)n && memcmp(f, me, (size_t)n) == 0 &&
           (from->len == (size_t)n || f[n] == '/');
}

static void on_stanza(sb_thread_t *t, sb_sess_t *s, const char *span, size_t len,
                      const sz_xml_head_t *h)
{
    bool is_error = attr_is(span, h, SZ_XML_A_TYPE, "error");
    if (name_is(span, h, "message")) {
        if (is_error) {
            stanza_error(t, span, len, h);
            __atomic_store_n(&t->c.bounced, t->c.bounced + 1, __ATOMIC_RELAXED);
        } else if (memmem(span, len, NS_CARBONS, sizeof(NS_CARBONS) - 1)) {
            /* a XEP-0280 copy wraps a message of the tool with its body:
             * the original's delivery is what is timed */
            bump(&t->c.carbons_received);
        } else if (!on_timed(t, span, len, "<body")) {
            sb_err(t, "client:foreign-message");
        }
    } else if (name_is(span, h, "iq")) {
        if (s->state == SB_ST_BIND && attr_is(span, h, SZ_XML_A_ID, BIND_ID)) {
            if (!attr_is(span, h, SZ_XML_A_TYPE, "result")) {
                stanza_error(t, span, len, h);
                end_stream(t, s);
            } else if (s->sm == SB_SM_OFFERED) {
                /* XEP-0198 §3: enable after the bind, before the initial
                 * presence; the login ends with the answer (on_sm), so
                 * its latency includes that round trip */
                sendz(t, s, "<enable xmlns='" NS_SM "'/>");
                s->sm_out = 0;
                s->state = SB_ST_SM;
            } else {
                if (t->run->conf.sm)
                    bump(&t->c.sm_unsupported); /* not an error: goes on without */
                go_online(t, s);
            }
        } else if (is_error) {
            stanza_error(t, span, len, h);
        } else if (attr_is(span, h, SZ_XML_A_ID, CARBONS_ID) &&
                   attr_is(span, h, SZ_XML_A_TYPE, "result")) {
            bump(&t->c.carbons_enabled);
        } else if (attr_is(span, h, SZ_XML_A_ID, ROSTER_ID) &&
                   attr_is(span, h, SZ_XML_A_TYPE, "result")) {
            on_roster_result(t, span, len, h);
        } else if (attr_is(span, h, SZ_XML_A_TYPE, "get") ||
                   attr_is(span, h, SZ_XML_A_TYPE, "set")) {
            on_server_iq(t, s, span, len, h);
        }
    } else if (name_is(span, h, "presence")) {
        if (is_error)
            stanza_error(t, span, len, h);
        else if (t->run->conf.scenario == SB_SC_ROSTER &&
                 !(t->run->conf.broadcast && from_self(t, s, span, h)))
            on_timed(t, span, len, "<status"); /* others: initial presences, probe answers */
    }
}

/* ---- stream management (XEP-0198) -------------------------------------------- */

static void send_ack(sb_thread_t *t, sb_sess_t *s)
{
    char buf[64];
    int n = snprintf(buf, sizeof(buf), "<a xmlns='" NS_SM "' h='%u'/>", s->sm_in);
    sb_send(t, s, buf, (size_t)n);
    bump(&t->c.sm_acks_sent);
}

/* A stream management nonza from the server. The tool neither resumes
 * nor resends, so a server's <a/> is only checked: it cannot ack more
 * stanzas than were sent (mod 2^32). */
static void on_sm(sb_thread_t *t, sb_sess_t *s, const char *span, size_t len,
                  const sz_xml_head_t *h)
{
    bool answer = name_is(span, h, "enabled") || name_is(span, h, "failed");
    if (answer && s->state != SB_ST_SM) {
        sb_err(t, "client:unexpected-sm-answer");
    } else if (name_is(span, h, "enabled")) {
        s->sm = SB_SM_ON;
        s->sm_in = 0; /* the server counts its stanzas from <enabled/> on */
        bump(&t->c.sm_enabled);
        go_online(t, s);
    } else if (name_is(span, h, "failed")) {
        /* XEP-0198 §3: a stanza error condition, e.g. unexpected-request */
        sz_xml_tree_t *tr = sz_xml_tree_parse(span, len, h->scope);
        count(t, "sm", condition(tr ? sz_xml_tree_root(tr) : NULL, NS_STANZAS));
        sz_xml_tree_free(tr);
        s->sm = SB_SM_FAILED;
        bump(&t->c.sm_failed);
        go_online(t, s);
    } else if (s->sm != SB_SM_ON) {
        sb_err(t, "client:unexpected-sm-element"); /* <r/> or <a/> without <enabled/> */
    } else if (name_is(span, h, "r")) {
        bump(&t->c.sm_requests);
        send_ack(t, s);
    } else if (name_is(span, h, "a")) {
        uint32_t acked;
        bump(&t->c.sm_acks_received);
        sz_xml_tree_t *tr = sz_xml_tree_parse(span, len, h->scope);
        const sz_xml_node_t *root = tr ? sz_xml_tree_root(tr) : NULL;
        if (!root || !sz_xml_attr_u32(root, "h", &acked))
            sb_err(t, "client:sm-ack-without-h");
        else if ((uint32_t)(s->sm_out - acked) > UINT32_MAX / 2)
            sb_err(t, "client:sm-ack-beyond-sent");
        sz_xml_tree_free(tr);
    }
}

bool sb_xmpp_final_ack(sb_thread_t *t, sb_sess_t *s)
{
    if (s->sm != SB_SM_ON || s->state != SB_ST_ONLINE)
        return false;
    send_ack(t, s);
    return true;
}

/* message, presence or iq: a stanza, counted for XEP-0198 'h' */
static bool is_stanza(const char *span, const sz_xml_head_t *h)
{
    return name_is(span, h, "message") || name_is(span, h, "presence") || name_is(span, h, "iq");
}

/* ---- parser callbacks ---------------------------------------------------------- */

static int on_element(void *ud, const char *span, size_t len, const sz_xml_head_t *h)
{
    sb_sess_t *s = ud;
    sb_thread_t *t = sb_cur;
    if (s->state == SB_ST_CLOSED)
        return 1;
    switch (h->ns_id) {
    case SZ_XML_NS_STREAMS:
        if (name_is(span, h, "features")) {
            on_features(t, s, span, len, h);
        } else if (name_is(span, h, "error")) {
            sz_xml_tree_t *tr = sz_xml_tree_parse(span, len, h->scope);
            count(t, "stream", condition(tr ? sz_xml_tree_root(tr) : NULL, NS_STREAMS));
            sz_xml_tree_free(tr);
            end_stream(t, s);
        }
        break;
    case SZ_XML_NS_SASL:
        on_sasl(t, s, span, len, h);
        break;
    case SZ_XML_NS_TLS:
        if (s->state != SB_ST_STARTTLS) {
            sb_err(t, "client:unexpected-starttls-element");
            end_stream(t, s);
        } else if (name_is(span, h, "proceed")) {
            /* RFC 6120 §5.4.3.3: the handshake, then a new stream; what
             * follows <proceed/> in this chunk is TLS (sb_xmpp_input). */
            sz_xml_parser_reset(&s->xp);
            if (sb_tls_start(t, s) < 0)
                sb_close(t, s);
            return 1;
        } else {
            sb_err(t, "starttls:failure");
            sb_close(t, s); /* the server closes the stream (§5.4.2.2) */
        }
        break;
    case SZ_XML_NS_CLIENT:
        /* 'h' counts every stanza handled, ignored ones included */
        if (s->sm == SB_SM_ON && is_stanza(span, h))
            s->sm_in++;
        if (s->state >= SB_ST_BIND)
            on_stanza(t, s, span, len, h);
        break;
    case SZ_XML_NS_SM:
        if (s->state >= SB_ST_SM)
            on_sm(t, s, span, len, h);
        else
            sb_err(t, "client:unexpected-sm-element");
        break;
    default:
        break; /* other nonzas: ignored */
    }
    return s->state == SB_ST_CLOSED;
}

static int on_end(void *ud)
{
    sb_sess_t *s = ud;
    sb_thread_t *t = sb_cur;
    if (s->state != SB_ST_CLOSED) {
        sb_err(t, s->state == SB_ST_ONLINE ? "stream-closed-by-server"
                                           : "stream-closed-by-server-in-login");
        end_stream(t, s);
    }
    return 1;
}

const sz_xml_ops_t sb_xmpp_ops = {NULL, on_element, on_end};

void sb_xmpp_input(sb_thread_t *t, sb_sess_t *s, const char *p, size_t n)
{
    while (n && s->state != SB_ST_CLOSED) {
        ssize_t k = sz_xml_parser_feed(&s->xp, p, n);
        if (k < 0) {
            count(t, "client-parse", sz_stream_err_name((enum sz_stream_err)-k));
            end_stream(t, s);
            return;
        }
        if (k == 0)
            break;
        p += k;
        n -= (size_t)k;
        if (s->state == SB_ST_TLS) {
            /* <proceed/> was parsed: the rest is the server's TLS */
            if (n)
                sb_tls_input(t, s, p, n);
            return;
        }
    }
}

/* The thread's message formatting buffer. */
static __thread char *buf;
static __thread size_t cap;

void sb_xmpp_thread_exit(void)
{
    free(buf);
    buf = NULL;
    cap = 0;
}

void sb_xmpp_send_message(sb_thread_t *t, sb_sess_t *s, uint64_t when, uint64_t seq)
{
    const sb_conf_t *cf = &t->run->conf;
    size_t need = (size_t)cf->msg_size + 512;
    if (cap < need) {
        free(buf);
        buf = malloc(need);
        if (!buf)
            abort();
        cap = need;
    }
    char to[160], res[160] = "";
    sb_pattern(cf->user_pattern, cf->first + (user_of(cf, s) ^ 1u), to, sizeof(to));
    /* with --resources, to the partner's first resource (a full JID), so
     * that each message has one original delivery, as with one resource */
    if (cf->resources > 1) {
        res[0] = '/';
        resource_of(cf, 0, res + 1, sizeof(res) - 1);
    }
    int n = snprintf(buf, cap,
                     "<message to='%s@%s%s' type='chat' id='m%llu'><body>" BODY_TAG "%llu %llu ",
                     to, cf->domain, res, (unsigned long long)seq, (unsigned long long)when,
                     (unsigned long long)seq);
    /* the body is padded with 'x' to msg_size bytes */
    size_t body = (size_t)n - (size_t)(strstr(buf, "<body>") + 6 - buf);
    while (body < cf->msg_size && (size_t)n + 32 < cap) {
        buf[n++] = 'x';
        body++;
    }
    n += snprintf(buf + n, cap - (size_t)n, "</body></message>");
    send_stanza(t, s, buf, (size_t)n);
}

void sb_xmpp_send_presence(sb_thread_t *t, sb_sess_t *s, uint64_t when, uint64_t seq)
{
    const sb_conf_t *cf = &t->run->conf;
    if (cf->broadcast) {
        /* RFC 6121 §4.4: no 'to'; the server sends it to every contact
         * with subscription from or both */
        char pb[256];
        int n =
            snprintf(pb, sizeof(pb),
                     "<presence id='p%llu'><status>" BODY_TAG "%llu %llu</status></presence>",
                     (unsigned long long)seq, (unsigned long long)when, (unsigned long long)seq);
        send_stanza(t, s, pb, (size_t)n);
        return;
    }
    /* directed mode, for servers without rosters: the tool sends the update
     * to each contact itself as directed presence (RFC 6121 §4.6), the
     * fan-out a server with rosters does for one broadcast */
    for (uint32_t i = 1; i <= cf->contacts; i++) {
        char to[160], pb[512];
        sb_pattern(cf->user_pattern, cf->first + (user_of(cf, s) + i) % cf->users, to, sizeof(to));
        int n = snprintf(pb, sizeof(pb),
                         "<presence to='%s@%s' id='p%llu'><status>" BODY_TAG
                         "%llu %llu</status></presence>",
                         to, cf->domain, (unsigned long long)seq, (unsigned long long)when,
                         (unsigned long long)seq);
        if (n > 0 && (size_t)n < sizeof(pb))
            send_stanza(t, s, pb, (size_t)n);
    }
}
