/*
 * The SASL exchange of a client stream (RFC 6120 §6) around net/sasl.c:
 * <auth>/<response>/<abort> in, <challenge>/<success>/<failure> out, the
 * credential lookup and the PLAIN offload, the failure budgets, the
 * channel-binding data, and success: the stream restarts and moves to the
 * user's home reactor. Runs on the accepting reactor. While a lookup or a
 * job holds the exchange (F_LOOKUP) the reactor leaves cs->sasl alone, and
 * a connection that closes meanwhile is freed by the completion.
 */
#include "net/c2s_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/jid.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/router.h"
#include "core/xml/tree.h"
#include "net/sasl.h"
#include "net/tls.h"

#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"

static void sasl_result(struct c2s *cs, enum sz_sasl_result res, const sz_sasl_out_t *out);
static void sasl_failure(struct c2s *cs, enum sz_sasl_err cond, bool counts,
                         const char *scram_error);

/* ---- channel-binding data ------------------------------------------------ */

unsigned c2s_sasl_flags(const struct c2s *cs)
{
    unsigned f = 0;
    if (cs->flags & F_TLS) {
        f |= SZ_SASL_F_TLS;
        uint8_t cb[SZ_TLS_CB_MAX_BYTES > SZ_TLS_CB_UNIQUE_MAX_BYTES ? SZ_TLS_CB_MAX_BYTES
                                                                    : SZ_TLS_CB_UNIQUE_MAX_BYTES];
        size_t len = sizeof(cb);
        if (sz_tls_cb_exporter(cs->tls, NULL) == 0)
            f |= SZ_SASL_F_CB_EXPORTER;
        if (sz_tls_cb_server_end_point(cs->tls, cb, &len) == 0)
            f |= SZ_SASL_F_CB_ENDPOINT;
        /* tls-unique: advertised on TLS 1.2 (RFC 5929 §3); on TLS 1.3 only
         * accepted, and only with tls.unique_on_tls13 (see cs->cb_unique). */
        if (sz_tls_cb_unique(cs->tls, cb, &len) == 0)
            f |= SZ_SASL_F_CB_UNIQUE;
        else if (cs->cb_unique)
            f |= SZ_SASL_F_CB_UNIQUE | SZ_SASL_F_CB_UNLISTED;
    }
    if (c2s_listener(cs)->plain_without_tls)
        f |= SZ_SASL_F_PLAIN_NO_TLS;
    if (!c2s_conf->tls.scram_sha1_plus)
        f |= SZ_SASL_F_NO_SHA1_PLUS;
    return f;
}

/* ---- the exchange -------------------------------------------------------- */

/* SASL input that arrived while a lookup or a job held the exchange: the
 * client spoke out of turn (RFC 6120 §6.4), which fails the exchange now
 * that it is ours again. <checked>: the password was verified meanwhile
 * (PLAIN), so the failure counts like a wrong one, and speaking out of turn
 * buys no extra guesses. Returns true when it did. */
static bool spoke_out_of_turn(struct c2s *cs, bool checked)
{
    if (!(cs->flags & F_SPOKE))
        return false;
    cs->flags &= (uint16_t)~F_SPOKE;
    sz_sasl_free(cs->sasl);
    cs->sasl = NULL;
    sasl_failure(cs, SZ_SASL_ERR_MALFORMED_REQUEST, checked, NULL);
    return true;
}

/* PLAIN verification on a storage worker. While it runs the reactor does
 * not touch cs->sasl (F_LOOKUP). */
struct plain_job {
    struct c2s *cs;
    enum sz_sasl_creds_status status;
    bool have_creds;
    enum sz_sasl_result r;
    sz_sasl_out_t out;
    sz_scram_creds_t creds;
};

static void plain_work(void *arg)
{
    struct plain_job *job = arg;
    job->r = sz_sasl_creds(job->cs->sasl, job->status, job->have_creds ? &job->creds : NULL,
                           &job->out);
}

static void plain_done(void *arg, int res)
{
    struct plain_job *job = arg;
    struct c2s *cs = job->cs;
    (void)res;
    cs->flags &= (uint16_t)~F_LOOKUP;
    c2s_pending--;
    if (cs->flags & F_ORPHAN)
        c2s_free_state(cs);
    else if (cs->stage != ST_CLOSED && !spoke_out_of_turn(cs, true))
        sasl_result(cs, job->r, &job->out);
    memset(&job->creds, 0, sizeof(job->creds));
    sz_free(job);
}

