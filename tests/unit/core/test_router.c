/*
 * core/router.c through its public API: RFC 6120 §10 and RFC 6121 §8.5
 * delivery, the IQs the server answers itself, bounces, and the account
 * lookup for users with no session. Sessions are fakes that record every
 * delivered stanza (its raw XML, re-parsed for the checks, so attribute
 * order never matters) and every kick. With one reactor (n = 1) every user
 * is homed on it and nothing crosses a ring, so the reactor is a zeroed
 * struct with id and n set: no io_uring is needed.
 */
#include "core/router.h"

#include <errno.h>
#include <stdio.h>

#include "core/hooks.h"
#include "core/mem.h"
#include "core/mod/modules.h"
#include "core/xml/parser.h"
#include "core/xml/tree.h"
#include "sz_test.h"

#define NS_CLIENT   "jabber:client"
#define NS_STANZAS  "urn:ietf:params:xml:ns:xmpp-stanzas"
#define NS_PING     "urn:xmpp:ping"
#define NS_INFO     "http://jabber.org/protocol/disco#info"
#define NS_ITEMS    "http://jabber.org/protocol/disco#items"
#define NS_VERSION  "jabber:iq:version"
#define NS_REGISTER "jabber:iq:register"

#define JULIET  "juliet@example.com"
#define BALCONY JULIET "/balcony"
#define GARDEN  JULIET "/garden"
#define ROMEO   "romeo@example.com/orchard"

/* A broken fixture rather than a failed check: TAP bails out. */
#define MUST(x)                                                                                    \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            printf("Bail out! %s:%d: %s\n", __FILE__, __LINE__, #x);                               \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* Served domains: registration is enabled on the first only. */
static const char *const domains[] = {"example.com", "example.net"};
static const bool register_enabled[] = {true, false};

/* ---- fake sessions -------------------------------------------------------- */

#define MAX_GOT   16
#define MAX_FAKES 8

typedef struct fake {
    sz_session_t s;     /* first: the router hands the ops &f->s */
    char *got[MAX_GOT]; /* raw XML of each delivered stanza, in order */
    unsigned n;         /* stanzas delivered (also past MAX_GOT) */
    unsigned kicks;
} fake_t;

static sz_reactor_t reactor;
static fake_t *fakes[MAX_FAKES];
static unsigned nfakes;

static void fake_deliver(sz_session_t *s, sz_stanza_t *st)
{
    fake_t *f = (fake_t *)s;
    size_t len;
    const char *raw = sz_stanza_raw(st, &len);
    if (f->n < MAX_GOT) {
        f->got[f->n] = sz_malloc(len + 1);
        memcpy(f->got[f->n], raw, len + 1);
    }
    f->n++;
    sz_stanza_unref(st);
}

static void fake_kick(sz_session_t *s, enum sz_stream_err cond)
{
    (void)cond;
    ((fake_t *)s)->kicks++;
}

static const sz_session_ops_t fake_ops = {fake_deliver, fake_kick};

/* Forgets what <f> has received. */
static void fake_clear(fake_t *f)
{
    for (unsigned i = 0; i < f->n && i < MAX_GOT; i++)
        sz_free(f->got[i]);
    f->n = 0;
}

static void clear_all(void)
{
    for (unsigned i = 0; i < nfakes; i++)
        fake_clear(fakes[i]);
}

/* A session for <full>, not bound yet; freed by done(). */
static fake_t *fake_new(const char *full)
{
    MUST(nfakes < MAX_FAKES);
    fake_t *f = sz_calloc(1, sizeof(*f));
    int rc = sz_jid_parse(full, strlen(full), &f->s.jid);
    MUST(rc == 0);
    f->s.ops = &fake_ops;
    fakes[nfakes++] = f;
    return f;
}

/* A bound session for <full> (no session of that JID was bound before). */
static fake_t *bound(const char *full)
{
    fake_t *f = fake_new(full);
    sz_session_t *old = sz_router_bind(&reactor, &f->s);
    SZ_CHECK(old == NULL);
    return f;
}

/* A fresh router on a one-reactor node serving <domains>. */
static void setup(void)
{
    memset(&reactor, 0, sizeof(reactor));
    reactor.id = 0;
    reactor.n = 1;
    sz_router_configure(domains, 2, register_enabled);
    sz_router_set_exists(NULL, NULL);
    sz_router_init(&reactor);
}

/* Unbinds and frees every fake, then the router. */
static void done(void)
{
    for (unsigned i = 0; i < nfakes; i++) {
        fake_t *f = fakes[i];
        if (f->s.user)
            sz_router_unbind(&reactor, &f->s);
        /* A session replaced by a second bind keeps its presence: the
         * owner frees it (as net/c2s.c does on the kick). */
        sz_stanza_unref(f->s.presence);
        sz_jid_free(f->s.jid);
        fake_clear(f);
        sz_free(f);
    }
    nfakes = 0;
    SZ_CHECK_INT(sz_router_sessions(&reactor), 0);
    SZ_CHECK_INT(sz_router_pending(), 0);
    sz_router_destroy(&reactor);
}

/* ---- sending ---------------------------------------------------------------- */

/* <xml> (one jabber:client stanza without 'from') sent by the client of
 * <f>: 'from' is stamped with its full JID and 'to' parsed, as net/c2s.c
 * does before sz_router_from_client. */
static void send_from(fake_t *f, const char *xml)
{
    sz_stanza_t *st0 = sz_stanza_from_xml(xml, strlen(xml));
    MUST(st0 != NULL);
    size_t fl;
    const char *full = sz_jid_full(f->s.jid, &fl);
    sz_stanza_t *st = sz_stanza_rewrite(st0, NULL, 0, full, fl);
    sz_stanza_unref(st0);
    char dec[SZ_JID_INPUT_MAX_BYTES + 1];
    sz_jid_buf_t jb;
    sz_jid_t *to = NULL;
    ssize_t n = sz_stanza_attr(st, SZ_XML_A_TO, dec, sizeof(dec));
    if (n >= 0) {
        int rc = sz_jid_parse_into(dec, (size_t)n, &jb, sizeof(jb), &to, NULL);
        MUST(rc == 0); /* c2s answers a malformed 'to' itself */
    }
    sz_router_from_client(&reactor, &f->s, st, to);
}

/* <xml>, with its 'from', was written to a client whose stream then closed
 * unacknowledged. */
static void undelivered(const char *xml)
{
    sz_stanza_t *st = sz_stanza_from_xml(xml, strlen(xml));
    MUST(st != NULL);
    sz_router_undelivered(&reactor, st);
}

/* Initial or updated presence of priority <prio> from <f>; then every
 * fake forgets what it received. */
static void available(fake_t *f, int prio)
{
    char xml[96];
    snprintf(xml, sizeof(xml), "<presence><priority>%d</priority></presence>", prio);
    send_from(f, xml);
    clear_all();
}

/* ---- checking what was delivered ------------------------------------------ */

/* Marks "any value" in the expectations below (NULL means "absent"). */
static const char ANY[] = "(any)";

/* The <i>th stanza delivered to <f>, re-parsed (caller unrefs), or NULL
 * with a diagnostic when there is none. */
static sz_stanza_t *nth(const fake_t *f, unsigned i)
{
    if (i >= f->n || i >= MAX_GOT) {
        printf("# %s received %u stanzas, no #%u\n", sz_jid_full(f->s.jid, NULL), f->n, i);
        return NULL;
    }
    sz_stanza_t *st = sz_stanza_from_xml(f->got[i], strlen(f->got[i]));
    if (!st)
        printf("# not one element: %s\n", f->got[i]);
    return st;
}

