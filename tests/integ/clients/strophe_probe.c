/*
 * strophe_probe: libstrophe (Debian libstrophe-dev) as a user runs it, for
 * tests/integ/test_clients.py. Defaults everywhere (SASL mechanism order,
 * STARTTLS, stream management) except what a user must give: the JID and
 * password, the server's address (no DNS here), Direct TLS when asked
 * (XMPP_CONN_FLAG_LEGACY_SSL) and XMPP_CONN_FLAG_TRUST_TLS, the library's
 * documented flag to accept the test's self-signed certificate.
 *
 * Steps, each one JSON line on stdout (clients/README.md): connect, log
 * in, bind, initial presence, roster get, a message to <peer>, the answer
 * from <peer> (<expect>), disconnect. The whole run has a deadline of
 * 4 x <timeout> seconds; exit status 0 only when every step asked for
 * worked. What the library chose (SASL mechanism, gs2 header) is read from
 * its own debug log of the stream.
 *
 * Usage: strophe_probe JID PASSWORD HOST PORT starttls|direct TIMEOUT_S
 *        [PEER BODY EXPECT]
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <strophe.h>

struct probe {
    xmpp_ctx_t *ctx;
    const char *peer, *body, *expect;
    bool bound, roster_done, received, failed, closed;
    char mech[64];      /* the <auth mechanism=''> the library sent */
    char gs2[64];       /* its gs2 header (SCRAM), from the initial response */
};

/* Prints <s> as a JSON string (quotes, backslashes and controls escaped). */
static void json_str(const char *s)
{
    putchar('"');
    for (; s && *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The base64 initial response's gs2 header ("n,,", "y,,", "p=...,,"). */
static void gs2_from_ir(const char *b64, char *out, size_t outsz)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned char raw[96];
    size_t n = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; *b64 && *b64 != '<' && *b64 != '=' && n < sizeof(raw); b64++) {
        const char *p = strchr(tbl, *b64);
        if (!p)
            break;
        acc = (acc << 6) | (unsigned)(p - tbl);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            raw[n++] = (unsigned char)(acc >> bits);
        }
    }
    /* Up to and including the second ',' (gs2-cbind-flag "," [authzid] ","). */
    size_t i = 0, commas = 0;
    while (i < n && i + 1 < outsz && commas < 2) {
        out[i] = (char)raw[i];
        if (raw[i] == ',')
            commas++;
        i++;
    }
    out[i] = 0;
}

/*
 * libstrophe logs every stanza it sends at debug level ("SENT: <auth ...");
 * the probe keeps what it chose for SASL and forwards only warnings and
 * errors (stderr stays readable for a failing test).
 */
static void on_log(void *ud, xmpp_log_level_t level, const char *area, const char *msg)
{
    struct probe *p = ud;
    const char *a = strstr(msg, "<auth ");
    if (a && strstr(msg, "SENT")) {
        const char *m = strstr(a, "mechanism=\"");
        char q = '"';
        if (!m) {
            m = strstr(a, "mechanism='");
            q = '\'';
        }
        if (m) {
            m += 11;
            size_t k = 0;
            while (m[k] && m[k] != q && k + 1 < sizeof(p->mech))
                k++;
            memcpy(p->mech, m, k);
            p->mech[k] = 0;
            const char *ir = strchr(m, '>');
            p->gs2[0] = 0;
            if (ir && strncmp(p->mech, "SCRAM", 5) == 0)
                gs2_from_ir(ir + 1, p->gs2, sizeof(p->gs2));
        }
    }
    if (level >= XMPP_LEVEL_WARN)
        fprintf(stderr, "strophe %s: %s\n", area, msg);
}

static int on_message(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    struct probe *p = ud;
    (void)conn;
    const char *type = xmpp_stanza_get_type(st);
    if (type && strcmp(type, "error") == 0)
        return 1;
    char *body = xmpp_message_get_body(st);
    if (body && p->expect && strcmp(body, p->expect) == 0 && !p->received) {
        p->received = true;
        printf("{\"ev\": \"received\", \"frm\": ");
        json_str(xmpp_stanza_get_from(st));
        printf(", \"body\": ");
        json_str(body);
        printf("}\n");
        fflush(stdout);
    }
    if (body)
        xmpp_free(p->ctx, body);
    return 1;
}

static int on_roster(xmpp_conn_t *conn, xmpp_stanza_t *st, void *ud)
{
    struct probe *p = ud;
    (void)conn;
    const char *type = xmpp_stanza_get_type(st);
    xmpp_stanza_t *q = xmpp_stanza_get_child_by_ns(st, "jabber:iq:roster");
    printf("{\"ev\": \"roster\", \"type\": ");
    json_str(type);
    if (q && type && strcmp(type, "result") == 0)
        printf(", \"ns\": \"jabber:iq:roster\"");
    xmpp_stanza_t *err = xmpp_stanza_get_child_by_name(st, "error");
    if (err) {
        xmpp_stanza_t *c = xmpp_stanza_get_children(err);
        for (; c; c = xmpp_stanza_get_next(c)) {
            const char *ns = xmpp_stanza_get_ns(c);
            const char *name = xmpp_stanza_get_name(c);
            if (ns && name && strcmp(ns, "urn:ietf:params:xml:ns:xmpp-stanzas") == 0 &&
                strcmp(name, "text") != 0) {
                printf(", \"cond\": ");
                json_str(name);
                break;
            }
        }
    }
    printf("}\n");
    fflush(stdout);
    p->roster_done = true;
    return 0;
}

