/*
 * sb-reflector: a deliberately trivial XMPP endpoint, to measure what
 * stanza-bench itself costs per message (bench/README-stanza-bench.md,
 * "Cost of the tool"). It is not an XMPP server: it does what
 * stanza-bench's plaintext logins and one2one need and nothing else.
 *
 * - Any TCP connection on --port gets a stream header and features that
 *   offer SASL PLAIN only (run the tool with --mech PLAIN); any PLAIN
 *   credentials succeed, and the user is the authcid.
 * - After the restart it offers bind and binds <user>@<domain>/<resource>
 *   (the domain is the stream header's 'to'); a later bind of the same bare
 *   JID takes it over. Any other iq get/set gets an empty result; iq
 *   results, errors and presence are dropped.
 * - <message to='X'> is forwarded byte for byte to the connection bound as
 *   X's bare JID (one hash table), without a 'from' (stanza-bench reads
 *   only the body); a message for nobody is dropped and counted.
 *
 * Input goes through the project's incremental parser (core/xml), which
 * reports each top-level element as a span with its name, namespace and
 * to/id/type offsets: that is all the routing needs, and it keeps no
 * buffer per connection. One thread, epoll, level-triggered; output is
 * appended to per-connection buffers and written once per connection per
 * loop iteration (a batch of events). On SIGTERM or SIGINT it prints its
 * counters and CPU as one key=value line on stderr and exits 0.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/xml/parser.h"

#define NS_SASL "urn:ietf:params:xml:ns:xmpp-sasl"
#define NS_BIND "urn:ietf:params:xml:ns:xmpp-bind"

#define READ_BYTES   (64 * 1024) /* one read per readiness event, into one shared buffer */
#define MAX_EVENTS   256
#define KEEP_OUT_CAP (64 * 1024) /* a flushed output buffer larger than this is freed */

enum cstate { C_OPEN = 0, C_AUTH, C_AUTHED, C_BOUND, C_CLOSED };

struct conn {
    int fd;
    uint8_t state;         /* enum cstate */
    bool dirty;            /* on the dirty list: output to write */
    bool want_out;         /* EPOLLOUT armed: the socket was full */
    sz_xml_parser_t xp;
    char *domain;          /* the header's 'to' (heap) */
    char *jid;             /* bare JID once authenticated (heap) */
    uint32_t jid_len, hash;
    struct conn *hnext;    /* hash chain, while bound */
    struct conn *next;     /* dirty list, or the dead list once closed */
    struct conn *aprev, *anext; /* every open connection (freed at exit) */
    char *out;             /* bytes [out_off, out_len) still to write */
    size_t out_len, out_off, out_cap;
};

static struct {
    int ep, lfd, sfd;
    struct conn **tab;     /* bare JID -> bound connection, chained */
    size_t nbuckets, nbound;
    struct conn *dirty, *dead, *all;
    uint64_t accepted, logins, forwarded, dropped, iqs, bytes_in, bytes_out;
    uint64_t next_id;
} g;

/* ---- output ------------------------------------------------------------------- */