static bool attr_is(const sz_stanza_t *st, enum sz_xml_attr_idx w, const char *name,
                    const char *want)
{
    if (want == ANY)
        return true;
    char buf[512];
    ssize_t n = sz_stanza_attr(st, w, buf, sizeof(buf));
    const char *have = n < 0 ? NULL : buf;
    if (!want && !have)
        return true;
    if (want && have && strcmp(want, have) == 0)
        return true;
    printf("# %s='%s', expected '%s' in %s\n", name, have ? have : "(absent)",
           want ? want : "(absent)", sz_stanza_raw(st, NULL));
    return false;
}

/* <st> is a <kind> stanza with these attributes (NULL: absent, ANY: any). */
static bool is(const sz_stanza_t *st, const char *kind, const char *type, const char *from,
               const char *to, const char *id)
{
    if (!st)
        return false;
    size_t nl;
    const char *name = sz_stanza_name(st, &nl);
    if (nl != strlen(kind) || memcmp(name, kind, nl) != 0) {
        printf("# expected a %s: %s\n", kind, sz_stanza_raw(st, NULL));
        return false;
    }
    bool ok = attr_is(st, SZ_XML_A_TYPE, "type", type);
    ok &= attr_is(st, SZ_XML_A_FROM, "from", from);
    ok &= attr_is(st, SZ_XML_A_TO, "to", to);
    ok &= attr_is(st, SZ_XML_A_ID, "id", id);
    return ok;
}

/* <st> is a <kind> of type error with <error type=etype> holding exactly
 * one condition, <cond/> in the stanzas namespace (RFC 6120 §8.3.2). */
static bool is_error(sz_stanza_t *st, const char *kind, const char *from, const char *to,
                     const char *id, const char *etype, const char *cond)
{
    if (!is(st, kind, "error", from, to, id))
        return false;
    const sz_xml_node_t *root = sz_stanza_tree(st);
    const sz_xml_node_t *e = root ? sz_xml_child(root, "error", NS_CLIENT) : NULL;
    if (!e) {
        printf("# no <error/>: %s\n", sz_stanza_raw(st, NULL));
        return false;
    }
    const char *t = sz_xml_attr(e, "type", NULL, NULL);
    const sz_xml_node_t *c = sz_xml_child(e, NULL, NS_STANZAS);
    if (!t || strcmp(t, etype) != 0 || !c || c->name_len != strlen(cond) ||
        memcmp(c->name, cond, c->name_len) != 0 || sz_xml_next(c, NULL, NS_STANZAS)) {
        printf("# expected error type='%s' <%s/>: %s\n", etype, cond, sz_stanza_raw(st, NULL));
        return false;
    }
    return true;
}

/* The only child element of <st> when it has exactly one, else NULL. */
static const sz_xml_node_t *payload(sz_stanza_t *st)
{
    const sz_xml_node_t *root = st ? sz_stanza_tree(st) : NULL;
    const sz_xml_node_t *c = root ? sz_xml_child(root, NULL, NULL) : NULL;
    return c && !sz_xml_next(c, NULL, NULL) ? c : NULL;
}

static bool node_is(const sz_xml_node_t *n, const char *name, const char *ns)
{
    return n && n->name_len == strlen(name) && memcmp(n->name, name, n->name_len) == 0 && n->ns &&
           n->ns_len == strlen(ns) && memcmp(n->ns, ns, n->ns_len) == 0;
}

/* Does disco#info <q> list <feature var=var/>? */
static bool has_feature(const sz_xml_node_t *q, const char *var)
{
    for (const sz_xml_node_t *f = sz_xml_child(q, "feature", NS_INFO); f;
         f = sz_xml_next(f, "feature", NS_INFO)) {
        const char *v = sz_xml_attr(f, "var", NULL, NULL);
        if (v && strcmp(v, var) == 0)
            return true;
    }
    return false;
}

/* Does disco#info <q> hold exactly one identity, <category>/<type>? */
static bool identity_is(const sz_xml_node_t *q, const char *category, const char *type)
{
    const sz_xml_node_t *id = sz_xml_child(q, "identity", NS_INFO);
    if (!id || sz_xml_next(id, "identity", NS_INFO))
        return false;
    const char *c = sz_xml_attr(id, "category", NULL, NULL);
    const char *t = sz_xml_attr(id, "type", NULL, NULL);
    return c && t && strcmp(c, category) == 0 && strcmp(t, type) == 0;
}

/* Nothing was delivered to anybody. */
static bool silent(void)
{
    bool ok = true;
    for (unsigned i = 0; i < nfakes; i++) {
        if (fakes[i]->n) {
            printf("# %s received %s\n", sz_jid_full(fakes[i]->s.jid, NULL), fakes[i]->got[0]);
            ok = false;
        }
    }
    return ok;
}

/* ---- RFC 6121 §8.5.3.1 / §8.5.2.1.1: messages ------------------------------- */

SZ_TEST(full_jid_reaches_only_that_session)
{
    setup();
    fake_t *b = bound(BALCONY), *g = bound(GARDEN), *r = bound(ROMEO);
    SZ_CHECK_INT(sz_router_sessions(&reactor), 3);
    available(b, 0);
    available(g, 0);
    send_from(r, "<message to='" GARDEN "' type='chat' id='m1'><body>hi</body></message>");
    SZ_CHECK_INT(g->n, 1);
    sz_stanza_t *st = nth(g, 0);
    SZ_CHECK(is(st, "message", "chat", ROMEO, GARDEN, "m1"));
    const sz_xml_node_t *body = payload(st);
    SZ_CHECK(body && strcmp(sz_xml_text(body, NULL), "hi") == 0);
    sz_stanza_unref(st);
    SZ_CHECK_INT(b->n, 0);
    SZ_CHECK_INT(r->n, 0);
    /* The same for the resource bound first. */
    clear_all();
    send_from(r, "<message to='" BALCONY "' type='chat' id='m3'/>");
    SZ_CHECK_INT(b->n, 1);
    SZ_CHECK(is(st = nth(b, 0), "message", "chat", ROMEO, BALCONY, "m3"));
    sz_stanza_unref(st);
    SZ_CHECK_INT(g->n + r->n, 0);
    /* A bound resource gets stanzas to its full JID before it is available. */
    fake_t *w = bound(JULIET "/window");
    clear_all();
    send_from(r, "<message to='" JULIET "/window' id='m2'/>");
    SZ_CHECK_INT(w->n, 1);
    SZ_CHECK(is(st = nth(w, 0), "message", NULL, ROMEO, JULIET "/window", "m2"));
    sz_stanza_unref(st);
    SZ_CHECK_INT(b->n + g->n + r->n, 0);
    done();
}

