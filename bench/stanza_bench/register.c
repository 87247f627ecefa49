/*
 * XEP-0077 provisioning: for each account, connect (bound to the next
 * source address of the range), open a stream, wait for the features, send
 * the registration <iq type='set'>, read the answer, close the stream.
 * The server's stream is read with the project's XML parser, so any
 * well-formed server output is understood. Blocking sockets with timeouts:
 * provisioning is a setup step, not a measurement.
 */
#include "bench/stanza_bench/register.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/xml/parser.h"
#include "core/xml/tree.h"

#define STEP_TIMEOUT_MS 10000
#define NS_REGISTER     "jabber:iq:register"
#define NS_STANZAS      "urn:ietf:params:xml:ns:xmpp-stanzas"

enum outcome { R_NONE = 0, R_CREATED, R_EXISTS, R_ERROR };

struct reg {
    bool features;      /* <stream:features> seen */
    bool ended;         /* stream closed or failed */
    enum outcome out;   /* answer to our iq */
    char cond[64];      /* error condition, stream error or transport problem */
};

static void set_cond(struct reg *g, const char *prefix, const char *name, size_t len)
{
    snprintf(g->cond, sizeof(g->cond), "%s%.*s", prefix, (int)len, name);
}

static int on_element(void *ud, const char *span, size_t len, const sz_xml_head_t *h)
{
    struct reg *g = ud;
    const char *name = span + h->name.off;
    size_t nl = h->name.len;
    if (h->ns_id == SZ_XML_NS_STREAMS && nl == 8 && memcmp(name, "features", 8) == 0) {
        g->features = true;
        return 0;
    }
    sz_xml_tree_t *t = sz_xml_tree_parse(span, len, h->scope);
    const sz_xml_node_t *root = t ? sz_xml_tree_root(t) : NULL;
    if (h->ns_id == SZ_XML_NS_STREAMS && nl == 5 && memcmp(name, "error", 5) == 0) {
        const sz_xml_node_t *c = root ? root->children : NULL;
        while (c && c->kind != SZ_XML_ELEM)
            c = c->next;
        if (c)
            set_cond(g, "stream:", c->name, c->name_len);
        else
            set_cond(g, "stream:", "error", 5);
        g->ended = true;
    } else if (root && nl == 2 && memcmp(name, "iq", 2) == 0) {
        size_t il = 0, tl = 0;
        const char *id = sz_xml_attr(root, "id", NULL, &il);
        const char *type = sz_xml_attr(root, "type", NULL, &tl);
        if (id && il == 3 && memcmp(id, "reg", 3) == 0 && type) {
            if (tl == 6 && memcmp(type, "result", 6) == 0) {
                g->out = R_CREATED;
            } else {
                const sz_xml_node_t *e = sz_xml_child(root, "error", "jabber:client");
                const sz_xml_node_t *c = e ? e->children : NULL;
                while (c && !(c->kind == SZ_XML_ELEM && c->ns && c->ns_len == strlen(NS_STANZAS) &&
                              memcmp(c->ns, NS_STANZAS, c->ns_len) == 0))
                    c = c->next;
                if (c && c->name_len == 8 && memcmp(c->name, "conflict", 8) == 0)
                    g->out = R_EXISTS;
                else {
                    g->out = R_ERROR;
                    if (c)
                        set_cond(g, "stanza:", c->name, c->name_len);
                    else
                        set_cond(g, "stanza:", "error", 5);
                }
            }
        }
    }
    sz_xml_tree_free(t);
    return 0;
}

static int on_end(void *ud)
{
    ((struct reg *)ud)->ended = true;
    return 0;
}

static const sz_xml_ops_t ops = {NULL, on_element, on_end};

/* XML-escapes <s> into <out>. */
static void esc(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 7 < cap; s++) {
        const char *r = *s == '&' ? "&amp;" : *s == '<' ? "&lt;" : *s == '>' ? "&gt;"
                      : *s == '\'' ? "&apos;" : *s == '"' ? "&quot;" : NULL;
        if (r) {
            memcpy(out + n, r, strlen(r));
            n += strlen(r);
        } else {
            out[n++] = *s;
        }
    }
    out[n] = '\0';
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Reads and parses until <done>(g) holds, the stream ends or time runs out. */
static int pump(int fd, sz_xml_parser_t *xp, struct reg *g, bool (*done)(const struct reg *))
{
    char buf[8192];
    while (!done(g) && !g->ended) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int pr = poll(&pfd, 1, STEP_TIMEOUT_MS);
        if (pr == 0) {
            snprintf(g->cond, sizeof(g->cond), "client:timeout");
            return -1;
        }
        ssize_t r = recv(fd, buf, sizeof(buf), 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            snprintf(g->cond, sizeof(g->cond), r == 0 ? "recv:eof" : "recv:%s", strerror(errno));
            return -1;
        }
        ssize_t k = sz_xml_parser_feed(xp, buf, (size_t)r);
        if (k < 0) {
            snprintf(g->cond, sizeof(g->cond), "client:not-well-formed");
            return -1;
        }
    }
    return done(g) ? 0 : -1;
}