static void on_creds(void *arg, int res, const sz_scram_creds_t *creds)
{
    struct c2s *cs = arg;
    cs->flags &= (uint16_t)~F_LOOKUP;
    c2s_pending--;
    if (cs->flags & F_ORPHAN) {
        c2s_free_state(cs);
        return;
    }
    if (!cs->sasl || cs->stage == ST_CLOSED)
        return; /* the exchange ended meanwhile: a late answer is dropped */
    if (spoke_out_of_turn(cs, false))
        return;
    enum sz_sasl_creds_status status = res == 0         ? SZ_SASL_CREDS_FOUND
                                       : res == -ENOENT ? SZ_SASL_CREDS_NOT_FOUND
                                                        : SZ_SASL_CREDS_UNAVAILABLE;
    /* PLAIN derives from the password (PBKDF2, milliseconds): on a worker. */
    if (sz_sasl_mech(cs->sasl) == SZ_SASL_PLAIN && c2s_accounts.offload) {
        struct plain_job *job = sz_calloc(1, sizeof(*job));
        job->cs = cs;
        job->status = status;
        if (res == 0 && creds) {
            job->creds = *creds;
            job->have_creds = true;
        }
        cs->flags |= F_LOOKUP;
        c2s_pending++;
        if (c2s_accounts.offload(c2s_accounts.ctx, plain_work, plain_done, job) == 0)
            return;
        cs->flags &= (uint16_t)~F_LOOKUP;
        c2s_pending--;
        sz_free(job);
    }
    sz_sasl_out_t out;
    enum sz_sasl_result r = sz_sasl_creds(cs->sasl, status, res == 0 ? creds : NULL, &out);
    sasl_result(cs, r, &out);
}

static void lookup(struct c2s *cs, const sz_sasl_out_t *out)
{
    char jid[SZ_JID_INPUT_MAX_BYTES + 1];
    int n = snprintf(jid, sizeof(jid), "%.*s@%s", (int)out->user_len, out->user,
                     c2s_conf->hosts[cs->host].domain);
    sz_jid_t *j = NULL;
    if (!c2s_accounts.get_creds || n <= 0 || (size_t)n >= sizeof(jid) ||
        sz_jid_parse(jid, (size_t)n, &j) < 0) {
        sz_sasl_out_t o2;
        enum sz_sasl_result r = sz_sasl_creds(cs->sasl, c2s_accounts.get_creds
                                                            ? SZ_SASL_CREDS_NOT_FOUND
                                                            : SZ_SASL_CREDS_UNAVAILABLE,
                                              NULL, &o2);
        sasl_result(cs, r, &o2);
        return;
    }
    cs->flags |= F_LOOKUP;
    c2s_pending++;
    int ret = c2s_accounts.get_creds(c2s_accounts.ctx, j, on_creds, cs);
    sz_jid_free(j);
    if (ret < 0) {
        c2s_pending--;
        cs->flags &= (uint16_t)~F_LOOKUP;
        sz_sasl_out_t o2;
        sasl_result(cs, sz_sasl_creds(cs->sasl, SZ_SASL_CREDS_UNAVAILABLE, NULL, &o2), &o2);
    }
}

/* Writes <failure><cond/></failure>, with <scram_error> (a SCRAM
 * server-error message, "e=...", trusted and short; see sz_sasl_out_t) as
 * its <text/>, and counts it. RFC 6120 §6.4.5 allows a configurable number
 * of retries, then a stream error. Only failures about the credentials
 * (<counts>) use up SZ_C2S_MAX_AUTH_FAILURES, and each also takes a token
 * from the source's rate budget, so password guessing is bounded per
 * stream and per address. The rest (a mechanism or channel-binding type
 * the client may change, encoding, syntax, abort) reveal nothing about the
 * password: a client walking down its list of mechanisms must not be cut
 * off by them, but may not loop forever either
 * (SZ_C2S_MAX_SOFT_FAILURES). */
static void sasl_failure(struct c2s *cs, enum sz_sasl_err cond, bool counts,
                         const char *scram_error)
{
    char buf[320];
    int n = snprintf(buf, sizeof(buf), "<failure xmlns='" NS_SASL "'><%s/>%s%s%s</failure>",
                     sz_sasl_err_name(cond),
                     scram_error ? "<text xml:lang='en'>" : "", scram_error ? scram_error : "",
                     scram_error ? "</text>" : "");
    c2s_write(cs, buf, (size_t)n);
    if (counts) {
        if (cs->src_hash && !c2s_source_take(cs->src_hash - 1)) {
            SZ_STAT_ADD(&sz_conn_reactor(cs->c)->stats, source_rate_limited, 1);
            SZ_DEBUG("msg=\"source over its rate after a failed login\" conn=%llu",
                     (unsigned long long)cs->c->id);
            c2s_stream_error(cs, SZ_STREAM_POLICY_VIOLATION);
        } else if (sz_sasl_count_failure(&cs->failures, SZ_C2S_MAX_AUTH_FAILURES)) {
            c2s_stream_error(cs, SZ_STREAM_POLICY_VIOLATION);
        }
    } else if (sz_sasl_count_failure(&cs->soft_failures, SZ_C2S_MAX_SOFT_FAILURES)) {
        c2s_stream_error(cs, SZ_STREAM_POLICY_VIOLATION);
    }
}