SZ_TEST(bare_jid_highest_priority)
{
    setup();
    fake_t *b = bound(BALCONY), *g = bound(GARDEN), *r = bound(ROMEO);
    fake_t *w = bound(JULIET "/window"); /* bound, never available */
    available(b, 5);
    available(g, 1);
    sz_stanza_t *st;
    send_from(r, "<message to='" JULIET "' type='chat' id='c1'/>");
    SZ_CHECK_INT(b->n, 1);
    SZ_CHECK(is(st = nth(b, 0), "message", "chat", ROMEO, JULIET, "c1"));
    sz_stanza_unref(st);
    SZ_CHECK_INT(g->n, 0);
    SZ_CHECK_INT(w->n, 0);
    SZ_CHECK_INT(r->n, 0);
    /* Ties: every resource of the highest priority. */
    available(g, 5);
    send_from(r, "<message to='" JULIET "' id='n1'/>"); /* type normal */
    SZ_CHECK_INT(b->n, 1);
    SZ_CHECK_INT(g->n, 1);
    SZ_CHECK(is(st = nth(b, 0), "message", NULL, ROMEO, JULIET, "n1"));
    sz_stanza_unref(st);
    SZ_CHECK(is(st = nth(g, 0), "message", NULL, ROMEO, JULIET, "n1"));
    sz_stanza_unref(st);
    SZ_CHECK_INT(w->n + r->n, 0);
    /* An unavailable resource no longer counts, whatever its priority. */
    clear_all();
    send_from(b, "<presence type='unavailable'/>");
    clear_all();
    send_from(r, "<message to='" JULIET "' type='chat' id='c2'/>");
    SZ_CHECK_INT(b->n, 0);
    SZ_CHECK_INT(g->n, 1);
    done();
}

SZ_TEST(bare_jid_headline_to_all_non_negative)
{
    setup();
    fake_t *b = bound(BALCONY), *g = bound(GARDEN), *r = bound(ROMEO);
    fake_t *w = bound(JULIET "/window");
    available(b, 5);
    available(g, 0);
    available(w, -1);
    send_from(r, "<message to='" JULIET "' type='headline' id='h1'/>");
    SZ_CHECK_INT(b->n, 1);
    SZ_CHECK_INT(g->n, 1);
    SZ_CHECK_INT(w->n, 0);
    SZ_CHECK_INT(r->n, 0);
    sz_stanza_t *st;
    SZ_CHECK(is(st = nth(g, 0), "message", "headline", ROMEO, JULIET, "h1"));
    sz_stanza_unref(st);
    done();
}

SZ_TEST(bare_jid_negative_priority_gets_none)
{
    setup();
    fake_t *b = bound(BALCONY), *r = bound(ROMEO);
    available(b, -1);
    sz_stanza_t *st;
    /* §8.5.2.2.1, no offline storage: chat and normal bounce... */
    send_from(r, "<message to='" JULIET "' type='chat' id='c1'><body>x</body></message>");
    SZ_CHECK_INT(b->n, 0);
    SZ_CHECK_INT(r->n, 1);
    SZ_CHECK(
        is_error(st = nth(r, 0), "message", JULIET, ROMEO, "c1", "cancel", "service-unavailable"));
    sz_stanza_unref(st);
    clear_all();
    send_from(r, "<message to='" JULIET "' id='n1'/>");
    SZ_CHECK_INT(b->n, 0);
    SZ_CHECK_INT(r->n, 1);
    SZ_CHECK(
        is_error(st = nth(r, 0), "message", JULIET, ROMEO, "n1", "cancel", "service-unavailable"));
    sz_stanza_unref(st);
    /* ...a headline is dropped silently. */
    clear_all();
    send_from(r, "<message to='" JULIET "' type='headline' id='h1'/>");
    SZ_CHECK(silent());
    /* The same with no available resource at all. */
    send_from(b, "<presence type='unavailable'/>");
    clear_all();
    send_from(r, "<message to='" JULIET "' type='chat' id='c2'/>");
    SZ_CHECK_INT(b->n, 0);
    SZ_CHECK_INT(r->n, 1);
    SZ_CHECK(
        is_error(st = nth(r, 0), "message", JULIET, ROMEO, "c2", "cancel", "service-unavailable"));
    sz_stanza_unref(st);
    done();
}

SZ_TEST(bare_jid_error_dropped_groupchat_bounced)
{
    setup();
    fake_t *b = bound(BALCONY), *r = bound(ROMEO);
    available(b, 1);
    send_from(r, "<message to='" JULIET "' type='error' id='e1'><error type='cancel'>"
                 "<item-not-found xmlns='" NS_STANZAS "'/></error></message>");
    SZ_CHECK(silent());
    send_from(r, "<message to='" JULIET "' type='groupchat' id='g1'/>");
    SZ_CHECK_INT(b->n, 0);
    SZ_CHECK_INT(r->n, 1);
    sz_stanza_t *st;
    SZ_CHECK(
        is_error(st = nth(r, 0), "message", JULIET, ROMEO, "g1", "cancel", "service-unavailable"));
    sz_stanza_unref(st);
    done();
}

/* ---- RFC 6121 §8.5.3.2: a full JID with no such resource ------------------ */

SZ_TEST(unknown_resource)
{
    setup();
    fake_t *b = bound(BALCONY), *r = bound(ROMEO);
    available(b, 0);
    sz_stanza_t *st;
    /* §8.5.3.2.1: chat and normal as if to the bare JID. */
    send_from(r, "<message to='" JULIET "/nowhere' type='chat' id='c1'/>");
    SZ_CHECK_INT(r->n, 0);
    SZ_CHECK_INT(b->n, 1);
    SZ_CHECK(is(st = nth(b, 0), "message", "chat", ROMEO, JULIET "/nowhere", "c1"));
    sz_stanza_unref(st);
    clear_all();
    send_from(r, "<message to='" JULIET "/nowhere' id='n1'/>");
    SZ_CHECK_INT(r->n, 0);
    SZ_CHECK_INT(b->n, 1);
    SZ_CHECK(is(st = nth(b, 0), "message", NULL, ROMEO, JULIET "/nowhere", "n1"));
    sz_stanza_unref(st);
    /* groupchat bounces, error is dropped. */
    clear_all();
    send_from(r, "<message to='" JULIET "/nowhere' type='groupchat' id='g1'/>");
    SZ_CHECK_INT(b->n, 0);
    SZ_CHECK_INT(r->n, 1);
    SZ_CHECK(is_error(st = nth(r, 0), "message", JULIET "/nowhere", ROMEO, "g1", "cancel",
                      "service-unavailable"));
    sz_stanza_unref(st);
    clear_all();
    send_from(r, "<message to='" JULIET "/nowhere' type='error' id='e1'/>");
    SZ_CHECK(silent());
    /* §8.5.3.2.3: an iq gets service-unavailable. */
    send_from(r, "<iq to='" JULIET "/nowhere' type='get' id='q1'><ping xmlns='" NS_PING "'/></iq>");
    SZ_CHECK_INT(b->n, 0);
    SZ_CHECK_INT(r->n, 1);
    SZ_CHECK(is_error(st = nth(r, 0), "iq", JULIET "/nowhere", ROMEO, "q1", "cancel",
                      "service-unavailable"));
    sz_stanza_unref(st);
    /* §8.5.3.2.2: presence is dropped, a subscription goes to the bare JID. */
    clear_all();
    send_from(r, "<presence to='" JULIET "/nowhere' id='p1'/>");
    send_from(r, "<presence to='" JULIET "/nowhere' type='unavailable' id='p2'/>");
    SZ_CHECK(silent());
    send_from(r, "<presence to='" JULIET "/nowhere' type='subscribe' id='s1'/>");
    SZ_CHECK_INT(r->n, 0);
    SZ_CHECK_INT(b->n, 1);
    SZ_CHECK(is(st = nth(b, 0), "presence", "subscribe", ROMEO, JULIET "/nowhere", "s1"));
    sz_stanza_unref(st);
    done();
}

/* ---- RFC 6120 §7.7.2.2: a second bind of the same full JID ---------------- */