static void out_add(struct conn *c, const void *p, size_t n)
{
    if (c->state == C_CLOSED)
        return;
    if (c->out_len + n > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 4096;
        while (cap < c->out_len + n)
            cap *= 2;
        c->out = realloc(c->out, cap);
        if (!c->out)
            abort();
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
    if (!c->dirty) {
        c->dirty = true;
        c->next = g.dirty;
        g.dirty = c;
    }
}

static void out_str(struct conn *c, const char *s)
{
    out_add(c, s, strlen(s));
}

/* ---- bare JID table --------------------------------------------------------------- */

static uint32_t fnv1a(const char *p, size_t n)
{
    uint32_t h = 2166136261u;
    while (n--)
        h = (h ^ (uint8_t)*p++) * 16777619u;
    return h;
}

static struct conn **slot_of(const char *jid, size_t n, uint32_t h)
{
    struct conn **pp = &g.tab[h & (g.nbuckets - 1)];
    while (*pp && ((*pp)->jid_len != n || memcmp((*pp)->jid, jid, n) != 0))
        pp = &(*pp)->hnext;
    return pp;
}

static void tab_grow(void)
{
    size_t nb = g.nbuckets * 2;
    struct conn **t = calloc(nb, sizeof(*t));
    if (!t)
        abort();
    for (size_t i = 0; i < g.nbuckets; i++) {
        for (struct conn *c = g.tab[i], *n; c; c = n) {
            n = c->hnext;
            c->hnext = t[c->hash & (nb - 1)];
            t[c->hash & (nb - 1)] = c;
        }
    }
    free(g.tab);
    g.tab = t;
    g.nbuckets = nb;
}

/* Binds <c> as its bare JID; an earlier connection of that JID loses it. */
static void tab_bind(struct conn *c)
{
    if (g.nbound >= g.nbuckets)
        tab_grow();
    struct conn **pp = slot_of(c->jid, c->jid_len, c->hash);
    if (*pp) {
        c->hnext = (*pp)->hnext;
        (*pp)->hnext = NULL;
        (*pp)->state = C_AUTHED; /* still open, no longer reachable */
    } else {
        c->hnext = NULL;
        g.nbound++;
    }
    *pp = c;
    c->state = C_BOUND;
}

static void tab_unbind(struct conn *c)
{
    struct conn **pp = slot_of(c->jid, c->jid_len, c->hash);
    if (*pp == c) {
        *pp = c->hnext;
        g.nbound--;
    }
    c->hnext = NULL;
}

/* ---- connections ------------------------------------------------------------------ */

/* Closes the socket now; the struct is freed after the event batch, since
 * later events of the batch (and the dirty list) may still point at it. */
static void conn_close(struct conn *c)
{
    if (c->state == C_CLOSED)
        return;
    if (c->state == C_BOUND)
        tab_unbind(c);
    c->state = C_CLOSED;
    close(c->fd);
    c->fd = -1;
    if (c->aprev)
        c->aprev->anext = c->anext;
    else
        g.all = c->anext;
    if (c->anext)
        c->anext->aprev = c->aprev;
    if (!c->dirty) { /* a dirty one is moved to the dead list by flush_all */
        c->next = g.dead;
        g.dead = c;
    }
}

static void conn_free(struct conn *c)
{
    sz_xml_parser_free(&c->xp);
    free(c->domain);
    free(c->jid);
    free(c->out);
    free(c);
}

/* Writes what <c> has queued; arms EPOLLOUT when the socket is full. */
static void flush(struct conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            if (!c->want_out) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev);
                c->want_out = true;
            }
            return;
        }
        if (n <= 0) {
            conn_close(c);
            return;
        }
        c->out_off += (size_t)n;
        g.bytes_out += (uint64_t)n;
    }
    c->out_len = c->out_off = 0;
    if (c->out_cap > KEEP_OUT_CAP) {
        free(c->out);
        c->out = NULL;
        c->out_cap = 0;
    }
    if (c->want_out) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(g.ep, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = false;
    }
}

/* End of an event batch: one write per connection with output. */
static void flush_all(void)
{
    while (g.dirty) {
        struct conn *c = g.dirty;
        g.dirty = c->next;
        c->dirty = false;
        if (c->state == C_CLOSED) {
            c->next = g.dead;
            g.dead = c;
        } else {
            flush(c); /* if that closes it, conn_close puts it on the dead list */
        }
    }
    while (g.dead) {
        struct conn *c = g.dead;
        g.dead = c->next;
        conn_free(c);
    }
}

/* ---- the protocol ------------------------------------------------------------------ */

static const char *attr(const char *span, const sz_xml_head_t *h, enum sz_xml_attr_idx i,
                        size_t *len)
{
    *len = h->attr[i].len;
    return h->attr[i].off ? span + h->attr[i].off : NULL;
}

static bool name_is(const char *span, const sz_xml_head_t *h, const char *name)
{
    size_t n = strlen(name);
    return h->name.len == n && memcmp(span + h->name.off, name, n) == 0;
}