static void send_b64_element(struct c2s *cs, const char *name, const uint8_t *data, size_t len)
{
    size_t cap = sz_sasl_b64_encoded_len(len) + 96;
    char *buf = sz_malloc(cap);
    int n = snprintf(buf, cap, "<%s xmlns='" NS_SASL "'>", name);
    if (len)
        n += (int)sz_sasl_b64_encode(data, len, buf + n);
    n += snprintf(buf + n, cap - (size_t)n, "</%s>", name);
    c2s_write(cs, buf, (size_t)n);
    sz_free(buf);
}

static void sasl_result(struct c2s *cs, enum sz_sasl_result res, const sz_sasl_out_t *out)
{
    switch (res) {
    case SZ_SASL_CONTINUE:
        send_b64_element(cs, "challenge", out->data, out->len);
        return;
    case SZ_SASL_NEED_CREDS:
        lookup(cs, out);
        return;
    case SZ_SASL_SUCCESS: {
        char jid[SZ_JID_INPUT_MAX_BYTES + 1];
        int n = snprintf(jid, sizeof(jid), "%.*s@%s", (int)out->user_len, out->user,
                         c2s_conf->hosts[cs->host].domain);
        sz_jid_t *j = NULL;
        if (n <= 0 || (size_t)n >= sizeof(jid) || sz_jid_parse(jid, (size_t)n, &j) < 0) {
            c2s_stream_error(cs, SZ_STREAM_INTERNAL_SERVER_ERROR);
            return;
        }
        send_b64_element(cs, "success", out->data, out->len);
        sz_sasl_free(cs->sasl);
        cs->sasl = NULL;
        sz_free(cs->cb_unique); /* channel binding is for SASL only */
        cs->cb_unique = NULL;
        cs->authed = j;
        cs->flags |= F_AUTHED;
        c2s_uncount_source(cs);
        /* RFC 6120 §6.4.6: the client restarts the stream. */
        cs->stage = ST_HEADER;
        cs->flags &= (uint16_t)~F_HEADER_SENT;
        sz_xml_parser_reset(&cs->xp);
        sz_xml_limits_t lim = {SZ_CONF_LIMIT(c2s_conf, max_stanza_bytes),
                               (uint16_t)SZ_CONF_LIMIT(c2s_conf, max_depth),
                               (uint16_t)SZ_CONF_LIMIT(c2s_conf, max_attrs)};
        sz_xml_parser_set_limits(&cs->xp, &lim);
        SZ_DEBUG("msg=\"authenticated\" conn=%llu jid=%s", (unsigned long long)cs->c->id, jid);
        /* Every resource of a user lives on its home reactor (DESIGN §2).
         * <success/> is queued and goes out from there. */
        sz_reactor_t *r = sz_conn_reactor(cs->c);
        unsigned home = sz_router_home(j, r->n);
        if (home != r->id)
            sz_conn_move(cs->c, home);
        return;
    }
    case SZ_SASL_FAILURE: {
        /* <out> points into the exchange: take what is needed first. */
        bool counts = out->counts;
        const char *e = out->scram_error; /* static */
        SZ_DEBUG("msg=\"sasl failure\" conn=%llu condition=%s detail=\"%s\"",
                 (unsigned long long)cs->c->id, sz_sasl_err_name(out->err),
                 out->text ? out->text : "");
        sz_sasl_free(cs->sasl);
        cs->sasl = NULL;
        sasl_failure(cs, out->err, counts, e);
        return;
    }
    }
}