SZ_TEST(bind_conflict_replaces_old_session)
{
    setup();
    fake_t *old = bound(BALCONY), *g = bound(GARDEN), *r = bound(ROMEO);
    available(old, 1);
    available(g, 1);
    fake_t *nu = fake_new(BALCONY);
    sz_session_t *was = sz_router_bind(&reactor, &nu->s);
    SZ_CHECK(was == &old->s);
    SZ_CHECK(old->s.user == NULL);
    SZ_CHECK(!old->s.available);
    SZ_CHECK(nu->s.user != NULL);
    SZ_CHECK_INT(sz_router_sessions(&reactor), 3);
    /* The caller kicks the old one; the router does not. */
    SZ_CHECK_INT(old->kicks, 0);
    /* Its availability is withdrawn from the user's other resources. */
    SZ_CHECK_INT(g->n, 1);
    sz_stanza_t *st;
    SZ_CHECK(is(st = nth(g, 0), "presence", "unavailable", BALCONY, NULL, NULL));
    sz_stanza_unref(st);
    SZ_CHECK_INT(old->n + nu->n + r->n, 0);
    /* The full JID now reaches the new session only. */
    clear_all();
    send_from(r, "<message to='" BALCONY "' type='chat' id='c1'/>");
    SZ_CHECK_INT(old->n, 0);
    SZ_CHECK_INT(nu->n, 1);
    SZ_CHECK_INT(g->n, 0);
    done();
}

/* ---- RFC 6121 §4.2, §4.4, §4.5: presence broadcast ------------------------ */

SZ_TEST(presence_broadcast)
{
    setup();
    fake_t *b = bound(BALCONY), *g = bound(GARDEN), *r = bound(ROMEO);
    sz_stanza_t *st;
    /* Initial presence reaches the own available resources, self included;
     * the not yet available sibling gets nothing. */
    send_from(b, "<presence id='b1'><priority>1</priority></presence>");
    SZ_CHECK_INT(b->n, 1);
    SZ_CHECK(is(st = nth(b, 0), "presence", NULL, BALCONY, NULL, "b1"));
    sz_stanza_unref(st);
    SZ_CHECK_INT(g->n, 0);
    SZ_CHECK_INT(r->n, 0); /* no rosters yet: other users are no audience */
    /* The second resource's initial presence reaches both, and it learns
     * its sibling's current presence. */
    clear_all();
    send_from(g, "<presence id='g1'/>");
    SZ_CHECK_INT(b->n, 1);
    SZ_CHECK(is(st = nth(b, 0), "presence", NULL, GARDEN, NULL, "g1"));
    sz_stanza_unref(st);
    SZ_CHECK_INT(g->n, 2);
    /* In either order: its own presence and the sibling's. */
    unsigned own = 0;
    for (unsigned i = 0; i < 2; i++) {
        st = nth(g, i);
        char from[64];
        bool mine = st && sz_stanza_attr(st, SZ_XML_A_FROM, from, sizeof(from)) > 0 &&
                    strcmp(from, GARDEN) == 0;
        SZ_CHECK(is(st, "presence", NULL, mine ? GARDEN : BALCONY, NULL, mine ? "g1" : "b1"));
        own += mine;
        sz_stanza_unref(st);
    }
    SZ_CHECK_INT(own, 1);
    /* An update is broadcast, but the siblings are not sent again. */
    clear_all();
    send_from(g, "<presence id='g2'><show>away</show></presence>");
    SZ_CHECK_INT(b->n, 1);
    SZ_CHECK_INT(g->n, 1);
    SZ_CHECK(is(st = nth(g, 0), "presence", NULL, GARDEN, NULL, "g2"));
    sz_stanza_unref(st);
    /* Unavailable reaches both, self included; then the sender is out. */
    clear_all();
    send_from(g, "<presence type='unavailable' id='g3'/>");
    SZ_CHECK_INT(b->n, 1);
    SZ_CHECK(is(st = nth(b, 0), "presence", "unavailable", GARDEN, NULL, "g3"));
    sz_stanza_unref(st);
    SZ_CHECK_INT(g->n, 1);
    SZ_CHECK(is(st = nth(g, 0), "presence", "unavailable", GARDEN, NULL, "g3"));
    sz_stanza_unref(st);
    SZ_CHECK(!g->s.available);
    clear_all();
    send_from(b, "<presence id='b2'/>");
    SZ_CHECK_INT(b->n, 1);
    SZ_CHECK_INT(g->n, 0);
    /* Unavailable again from an unavailable resource: nothing. */
    clear_all();
    send_from(g, "<presence type='unavailable' id='g4'/>");
    SZ_CHECK(silent());
    SZ_CHECK_INT(r->n, 0);
    done();
}

SZ_TEST(unbind_broadcasts_unavailable)
{
    setup();
    fake_t *b = bound(BALCONY), *g = bound(GARDEN), *w = bound(JULIET "/window");
    available(b, 0);
    available(g, 0);
    /* Not available: its end tells nobody. */
    sz_router_unbind(&reactor, &w->s);
    SZ_CHECK(silent());
    SZ_CHECK_INT(sz_router_sessions(&reactor), 2);
    sz_router_unbind(&reactor, &g->s);
    SZ_CHECK(g->s.user == NULL);
    SZ_CHECK(g->s.presence == NULL);
    SZ_CHECK_INT(sz_router_sessions(&reactor), 1);
    SZ_CHECK_INT(b->n, 1);
    sz_stanza_t *st;
    SZ_CHECK(is(st = nth(b, 0), "presence", "unavailable", GARDEN, NULL, NULL));
    sz_stanza_unref(st);
    SZ_CHECK_INT(g->n + w->n, 0);
    done();
}

/* XEP-0198 resumption: another struct takes the session's place, with its
 * JID, availability and presence, and nobody hears of it. */
SZ_TEST(takeover_moves_a_session)
{
    setup();
    fake_t *b = bound(BALCONY), *g = bound(GARDEN);
    available(b, 0);
    available(g, 3);
    MUST(nfakes < MAX_FAKES);
    fake_t *n = sz_calloc(1, sizeof(*n));
    n->s.ops = &fake_ops;
    fakes[nfakes++] = n;
    sz_stanza_t *pres = g->s.presence;
    sz_router_takeover(&reactor, &g->s, &n->s);
    SZ_CHECK(silent());
    SZ_CHECK_INT(sz_router_sessions(&reactor), 2);
    SZ_CHECK(n->s.user != NULL && n->s.available && n->s.priority == 3);
    SZ_CHECK(n->s.presence == pres);
    SZ_CHECK(n->s.ops == &fake_ops);
    SZ_CHECK(strcmp(sz_jid_full(n->s.jid, NULL), GARDEN) == 0);
    SZ_CHECK(g->s.jid == NULL && g->s.user == NULL && g->s.presence == NULL);
    /* What is sent to the full JID reaches the new struct. */
    send_from(b, "<message to='" GARDEN "' id='t1'><body>x</body></message>");
    SZ_CHECK_INT(n->n, 1);
    SZ_CHECK_INT(g->n, 0);
    sz_stanza_t *st;
    SZ_CHECK(is(st = nth(n, 0), "message", NULL, BALCONY, GARDEN, "t1"));
    sz_stanza_unref(st);
    clear_all();
    /* Its end is the session's end. */
    sz_router_unbind(&reactor, &n->s);
    SZ_CHECK_INT(b->n, 1);
    SZ_CHECK(is(st = nth(b, 0), "presence", "unavailable", GARDEN, NULL, NULL));
    sz_stanza_unref(st);
    done();
}