/* Text between the start tag and the end tag of a simple element. */
static const char *inner(const char *span, size_t len, size_t *n)
{
    const char *gt = memchr(span, '>', len);
    if (!gt || gt[-1] == '/') {
        *n = 0;
        return span;
    }
    const char *lt = span + len - 1; /* the '>' of the end tag */
    while (lt > gt && *lt != '<')
        lt--;
    *n = lt > gt ? (size_t)(lt - gt - 1) : 0;
    return gt + 1;
}

static int b64val(char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    return ch == '+' ? 62 : ch == '/' ? 63 : -1;
}

/* Base64 to <dst> (at least n * 3 / 4 bytes); -1 when malformed. */
static ssize_t b64dec(const char *src, size_t n, char *dst)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < n && src[i] != '='; i++) {
        int v = b64val(src[i]);
        if (v < 0)
            return -1;
        acc = acc << 6 | (uint32_t)v;
        if ((bits += 6) >= 8) {
            bits -= 8;
            dst[o++] = (char)(acc >> bits);
        }
    }
    return (ssize_t)o;
}

static void send_header(struct conn *c, bool authed)
{
    char buf[768];
    int n = snprintf(buf, sizeof(buf),
                     "<?xml version='1.0'?><stream:stream xmlns='jabber:client' "
                     "xmlns:stream='http://etherx.jabber.org/streams' id='r%llu' from='%s' "
                     "version='1.0'><stream:features>%s</stream:features>",
                     (unsigned long long)++g.next_id, c->domain,
                     authed ? "<bind xmlns='" NS_BIND "'/>"
                            : "<mechanisms xmlns='" NS_SASL "'><mechanism>PLAIN</mechanism>"
                              "</mechanisms>");
    out_add(c, buf, (size_t)n);
}

static int on_header(void *ud, const char *span, size_t len, const sz_xml_head_t *h)
{
    struct conn *c = ud;
    (void)len;
    if (!c->domain) {
        size_t n;
        const char *to = attr(span, h, SZ_XML_A_TO, &n);
        if (!to || n == 0 || n > 255 || memchr(to, '\'', n) || memchr(to, '&', n)) {
            to = "localhost";
            n = 9;
        }
        c->domain = strndup(to, n);
        if (!c->domain)
            abort();
    }
    send_header(c, c->state == C_AUTHED);
    return 0;
}

/* SASL PLAIN (RFC 4616): authzid NUL authcid NUL password; any password. */
static void on_auth(struct conn *c, const char *span, size_t len)
{
    size_t n;
    const char *b64 = inner(span, len, &n);
    char dec[768];
    ssize_t k = n < 1000 ? b64dec(b64, n, dec) : -1;
    const char *nul1 = k > 0 ? memchr(dec, '\0', (size_t)k) : NULL;
    const char *user = nul1 ? nul1 + 1 : NULL;
    const char *nul2 = user ? memchr(user, '\0', (size_t)(dec + k - user)) : NULL;
    if (c->state != C_OPEN || !nul2 || nul2 == user) {
        out_str(c, "<failure xmlns='" NS_SASL "'><not-authorized/></failure>");
        return;
    }
    size_t ul = (size_t)(nul2 - user), dl = strlen(c->domain);
    c->jid = malloc(ul + 1 + dl + 1);
    if (!c->jid)
        abort();
    memcpy(c->jid, user, ul);
    c->jid[ul] = '@';
    memcpy(c->jid + ul + 1, c->domain, dl + 1);
    c->jid_len = (uint32_t)(ul + 1 + dl);
    c->hash = fnv1a(c->jid, c->jid_len);
    c->state = C_AUTHED;
    out_str(c, "<success xmlns='" NS_SASL "'/>");
    sz_xml_parser_reset(&c->xp); /* RFC 6120 §6.4.6: the client restarts */
    g.logins++;
}