void c2s_on_sasl(struct c2s *cs, const char *span, size_t len, const sz_xml_head_t *h)
{
    sz_xml_tree_t *t = sz_xml_tree_parse(span, len, h->scope);
    const sz_xml_node_t *root = t ? sz_xml_tree_root(t) : NULL;
    size_t tl = 0;
    const char *text = root ? sz_xml_text(root, &tl) : NULL;
    sz_sasl_out_t out;
    enum sz_sasl_result r;
    if (!root) {
        c2s_stream_error(cs, SZ_STREAM_BAD_FORMAT);
        goto done;
    }
    if (c2s_name_is(span, h, "auth")) {
        if (cs->sasl || (cs->flags & F_LOOKUP)) {
            c2s_stream_error(cs, SZ_STREAM_POLICY_VIOLATION); /* a second exchange mid-way */
            goto done;
        }
        if (c2s_listener(cs)->kind == SZ_LISTEN_C2S &&
            c2s_listener(cs)->tls == SZ_TLS_STARTTLS_REQUIRED && !(cs->flags & F_TLS)) {
            sasl_failure(cs, SZ_SASL_ERR_ENCRYPTION_REQUIRED, false, NULL);
            goto done;
        }
        size_t ml = 0;
        const char *mech = sz_xml_attr(root, "mechanism", NULL, &ml);
        uint8_t *ir = NULL;
        ptrdiff_t irlen = 0;
        if (tl) {
            ir = sz_malloc(sz_sasl_b64_decoded_max(tl) + 1);
            irlen = sz_sasl_text_decode(text, tl, ir, sz_sasl_b64_decoded_max(tl) + 1);
            if (irlen < 0) {
                sz_free(ir);
                sasl_failure(cs, SZ_SASL_ERR_INCORRECT_ENCODING, false, NULL);
                goto done;
            }
        }
        uint8_t cb_exp[SZ_TLS_CB_EXPORTER_BYTES], cb_ep[64], cb_un[SZ_TLS_CB_UNIQUE_MAX_BYTES];
        size_t cb_ep_len = sizeof(cb_ep), cb_un_len = sizeof(cb_un);
        unsigned f = c2s_sasl_flags(cs);
        sz_sasl_opts_t o = {.flags = f, .domain = c2s_conf->hosts[cs->host].domain,
                            .domain_len = strlen(c2s_conf->hosts[cs->host].domain),
                            .fake_iterations = SZ_CONF_LIMIT(c2s_conf, scram_iterations)};
        if (c2s_conf->node.secret) {
            o.secret = (const uint8_t *)c2s_conf->node.secret;
            o.secret_len = strlen(c2s_conf->node.secret);
        }
        /* The binding data is read only by a -PLUS exchange: other
         * mechanisms need the flags alone (the downgrade check), so the
         * exporter (an HKDF) is derived only for those. */
        bool plus = mech && ml > 5 && memcmp(mech + ml - 5, "-PLUS", 5) == 0;
        if (plus && (f & SZ_SASL_F_CB_EXPORTER) && sz_tls_cb_exporter(cs->tls, cb_exp) == 0)
            o.cb_exporter = cb_exp;
        if ((f & SZ_SASL_F_CB_ENDPOINT) &&
            sz_tls_cb_server_end_point(cs->tls, cb_ep, &cb_ep_len) == 0) {
            o.cb_endpoint = cb_ep;
            o.cb_endpoint_len = cb_ep_len;
        }
        if (plus && (f & SZ_SASL_F_CB_UNIQUE)) {
            if (cs->cb_unique) {
                o.cb_unique = cs->cb_unique + 1;
                o.cb_unique_len = cs->cb_unique[0];
            } else if (sz_tls_cb_unique(cs->tls, cb_un, &cb_un_len) == 0) {
                o.cb_unique = cb_un;
                o.cb_unique_len = cb_un_len;
            }
        }
        cs->sasl = sz_sasl_new(&o);
        r = sz_sasl_start(cs->sasl, mech ? mech : "", mech ? ml : 0, tl ? ir : NULL,
                          (size_t)irlen, &out);
        sz_free(ir);
        sasl_result(cs, r, &out);
    } else if (c2s_name_is(span, h, "response") || c2s_name_is(span, h, "abort")) {
        if (!cs->sasl) {
            /* RFC 6120 §6.4: no exchange running. */
            c2s_stream_error(cs, SZ_STREAM_NOT_AUTHORIZED);
            goto done;
        }
        if (cs->flags & F_LOOKUP) {
            /* The exchange is held by a lookup or a worker: answer when it
             * comes back (see spoke_out_of_turn()). */
            cs->flags |= F_SPOKE;
            goto done;
        }
        if (c2s_name_is(span, h, "abort")) {
            r = sz_sasl_fail(cs->sasl, SZ_SASL_ERR_ABORTED, &out);
        } else {
            uint8_t *resp = sz_malloc(sz_sasl_b64_decoded_max(tl) + 1);
            ptrdiff_t rl = sz_sasl_text_decode(text ? text : "", tl, resp,
                                               sz_sasl_b64_decoded_max(tl) + 1);
            r = rl < 0 ? sz_sasl_fail(cs->sasl, SZ_SASL_ERR_INCORRECT_ENCODING, &out)
                       : sz_sasl_step(cs->sasl, resp, (size_t)rl, &out);
            sz_free(resp);
        }
        sasl_result(cs, r, &out);
    } else {
        c2s_stream_error(cs, SZ_STREAM_UNSUPPORTED_STANZA_TYPE);
    }
done:
    sz_xml_tree_free(t);
}