SZ_TEST(directed_presence)
{
    setup();
    fake_t *b = bound(BALCONY), *g = bound(GARDEN), *r = bound(ROMEO);
    available(b, 0);
    available(g, 0);
    sz_stanza_t *st;
    send_from(r, "<presence to='" BALCONY "' id='d1'><show>chat</show></presence>");
    SZ_CHECK_INT(b->n, 1);
    SZ_CHECK(is(st = nth(b, 0), "presence", NULL, ROMEO, BALCONY, "d1"));
    sz_stanza_unref(st);
    SZ_CHECK_INT(g->n, 0);
    SZ_CHECK_INT(r->n, 0);
    /* To the bare JID: every available resource (§8.5.2.1.2). */
    clear_all();
    send_from(r, "<presence to='" JULIET "' type='unavailable' id='d2'/>");
    SZ_CHECK_INT(b->n, 1);
    SZ_CHECK_INT(g->n, 1);
    SZ_CHECK(is(st = nth(g, 0), "presence", "unavailable", ROMEO, JULIET, "d2"));
    sz_stanza_unref(st);
    SZ_CHECK_INT(r->n, 0);
    done();
}

/* ---- IQs to the server (XEP-0199, XEP-0030, XEP-0092) ---------------------- */

SZ_TEST(server_ping)
{
    setup();
    fake_t *r = bound(ROMEO);
    send_from(r, "<iq to='example.com' type='get' id='p1'><ping xmlns='" NS_PING "'/></iq>");
    SZ_CHECK_INT(r->n, 1);
    sz_stanza_t *st = nth(r, 0);
    SZ_CHECK(is(st, "iq", "result", "example.com", ROMEO, "p1"));
    const sz_xml_node_t *root = st ? sz_stanza_tree(st) : NULL;
    SZ_CHECK(root && !sz_xml_child(root, NULL, NULL));
    sz_stanza_unref(st);
    done();
}

SZ_TEST(server_disco_info)
{
    setup();
    fake_t *r = bound(ROMEO);
    static const char *const want[] = {NS_PING, NS_INFO, NS_ITEMS, NS_VERSION};
    for (int host = 0; host < 2; host++) {
        clear_all();
        char xml[160];
        snprintf(xml, sizeof(xml),
                 "<iq to='%s' type='get' id='i%d'><query xmlns='" NS_INFO "'/></iq>", domains[host],
                 host);
        send_from(r, xml);
        SZ_CHECK_INT(r->n, 1);
        char id[16];
        snprintf(id, sizeof(id), "i%d", host);
        sz_stanza_t *st = nth(r, 0);
        SZ_CHECK(is(st, "iq", "result", domains[host], ROMEO, id));
        const sz_xml_node_t *q = payload(st);
        SZ_CHECK(node_is(q, "query", NS_INFO));
        if (q) {
            SZ_CHECK(identity_is(q, "server", "im"));
            for (unsigned i = 0; i < sizeof(want) / sizeof(want[0]); i++)
                SZ_CHECK(has_feature(q, want[i]));
            /* jabber:iq:register only where registration is enabled. */
            SZ_CHECK_INT(has_feature(q, NS_REGISTER), register_enabled[host]);
        }
        sz_stanza_unref(st);
    }
    done();
}

SZ_TEST(server_disco_info_node_not_found)
{
    setup();
    fake_t *r = bound(ROMEO);
    send_from(r, "<iq to='example.com' type='get' id='n1'><query xmlns='" NS_INFO
                 "' node='http://example.com/caps'/></iq>");
    SZ_CHECK_INT(r->n, 1);
    sz_stanza_t *st;
    SZ_CHECK(
        is_error(st = nth(r, 0), "iq", "example.com", ROMEO, "n1", "cancel", "item-not-found"));
    sz_stanza_unref(st);
    done();
}

SZ_TEST(server_disco_items_empty)
{
    setup();
    fake_t *r = bound(ROMEO);
    send_from(r, "<iq to='example.com' type='get' id='d1'><query xmlns='" NS_ITEMS "'/></iq>");
    SZ_CHECK_INT(r->n, 1);
    sz_stanza_t *st = nth(r, 0);
    SZ_CHECK(is(st, "iq", "result", "example.com", ROMEO, "d1"));
    const sz_xml_node_t *q = payload(st);
    SZ_CHECK(node_is(q, "query", NS_ITEMS));
    SZ_CHECK(q && !sz_xml_child(q, NULL, NULL));
    sz_stanza_unref(st);
    done();
}

SZ_TEST(server_version)
{
    setup();
    fake_t *r = bound(ROMEO);
    send_from(r, "<iq to='example.com' type='get' id='v1'><query xmlns='" NS_VERSION "'/></iq>");
    SZ_CHECK_INT(r->n, 1);
    sz_stanza_t *st = nth(r, 0);
    SZ_CHECK(is(st, "iq", "result", "example.com", ROMEO, "v1"));
    const sz_xml_node_t *q = payload(st);
    SZ_CHECK(node_is(q, "query", NS_VERSION));
    const sz_xml_node_t *name = q ? sz_xml_child(q, "name", NS_VERSION) : NULL;
    const sz_xml_node_t *ver = q ? sz_xml_child(q, "version", NS_VERSION) : NULL;
    SZ_CHECK(name && strcmp(sz_xml_text(name, NULL), SZ_PRODUCT_NAME) == 0);
    SZ_CHECK(ver && strcmp(sz_xml_text(ver, NULL), SZ_PRODUCT_VERSION) == 0);
    sz_stanza_unref(st);
    done();
}

SZ_TEST(server_unknown_payload)
{
    setup();
    fake_t *r = bound(ROMEO);
    send_from(r, "<iq to='example.com' type='get' id='u1'><query xmlns='urn:example:unserved'/></iq>");
    SZ_CHECK_INT(r->n, 1);
    sz_stanza_t *st;
    SZ_CHECK(is_error(st = nth(r, 0), "iq", "example.com", ROMEO, "u1", "cancel",
                      "service-unavailable"));
    sz_stanza_unref(st);
    done();
}

/* RFC 6120 §8.2.3: every iq request is answered, also one to a
 * domain/resource, which names no entity on this server. */
SZ_TEST(iq_to_domain_resource_answered)
{
    setup();
    fake_t *r = bound(ROMEO);
    send_from(r, "<iq to='example.com/res' type='get' id='d1'><ping xmlns='" NS_PING "'/></iq>");
    SZ_CHECK_INT(r->n, 1);
    sz_stanza_t *st;
    SZ_CHECK(is_error(st = nth(r, 0), "iq", "example.com/res", ROMEO, "d1", "cancel",
                      "service-unavailable"));
    sz_stanza_unref(st);
    clear_all();
    send_from(r, "<iq to='example.com/res' type='result' id='d2'/>");
    SZ_CHECK_INT(r->n, 0);
    done();
}

SZ_TEST(server_payload_count_bad_request)
{
    setup();
    fake_t *r = bound(ROMEO);
    sz_stanza_t *st;
    /* RFC 6120 §8.2.3: a get or set holds exactly one payload. */
    send_from(r, "<iq to='example.com' type='get' id='t1'><ping xmlns='" NS_PING "'/>"
                 "<query xmlns='" NS_INFO "'/></iq>");
    SZ_CHECK_INT(r->n, 1);
    SZ_CHECK(is_error(st = nth(r, 0), "iq", "example.com", ROMEO, "t1", "modify", "bad-request"));
    sz_stanza_unref(st);
    clear_all();
    send_from(r, "<iq to='example.com' type='get' id='t0'/>");
    SZ_CHECK_INT(r->n, 1);
    SZ_CHECK(is_error(st = nth(r, 0), "iq", "example.com", ROMEO, "t0", "modify", "bad-request"));
    sz_stanza_unref(st);
    done();
}