static bool have_features(const struct reg *g) { return g->features; }
static bool have_answer(const struct reg *g) { return g->out != R_NONE; }

static enum outcome register_one(const sb_conf_t *cf, uint32_t n, uint32_t src, char *cond,
                                 size_t condlen)
{
    char user[160], pass[160], eu[512], ep[512];
    sb_pattern(cf->user_pattern, n, user, sizeof(user));
    sb_pattern(cf->pass_pattern, n, pass, sizeof(pass));
    esc(user, eu, sizeof(eu));
    esc(pass, ep, sizeof(ep));
    struct reg g = {0};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(cond, condlen, "socket:%s", strerror(errno));
        return R_ERROR;
    }
    struct timeval tv = {STEP_TIMEOUT_MS / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (src) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(src)};
        int one = 1;
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
            snprintf(cond, condlen, "bind:%s", strerror(errno));
            close(fd);
            return R_ERROR;
        }
    }
    if (connect(fd, (const struct sockaddr *)&cf->server, sizeof(cf->server)) < 0) {
        snprintf(cond, condlen, "connect:%s", strerror(errno));
        close(fd);
        return R_ERROR;
    }
    sz_xml_parser_t xp;
    sz_xml_parser_init(&xp, NULL, &ops, &g);
    char out[2048];
    int len = snprintf(out, sizeof(out),
                       "<?xml version='1.0'?><stream:stream to='%s' version='1.0' "
                       "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>",
                       cf->domain);
    if (send_all(fd, out, (size_t)len) < 0 || pump(fd, &xp, &g, have_features) < 0)
        goto done;
    len = snprintf(out, sizeof(out),
                   "<iq type='set' id='reg'><query xmlns='" NS_REGISTER "'><username>%s</username>"
                   "<password>%s</password></query></iq>",
                   eu, ep);
    if (send_all(fd, out, (size_t)len) < 0 || pump(fd, &xp, &g, have_answer) < 0)
        goto done;
    send_all(fd, "</stream:stream>", 16);
done:
    sz_xml_parser_free(&xp);
    close(fd);
    if (g.out == R_NONE || g.out == R_ERROR) {
        snprintf(cond, condlen, "%s", g.cond[0] ? g.cond : "client:no-answer");
        return R_ERROR;
    }
    return g.out;
}

struct count {
    char cond[64];
    uint32_t n;
};

int sb_register_accounts(const sb_conf_t *cf)
{
    uint32_t created = 0, exists = 0, failed = 0;
    struct count counts[16];
    unsigned ncounts = 0;
    uint32_t src = cf->src_lo;
    for (uint32_t i = 0; i < cf->users; i++) {
        char cond[64] = "";
        enum outcome o = register_one(cf, cf->first + i, src, cond, sizeof(cond));
        if (src)
            src = src >= cf->src_hi ? cf->src_lo : src + 1;
        if (o == R_CREATED) {
            created++;
            continue;
        }
        if (o == R_EXISTS) {
            exists++;
            continue;
        }
        failed++;
        unsigned k = 0;
        while (k < ncounts && strcmp(counts[k].cond, cond) != 0)
            k++;
        if (k == ncounts && ncounts < 16) {
            snprintf(counts[ncounts].cond, sizeof(counts[0].cond), "%s", cond);
            counts[ncounts++].n = 0;
        }
        if (k < ncounts)
            counts[k].n++;
    }
    fprintf(stderr, "stanza-bench: provision (XEP-0077): %u accounts: %u created, %u existed, %u failed\n",
            cf->users, created, exists, failed);
    for (unsigned k = 0; k < ncounts; k++)
        fprintf(stderr, "  %-40s %u\n", counts[k].cond, counts[k].n);
    return failed ? 1 : 0;
}