static void on_conn(xmpp_conn_t *conn, xmpp_conn_event_t ev, int error,
                    xmpp_stream_error_t *serr, void *ud)
{
    struct probe *p = ud;
    (void)serr;
    if (ev != XMPP_CONN_CONNECT) {
        if (!p->bound) {
            printf("{\"ev\": \"login_failed\", \"why\": \"%s\", \"error\": %d, \"attempts\": "
                   "[{\"mech\": ",
                   ev == XMPP_CONN_FAIL ? "connection failed" : "disconnected", error);
            json_str(p->mech);
            printf(", \"gs2\": ");
            json_str(p->gs2);
            printf("}]}\n");
            p->failed = true;
        }
        p->closed = true;
        fflush(stdout);
        xmpp_stop(p->ctx);
        return;
    }
    p->bound = true;
    printf("{\"ev\": \"bound\", \"jid\": ");
    json_str(xmpp_conn_get_bound_jid(conn));
    printf(", \"mech\": ");
    json_str(p->mech);
    printf(", \"gs2\": ");
    json_str(p->gs2);
    /* libstrophe 0.12 has no call that tells the TLS version. */
    printf(", \"tls\": null, \"secured\": %s}\n", xmpp_conn_is_secured(conn) ? "true" : "false");

    xmpp_handler_add(conn, on_message, NULL, "message", NULL, p);
    xmpp_stanza_t *pres = xmpp_presence_new(p->ctx);
    xmpp_send(conn, pres);
    xmpp_stanza_release(pres);
    printf("{\"ev\": \"presence\"}\n");

    /* The roster get of RFC 6121 §2.2; on_roster reports the answer. */
    xmpp_stanza_t *iq = xmpp_iq_new(p->ctx, "get", "roster1");
    xmpp_stanza_t *q = xmpp_stanza_new(p->ctx);
    xmpp_stanza_set_name(q, "query");
    xmpp_stanza_set_ns(q, "jabber:iq:roster");
    xmpp_stanza_add_child(iq, q);
    xmpp_stanza_release(q);
    xmpp_id_handler_add(conn, on_roster, "roster1", p);
    xmpp_send(conn, iq);
    xmpp_stanza_release(iq);

    if (p->peer) {
        xmpp_stanza_t *m = xmpp_message_new(p->ctx, "chat", p->peer, "msg1");
        xmpp_message_set_body(m, p->body);
        xmpp_send(conn, m);
        xmpp_stanza_release(m);
        printf("{\"ev\": \"sent\", \"to\": ");
        json_str(p->peer);
        printf("}\n");
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    if (argc != 7 && argc != 10) {
        fprintf(stderr, "usage: %s JID PASSWORD HOST PORT starttls|direct TIMEOUT_S "
                        "[PEER BODY EXPECT]\n", argv[0]);
        return 2;
    }
    struct probe p = {0};
    double timeout = atof(argv[6]);
    if (argc == 10) {
        p.peer = argv[7];
        p.body = argv[8];
        p.expect = argv[9];
    }
    xmpp_log_t log = {on_log, &p};
    xmpp_initialize();
    p.ctx = xmpp_ctx_new(NULL, &log);
    xmpp_conn_t *conn = xmpp_conn_new(p.ctx);
    long flags = XMPP_CONN_FLAG_TRUST_TLS;
    if (strcmp(argv[5], "direct") == 0)
        flags |= XMPP_CONN_FLAG_LEGACY_SSL;
    xmpp_conn_set_flags(conn, flags);
    xmpp_conn_set_jid(conn, argv[1]);
    xmpp_conn_set_pass(conn, argv[2]);
    int rc = 1;
    if (xmpp_connect_client(conn, argv[3], (unsigned short)atoi(argv[4]), on_conn, &p) != 0) {
        printf("{\"ev\": \"login_failed\", \"why\": \"xmpp_connect_client\"}\n");
        goto fail_conn;
    }

    /* Run until every step asked for is done, then disconnect and run
     * until the library reports the stream closed. */
    double deadline = now_s() + 4 * timeout;
    bool asked_close = false;
    while (!p.closed && now_s() < deadline) {
        xmpp_run_once(p.ctx, 100);
        bool done = p.bound && p.roster_done && (!p.peer || p.received);
        if (done && !asked_close) {
            asked_close = true;
            xmpp_disconnect(conn);
        }
    }
    if (!p.closed) {
        printf("{\"ev\": \"timeout\", \"bound\": %s, \"roster\": %s, \"received\": %s}\n",
               p.bound ? "true" : "false", p.roster_done ? "true" : "false",
               p.received ? "true" : "false");
    } else if (p.bound && asked_close) {
        printf("{\"ev\": \"closed\"}\n");
        rc = 0;
    } else if (p.bound) {
        printf("{\"ev\": \"closed\", \"early\": true}\n");
    }
    fflush(stdout);
fail_conn:
    xmpp_conn_release(conn);
    xmpp_ctx_free(p.ctx);
    xmpp_shutdown();
    return rc;
}