SZ_TEST(server_ping_set_bad_request)
{
    setup();
    fake_t *r = bound(ROMEO);
    send_from(r, "<iq to='example.com' type='set' id='s1'><ping xmlns='" NS_PING "'/></iq>");
    SZ_CHECK_INT(r->n, 1);
    sz_stanza_t *st;
    SZ_CHECK(is_error(st = nth(r, 0), "iq", "example.com", ROMEO, "s1", "modify", "bad-request"));
    sz_stanza_unref(st);
    done();
}

SZ_TEST(server_result_and_error_unanswered)
{
    setup();
    fake_t *r = bound(ROMEO);
    send_from(r, "<iq to='example.com' type='result' id='r1'/>");
    send_from(r, "<iq to='example.com' type='result' id='r2'><query xmlns='" NS_INFO "'/></iq>");
    send_from(r, "<iq to='example.com' type='error' id='r3'><ping xmlns='" NS_PING "'/>"
                 "<error type='cancel'><service-unavailable xmlns='" NS_STANZAS "'/></error></iq>");
    SZ_CHECK(silent());
    done();
}

/* ---- RFC 6120 §10.3.3 / RFC 6121 §8.5.2.1.3: the user's account ----------- */

SZ_TEST(iq_without_to_is_for_the_account)
{
    setup();
    fake_t *b = bound(BALCONY), *g = bound(GARDEN);
    available(g, 0);
    sz_stanza_t *st;
    send_from(b, "<iq type='get' id='a1'><query xmlns='" NS_INFO "'/></iq>");
    SZ_CHECK_INT(g->n, 0);
    SZ_CHECK_INT(b->n, 1);
    st = nth(b, 0);
    SZ_CHECK(is(st, "iq", "result", NULL, BALCONY, "a1"));
    const sz_xml_node_t *q = payload(st);
    SZ_CHECK(node_is(q, "query", NS_INFO));
    SZ_CHECK(q && identity_is(q, "account", "registered"));
    sz_stanza_unref(st);
    clear_all();
    send_from(b, "<iq type='get' id='a2'><ping xmlns='" NS_PING "'/></iq>");
    SZ_CHECK_INT(b->n, 1);
    SZ_CHECK(is(st = nth(b, 0), "iq", "result", NULL, BALCONY, "a2"));
    sz_stanza_unref(st);
    /* The server's version is no account's. */
    clear_all();
    send_from(b, "<iq type='get' id='a3'><query xmlns='" NS_VERSION "'/></iq>");
    SZ_CHECK_INT(b->n, 1);
    SZ_CHECK(is_error(st = nth(b, 0), "iq", NULL, BALCONY, "a3", "cancel", "service-unavailable"));
    sz_stanza_unref(st);
    SZ_CHECK_INT(g->n, 0);
    done();
}

SZ_TEST(iq_to_bare_jid_of_online_user)
{
    setup();
    fake_t *b = bound(BALCONY), *r = bound(ROMEO);
    send_from(r, "<iq to='" JULIET "' type='get' id='o1'><query xmlns='" NS_INFO "'/></iq>");
    SZ_CHECK_INT(b->n, 0);
    SZ_CHECK_INT(r->n, 1);
    sz_stanza_t *st = nth(r, 0);
    SZ_CHECK(is(st, "iq", "result", JULIET, ROMEO, "o1"));
    const sz_xml_node_t *q = payload(st);
    SZ_CHECK(q && identity_is(q, "account", "registered"));
    sz_stanza_unref(st);
    done();
}

/* A storage stand-in that answers later, when the test says so. */
static struct {
    unsigned calls;
    int ret; /* returned by the call; < 0: fails at once */
    char jid[64];
    void (*cb)(void *arg, int res);
    void *arg;
} ex;

static int fake_exists(void *ctx, const sz_jid_t *j, void (*cb)(void *arg, int res), void *arg)
{
    SZ_CHECK(ctx == &ex);
    ex.calls++;
    sz_jid_format(j, false, ex.jid, sizeof(ex.jid));
    if (ex.ret < 0)
        return ex.ret;
    ex.cb = cb;
    ex.arg = arg;
    return 0;
}

/* Completes the pending lookup with <res>. */
static void exists_answer(int res)
{
    SZ_CHECK(ex.cb != NULL);
    if (!ex.cb)
        return;
    void (*cb)(void *, int) = ex.cb;
    ex.cb = NULL;
    cb(ex.arg, res);
}

SZ_TEST(iq_to_bare_jid_of_offline_account)
{
    setup();
    memset(&ex, 0, sizeof(ex));
    fake_t *r = bound(ROMEO);
    sz_stanza_t *st;
    /* No lookup configured: the user is unknown. */
    send_from(r, "<iq to='" JULIET "' type='get' id='x0'><ping xmlns='" NS_PING "'/></iq>");
    SZ_CHECK_INT(r->n, 1);
    SZ_CHECK(is_error(st = nth(r, 0), "iq", JULIET, ROMEO, "x0", "cancel", "service-unavailable"));
    sz_stanza_unref(st);

    sz_router_set_exists(fake_exists, &ex);
    /* The account exists: answered on its behalf once storage says so. */
    clear_all();
    send_from(r, "<iq to='" JULIET "' type='get' id='x1'><query xmlns='" NS_INFO "'/></iq>");
    SZ_CHECK_INT(ex.calls, 1);
    SZ_CHECK_STR(ex.jid, JULIET);
    SZ_CHECK_INT(sz_router_pending(), 1);
    SZ_CHECK_INT(r->n, 0);
    exists_answer(1);
    SZ_CHECK_INT(sz_router_pending(), 0);
    SZ_CHECK_INT(r->n, 1);
    st = nth(r, 0);
    SZ_CHECK(is(st, "iq", "result", JULIET, ROMEO, "x1"));
    const sz_xml_node_t *q = payload(st);
    SZ_CHECK(q && identity_is(q, "account", "registered"));
    sz_stanza_unref(st);
    /* No such account (§8.5.1). */
    clear_all();
    send_from(r, "<iq to='" JULIET "' type='get' id='x2'><ping xmlns='" NS_PING "'/></iq>");
    SZ_CHECK_INT(ex.calls, 2);
    SZ_CHECK_INT(r->n, 0);
    exists_answer(0);
    SZ_CHECK_INT(r->n, 1);
    SZ_CHECK(is_error(st = nth(r, 0), "iq", JULIET, ROMEO, "x2", "cancel", "service-unavailable"));
    sz_stanza_unref(st);
    /* The lookup fails, later or at once. */
    clear_all();
    send_from(r, "<iq to='" JULIET "' type='set' id='x3'><ping xmlns='" NS_PING "'/></iq>");
    exists_answer(-EIO);
    ex.ret = -EAGAIN;
    send_from(r, "<iq to='" JULIET "' type='get' id='x4'><ping xmlns='" NS_PING "'/></iq>");
    SZ_CHECK_INT(ex.calls, 4);
    SZ_CHECK_INT(sz_router_pending(), 0);
    SZ_CHECK_INT(r->n, 2);
    SZ_CHECK(is_error(st = nth(r, 0), "iq", JULIET, ROMEO, "x3", "cancel", "service-unavailable"));
    sz_stanza_unref(st);
    SZ_CHECK(is_error(st = nth(r, 1), "iq", JULIET, ROMEO, "x4", "cancel", "service-unavailable"));
    sz_stanza_unref(st);
    /* A result or error needs no lookup and gets no answer. */
    clear_all();
    send_from(r, "<iq to='" JULIET "' type='result' id='x5'/>");
    SZ_CHECK_INT(ex.calls, 4);
    SZ_CHECK(silent());
    done();
}