/* <iq type='result' id=...>, with the client's raw id quoted as it came */
static void iq_result(struct conn *c, const char *id, size_t idn, const char *body)
{
    char buf[1024];
    char q = memchr(id, '\'', idn) ? '"' : '\'';
    int n = snprintf(buf, sizeof(buf), "<iq type='result' id=%c%.*s%c%s", q, (int)idn, id, q,
                     body);
    if (n > 0 && (size_t)n < sizeof(buf))
        out_add(c, buf, (size_t)n);
}

static void on_iq(struct conn *c, const char *span, size_t len, const sz_xml_head_t *h)
{
    size_t tn, idn;
    const char *type = attr(span, h, SZ_XML_A_TYPE, &tn);
    const char *id = attr(span, h, SZ_XML_A_ID, &idn);
    if (!id || !type || !((tn == 3 && memcmp(type, "get", 3) == 0) ||
                          (tn == 3 && memcmp(type, "set", 3) == 0)))
        return; /* results and errors: nothing to answer */
    g.iqs++;
    const char *rs = memmem(span, len, "<resource>", 10);
    const char *re = rs ? memmem(rs, len - (size_t)(rs - span), "</resource>", 11) : NULL;
    if (c->state == C_AUTHED && memmem(span, len, "<bind", 5) && rs && re) {
        char body[600];
        rs += 10;
        snprintf(body, sizeof(body), "><bind xmlns='" NS_BIND "'><jid>%s/%.*s</jid></bind></iq>",
                 c->jid, (int)(re - rs) > 256 ? 256 : (int)(re - rs), rs);
        iq_result(c, id, idn, body);
        tab_bind(c);
    } else {
        iq_result(c, id, idn, "/>");
    }
}

/* Forwards <message to='X'> as it is to X's bare JID. */
static void on_message(struct conn *c, const char *span, size_t len, const sz_xml_head_t *h)
{
    size_t n;
    const char *to = attr(span, h, SZ_XML_A_TO, &n);
    if (c->state != C_BOUND || !to) {
        g.dropped++;
        return;
    }
    const char *slash = memchr(to, '/', n);
    if (slash)
        n = (size_t)(slash - to);
    struct conn *d = *slot_of(to, n, fnv1a(to, n));
    if (!d) {
        g.dropped++;
        return;
    }
    out_add(d, span, len);
    g.forwarded++;
}

static int on_element(void *ud, const char *span, size_t len, const sz_xml_head_t *h)
{
    struct conn *c = ud;
    if (h->ns_id == SZ_XML_NS_SASL && name_is(span, h, "auth")) {
        on_auth(c, span, len);
        return 0;
    }
    if (h->ns_id != SZ_XML_NS_CLIENT)
        return 0;
    if (name_is(span, h, "message"))
        on_message(c, span, len, h);
    else if (name_is(span, h, "iq"))
        on_iq(c, span, len, h);
    return 0; /* presence: dropped */
}

static int on_end(void *ud)
{
    struct conn *c = ud;
    out_str(c, "</stream:stream>");
    flush(c);
    conn_close(c);
    return 1;
}

static const sz_xml_ops_t ops = {on_header, on_element, on_end};

/* ---- the loop ------------------------------------------------------------------------ */

static void on_accept(void)
{
    for (;;) {
        int fd = accept4(g.lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN)
                fprintf(stderr, "sb-reflector: accept: %s\n", strerror(errno));
            return;
        }
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct conn *c = calloc(1, sizeof(*c));
        if (!c)
            abort();
        c->fd = fd;
        sz_xml_parser_init(&c->xp, NULL, &ops, c);
        sz_xml_parser_set_content_ns(&c->xp, 1u << SZ_XML_NS_CLIENT);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(g.ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
            close(fd);
            free(c);
            continue;
        }
        c->anext = g.all;
        if (g.all)
            g.all->aprev = c;
        g.all = c;
        g.accepted++;
    }
}