/* ---- addresses the router cannot serve --------------------------------------- */

SZ_TEST(remote_domain_not_found)
{
    setup();
    fake_t *r = bound(ROMEO);
    sz_stanza_t *st;
    send_from(r, "<message to='nurse@elsewhere.org' type='chat' id='m1'/>");
    SZ_CHECK_INT(r->n, 1);
    SZ_CHECK(is_error(st = nth(r, 0), "message", "nurse@elsewhere.org", ROMEO, "m1", "cancel",
                      "remote-server-not-found"));
    sz_stanza_unref(st);
    clear_all();
    send_from(r, "<iq to='elsewhere.org' type='get' id='q1'><ping xmlns='" NS_PING "'/></iq>");
    SZ_CHECK_INT(r->n, 1);
    SZ_CHECK(is_error(st = nth(r, 0), "iq", "elsewhere.org", ROMEO, "q1", "cancel",
                      "remote-server-not-found"));
    sz_stanza_unref(st);
    done();
}

SZ_TEST(malformed_to_jid)
{
    setup();
    fake_t *r = bound(ROMEO);
    /* net/c2s.c answers a client's malformed 'to' before routing; the
     * router still reads 'to' from the stanza itself, so a stanza whose own
     * 'to' is no JID is handed in here with a stand-in parsed <to>. */
    static const char bad[] = "<message to='a@b@c' type='chat' id='j1'/>";
    sz_stanza_t *st0 = sz_stanza_from_xml(bad, strlen(bad));
    MUST(st0 != NULL);
    size_t fl;
    const char *full = sz_jid_full(r->s.jid, &fl);
    sz_stanza_t *st = sz_stanza_rewrite(st0, NULL, 0, full, fl);
    sz_stanza_unref(st0);
    sz_jid_t *standin = NULL;
    MUST(sz_jid_parse(JULIET, strlen(JULIET), &standin) == 0);
    sz_router_from_client(&reactor, &r->s, st, standin);
    sz_jid_free(standin);
    SZ_CHECK_INT(r->n, 1);
    SZ_CHECK(is_error(st = nth(r, 0), "message", "a@b@c", ROMEO, "j1", "modify", "jid-malformed"));
    sz_stanza_unref(st);
    done();
}

/* ---- RFC 6120 §8.3.1: an error is never answered with an error ------------- */

SZ_TEST(errors_are_never_answered)
{
    setup();
    fake_t *b = bound(BALCONY), *r = bound(ROMEO);
    available(b, 0);
    send_from(r, "<message to='nurse@elsewhere.org' type='error' id='e1'/>");
    send_from(r, "<presence to='nurse@elsewhere.org' type='error' id='e2'/>");
    send_from(r, "<iq to='elsewhere.org' type='error' id='e3'/>");
    send_from(r, "<iq to='elsewhere.org' type='result' id='e4'/>");
    send_from(r, "<iq to='" JULIET "/nowhere' type='error' id='e5'/>");
    send_from(r, "<iq to='" JULIET "/nowhere' type='result' id='e6'/>");
    send_from(r, "<message to='" JULIET "' type='error' id='e7'/>");
    SZ_CHECK(silent());
    /* The error for a sender that is gone is dropped, not bounced on. */
    undelivered("<message from='ghost@example.com/x' to='nurse@example.com/x' type='chat' "
                "id='e8'/>");
    undelivered("<iq from='ghost@elsewhere.org/x' to='" BALCONY "' type='get' id='e9'>"
                "<ping xmlns='" NS_PING "'/></iq>");
    SZ_CHECK(silent());
    done();
}

/* ---- XEP-0198 §4: what a closed stream never acknowledged ------------------ */

SZ_TEST(undelivered_bounces_requests)
{
    setup();
    fake_t *r = bound(ROMEO);
    sz_stanza_t *st;
    /* A message goes on as if sent to the bare JID (RFC 6121
     * §8.5.3.2.1): no resource and, here, no offline storage, so the
     * §8.5.2.2.1 error. */
    undelivered("<message from='" ROMEO "' to='" BALCONY "' type='chat' id='u1'><body>x</body>"
                "</message>");
    SZ_CHECK_INT(r->n, 1);
    SZ_CHECK(
        is_error(st = nth(r, 0), "message", BALCONY, ROMEO, "u1", "cancel", "service-unavailable"));
    sz_stanza_unref(st);
    clear_all();
    /* Another available resource of the user gets it; the sender nothing. */
    fake_t *b = bound(BALCONY);
    available(b, 0);
    clear_all();
    undelivered("<message from='" ROMEO "' to='" JULIET "/gone' type='chat' id='u7'><body>x</body>"
                "</message>");
    SZ_CHECK_INT(r->n, 0);
    SZ_CHECK_INT(b->n, 1);
    clear_all();
    /* groupchat: an error back, as before. */
    undelivered("<message from='" ROMEO "' to='" JULIET "/gone' type='groupchat' id='u8'/>");
    SZ_CHECK_INT(b->n, 0);
    SZ_CHECK_INT(r->n, 1);
    SZ_CHECK(is_error(st = nth(r, 0), "message", JULIET "/gone", ROMEO, "u8", "wait",
                      "recipient-unavailable"));
    sz_stanza_unref(st);
    clear_all();
    undelivered("<iq from='" ROMEO "' to='" BALCONY "' type='get' id='u2'><ping xmlns='" NS_PING
                "'/></iq>");
    SZ_CHECK_INT(r->n, 1);
    SZ_CHECK(is_error(st = nth(r, 0), "iq", BALCONY, ROMEO, "u2", "wait", "recipient-unavailable"));
    sz_stanza_unref(st);
    /* Presence, results and errors go nowhere. */
    clear_all();
    undelivered("<presence from='" ROMEO "' to='" BALCONY "' id='u3'/>");
    undelivered("<presence from='" ROMEO "' to='" BALCONY "' type='subscribe' id='u4'/>");
    undelivered("<iq from='" ROMEO "' to='" BALCONY "' type='result' id='u5'/>");
    undelivered("<message from='" ROMEO "' to='" BALCONY "' type='error' id='u6'/>");
    SZ_CHECK(silent());
    done();
}

/* ---- hook points for delivery: SZ_HOOK_DELIVERED, SZ_HOOK_DELIVER ------------ */

#define NS_CARBONS "urn:xmpp:carbons:2"
#define NS_CSI     "urn:xmpp:csi:0"

/* The XEP-0280 copy <st> of kind <which> wraps a message from <from>. */
static bool carbon_of(sz_stanza_t *st, const char *which, const char *from)
{
    const sz_xml_node_t *root = st ? sz_stanza_tree(st) : NULL;
    const sz_xml_node_t *w = root ? sz_xml_child(root, which, NS_CARBONS) : NULL;
    const sz_xml_node_t *fw = w ? sz_xml_child(w, "forwarded", "urn:xmpp:forward:0") : NULL;
    const sz_xml_node_t *m = fw ? sz_xml_child(fw, "message", NS_CLIENT) : NULL;
    const char *f = m ? sz_xml_attr(m, "from", NULL, NULL) : NULL;
    if (!f || strcmp(f, from) != 0) {
        printf("# not a <%s/> copy of a message from %s: %s\n", which, from,
               st ? sz_stanza_raw(st, NULL) : "(none)");
        return false;
    }
    return true;
}