static void on_input(struct conn *c)
{
    static char buf[READ_BYTES];
    ssize_t n = recv(c->fd, buf, sizeof(buf), 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        conn_close(c);
        return;
    }
    g.bytes_in += (uint64_t)n;
    ssize_t k = sz_xml_parser_feed(&c->xp, buf, (size_t)n);
    if (k < 0) {
        char e[160];
        snprintf(e, sizeof(e), "<stream:error><%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"
                 "</stream:error></stream:stream>", sz_stream_err_name((enum sz_stream_err)-k));
        out_str(c, e);
        flush(c);
        conn_close(c);
    }
}

static int listen_on(const char *addr, int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "sb-reflector: not an IPv4 address: %s\n", addr);
        return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
        bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4096) < 0) {
        fprintf(stderr, "sb-reflector: %s:%d: %s\n", addr, port, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static double cpu_s(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: sb-reflector --port N [--address A]\n"
               "A trivial XMPP endpoint for measuring stanza-bench itself: PLAIN accepts any\n"
               "credentials, bind always succeeds, <message to='X'/> goes to X's bare JID\n"
               "as it is, other iqs get an empty result, presence is dropped. Plaintext\n"
               "only (stanza-bench --mech PLAIN). SIGTERM prints its counters and exits.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"port", 1, NULL, 'p'}, {"address", 1, NULL, 'a'}, {"help", 0, NULL, 'h'}, {0, 0, 0, 0}};
    const char *addr = "127.0.0.1";
    int port = 0, o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'p': port = atoi(optarg); break;
        case 'a': addr = optarg; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (port <= 0 || port > 65535 || optind < argc) {
        usage(stderr);
        return 2;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    sigset_t ss;
    sigemptyset(&ss);
    sigaddset(&ss, SIGTERM);
    sigaddset(&ss, SIGINT);
    sigprocmask(SIG_BLOCK, &ss, NULL);
    g.nbuckets = 1024;
    g.tab = calloc(g.nbuckets, sizeof(*g.tab));
    g.ep = epoll_create1(EPOLL_CLOEXEC);
    g.sfd = signalfd(-1, &ss, SFD_CLOEXEC | SFD_NONBLOCK);
    g.lfd = listen_on(addr, port);
    if (!g.tab || g.ep < 0 || g.sfd < 0 || g.lfd < 0)
        return 1;
    /* the listener and the signal fd carry their fd as data, connections a pointer */
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &g.lfd};
    epoll_ctl(g.ep, EPOLL_CTL_ADD, g.lfd, &ev);
    ev.data.ptr = &g.sfd;
    epoll_ctl(g.ep, EPOLL_CTL_ADD, g.sfd, &ev);
    fprintf(stderr, "sb-reflector: listening on %s:%d\n", addr, port);
    bool stop = false;
    struct epoll_event evs[MAX_EVENTS];
    while (!stop) {
        int n = epoll_wait(g.ep, evs, MAX_EVENTS, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "sb-reflector: epoll_wait: %s\n", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &g.lfd) {
                on_accept();
                continue;
            }
            if (p == &g.sfd) {
                stop = true;
                continue;
            }
            struct conn *c = p;
            if (c->state == C_CLOSED)
                continue; /* closed earlier in this batch */
            if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
                on_input(c);
            if (c->state != C_CLOSED && (evs[i].events & EPOLLOUT) && !c->dirty)
                flush(c);
        }
        flush_all();
    }
    while (g.all)
        conn_close(g.all);
    flush_all(); /* frees them */
    free(g.tab);
    sz_xml_scratch_free();
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    fprintf(stderr,
            "sb-reflector: accepted=%llu logins=%llu forwarded=%llu dropped=%llu iqs=%llu "
            "bytes_in=%llu bytes_out=%llu cpu_user_s=%.3f cpu_sys_s=%.3f\n",
            (unsigned long long)g.accepted, (unsigned long long)g.logins,
            (unsigned long long)g.forwarded, (unsigned long long)g.dropped,
            (unsigned long long)g.iqs, (unsigned long long)g.bytes_in,
            (unsigned long long)g.bytes_out, cpu_s(&ru.ru_utime), cpu_s(&ru.ru_stime));
    close(g.lfd);
    close(g.sfd);
    close(g.ep);
    return 0;
}