SZ_TEST(delivered_hook_sees_the_chosen_resources)
{
    setup();
    fake_t *b = bound(BALCONY), *g = bound(GARDEN), *r = bound(ROMEO);
    available(b, 1);
    available(g, 0);
    SZ_CHECK(sz_router_gets_bare_message(b->s.user, &b->s, false));
    SZ_CHECK(!sz_router_gets_bare_message(g->s.user, &g->s, false));
    SZ_CHECK(sz_router_gets_bare_message(g->s.user, &g->s, true)); /* headline */
    send_from(b, "<iq type='set' id='e1'><enable xmlns='" NS_CARBONS "'/></iq>");
    send_from(g, "<iq type='set' id='e2'><enable xmlns='" NS_CARBONS "'/></iq>");
    SZ_CHECK(b->n == 1 && g->n == 1);
    clear_all();
    /* To the bare JID: balcony has the original, garden the copy. */
    send_from(r, "<message to='" JULIET "' type='chat' id='m1'><body>hi</body></message>");
    sz_stanza_t *st;
    SZ_CHECK_INT(b->n, 1);
    SZ_CHECK(is(st = nth(b, 0), "message", "chat", ROMEO, JULIET, "m1"));
    sz_stanza_unref(st);
    SZ_CHECK_INT(g->n, 1);
    SZ_CHECK(is(st = nth(g, 0), "message", "chat", JULIET, GARDEN, NULL));
    SZ_CHECK(carbon_of(st, "received", ROMEO));
    sz_stanza_unref(st);
    clear_all();
    /* To a full JID: the other way round. */
    send_from(r, "<message to='" GARDEN "' type='chat' id='m2'><body>hi</body></message>");
    SZ_CHECK(g->n == 1 && b->n == 1);
    SZ_CHECK(carbon_of(st = nth(b, 0), "received", ROMEO));
    sz_stanza_unref(st);
    clear_all();
    /* Sent by balcony: garden gets the <sent/> copy, balcony nothing. */
    send_from(b, "<message to='" ROMEO "' type='chat' id='m3'><body>yo</body></message>");
    SZ_CHECK(r->n == 1 && b->n == 0 && g->n == 1);
    SZ_CHECK(carbon_of(st = nth(g, 0), "sent", BALCONY));
    sz_stanza_unref(st);
    done();
}

/* The nonza <xml> on the stream of <f>, through the handler registered for
 * its namespace. */
static int nonza(fake_t *f, const char *xml, const char *ns)
{
    sz_nonza_fn fn = sz_hooks_nonza_find(ns, strlen(ns));
    MUST(fn != NULL);
    sz_stanza_t *st = sz_stanza_from_xml(xml, strlen(xml));
    MUST(st != NULL);
    sz_hook_ctx_t ctx = {.r = &reactor, .st = st, .from = &f->s, .user = f->s.user,
                         .kind = SZ_STANZA_OTHER};
    int ret = fn(&ctx);
    sz_stanza_unref(st);
    return ret;
}

SZ_TEST(deliver_hook_holds_until_urgent)
{
    setup();
    fake_t *b = bound(BALCONY), *g = bound(GARDEN), *r = bound(ROMEO);
    available(b, 0);
    available(g, 0);
    SZ_CHECK(sz_hooks_nonza_find(NS_CSI "x", strlen(NS_CSI) + 1) == NULL);
    SZ_CHECK_INT(nonza(g, "<inactive xmlns='" NS_CSI "'/>", NS_CSI), 0);
    send_from(b, "<presence id='p1'><status>1</status></presence>");
    send_from(b, "<presence id='p2'><status>2</status></presence>");
    send_from(r, "<presence to='" GARDEN "' id='p3'/>");
    SZ_CHECK_INT(g->n, 0);
    SZ_CHECK_INT(b->n, 2); /* balcony is active: its own presence, twice */
    /* A message: the held ones first (latest per sender), then it. */
    send_from(r, "<message to='" GARDEN "' type='chat' id='m1'><body>hi</body></message>");
    sz_stanza_t *st;
    SZ_CHECK_INT(g->n, 3);
    SZ_CHECK(is(st = nth(g, 0), "presence", NULL, BALCONY, NULL, "p2"));
    sz_stanza_unref(st);
    SZ_CHECK(is(st = nth(g, 1), "presence", NULL, ROMEO, GARDEN, "p3"));
    sz_stanza_unref(st);
    SZ_CHECK(is(st = nth(g, 2), "message", "chat", ROMEO, GARDEN, "m1"));
    sz_stanza_unref(st);
    clear_all();
    send_from(b, "<presence id='p4'/>");
    SZ_CHECK_INT(g->n, 0);
    SZ_CHECK_INT(nonza(g, "<active xmlns='" NS_CSI "'/>", NS_CSI), 0);
    SZ_CHECK_INT(g->n, 1);
    SZ_CHECK(is(st = nth(g, 0), "presence", NULL, BALCONY, NULL, "p4"));
    sz_stanza_unref(st);
    SZ_CHECK_INT(nonza(g, "<sleepy xmlns='" NS_CSI "'/>", NS_CSI), SZ_STREAM_UNSUPPORTED_STANZA_TYPE);
    /* Held presences of a session that ends are dropped (no leak). */
    SZ_CHECK_INT(nonza(g, "<inactive xmlns='" NS_CSI "'/>", NS_CSI), 0);
    send_from(b, "<presence id='p5'/>");
    done();
}

int main(void)
{
    /* The IQs the server answers are modules: the same list stanzad runs. */
    sz_mod_env_t env = {NULL, NULL, NULL};
    sz_mods_register(&env);
    SZ_RUN(full_jid_reaches_only_that_session);
    SZ_RUN(bare_jid_highest_priority);
    SZ_RUN(bare_jid_headline_to_all_non_negative);
    SZ_RUN(bare_jid_negative_priority_gets_none);
    SZ_RUN(bare_jid_error_dropped_groupchat_bounced);
    SZ_RUN(unknown_resource);
    SZ_RUN(bind_conflict_replaces_old_session);
    SZ_RUN(presence_broadcast);
    SZ_RUN(unbind_broadcasts_unavailable);
    SZ_RUN(takeover_moves_a_session);
    SZ_RUN(directed_presence);
    SZ_RUN(server_ping);
    SZ_RUN(server_disco_info);
    SZ_RUN(server_disco_info_node_not_found);
    SZ_RUN(server_disco_items_empty);
    SZ_RUN(server_version);
    SZ_RUN(server_unknown_payload);
    SZ_RUN(iq_to_domain_resource_answered);
    SZ_RUN(server_payload_count_bad_request);
    SZ_RUN(server_ping_set_bad_request);
    SZ_RUN(server_result_and_error_unanswered);
    SZ_RUN(iq_without_to_is_for_the_account);
    SZ_RUN(iq_to_bare_jid_of_online_user);
    SZ_RUN(iq_to_bare_jid_of_offline_account);
    SZ_RUN(remote_domain_not_found);
    SZ_RUN(malformed_to_jid);
    SZ_RUN(errors_are_never_answered);
    SZ_RUN(undelivered_bounces_requests);
    SZ_RUN(delivered_hook_sees_the_chosen_resources);
    SZ_RUN(deliver_hook_holds_until_urgent);
    sz_xml_scratch_free();
    return sz_test_done();
}
