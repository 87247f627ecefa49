/*
 * The IM modules across reactors: two reactors on their own threads, a
 * user homed on each, so every subscription stanza, presence broadcast,
 * probe and answer between them crosses the rings (sz_router_route), and
 * each side's roster is read and written on its own home reactor.
 *
 * The test body runs on the main thread. It acts on a reactor by handing
 * it a command, which the reactor runs from a 1 ms timer; settle() asks
 * both reactors, on their own threads, whether they are idle (no module
 * holding a stanza, no storage request in flight, an empty inbound ring)
 * until they say so three rounds in a row.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/hooks.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/mod/modules.h"
#include "core/reactor.h"
#include "core/router.h"
#include "core/xml/parser.h"
#include "core/xq.h"
#include "storage/store.h"
#include "sz_test.h"

#define DOM    "example.org"
#define NR     2
#define FS_MAX 64

typedef struct fs {
    sz_session_t s;
    char *out[FS_MAX];
    unsigned n;
    unsigned home;
} fs_t;

struct rx {
    sz_reactor_t r;
    pthread_t t;
    sz_timer_t tick;
    int init;
    bool stop;
};

static struct rx rx[NR];
static sz_xq_t *xq;
static int ring_fds[NR] = {-1, -1};
static sz_store_t *store;

/* One command at a time for one reactor. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static void (*cmd_fn)(void *);
static void *cmd_arg;
static int cmd_dst = -1;
static unsigned started;

static void on_tick(sz_timer_t *t)
{
    struct rx *x = (struct rx *)((char *)t - offsetof(struct rx, tick));
    unsigned id = x->r.id;
    pthread_mutex_lock(&mu);
    if (cmd_dst == (int)id) {
        cmd_fn(cmd_arg);
        cmd_dst = -1;
        pthread_cond_broadcast(&cv);
    }
    pthread_mutex_unlock(&mu);
    if (!x->stop)
        sz_timer_arm(&x->r.wheel, &x->tick, sz_reactor_now(&x->r) + 1, on_tick);
}

/* Runs <fn>(<arg>) on reactor <id> and waits for it. */
static void on(unsigned id, void (*fn)(void *), void *arg)
{
    pthread_mutex_lock(&mu);
    while (cmd_dst >= 0)
        pthread_cond_wait(&cv, &mu);
    cmd_fn = fn;
    cmd_arg = arg;
    cmd_dst = (int)id;
    while (cmd_dst >= 0)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
}

static bool quiet_now(sz_reactor_t *r)
{
    return sz_hooks_pending() == 0 && sz_store_inflight() == 0 && sz_xq_idle(r->xq, r->id);
}

static void ask_quiet(void *arg)
{
    struct rx *x = &rx[sz_reactor_self()->id];
    *(bool *)arg = quiet_now(&x->r);
}

static void settle(void)
{
    for (int rounds = 0; rounds < 3;) {
        bool all = true;
        for (unsigned i = 0; i < NR; i++) {
            bool q = false;
            on(i, ask_quiet, &q);
            all &= q;
        }
        rounds = all ? rounds + 1 : 0;
        usleep(2000);
    }
}

static bool quiesced(sz_reactor_t *r)
{
    return quiet_now(r);
}

static void *run(void *arg)
{
    struct rx *x = arg;
    unsigned id = (unsigned)(x - rx);
    sz_reactor_opts_t o = {.id = id,
                           .n = NR,
                           .direct_slots = 16,
                           .recv_buffers = 16,
                           .recv_buffer_bytes = 1024,
                           .xq = xq,
                           .ring_fds = ring_fds,
                           .cpu = -1};
    x->init = sz_reactor_init(&x->r, &o);
    pthread_mutex_lock(&mu);
    started++;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    if (x->init < 0)
        return NULL;
    x->r.quiesced = quiesced;
    sz_router_init(&x->r);
    sz_timer_arm(&x->r.wheel, &x->tick, sz_reactor_now(&x->r) + 1, on_tick);
    sz_reactor_run(&x->r);
    sz_router_destroy(&x->r);
    sz_xml_scratch_free();
    sz_reactor_destroy(&x->r);
    return NULL;
}

static void do_stop(void *arg)
{
    struct rx *x = &rx[sz_reactor_self()->id];
    (void)arg;
    x->stop = true;
    x->r.stopping = true;
}

/* ---- fake sessions, driven on their home reactor ------------------------------ */

static void fs_deliver(sz_session_t *s, sz_stanza_t *st)
{
    fs_t *f = (fs_t *)s;
    size_t len;
    const char *raw = sz_stanza_raw(st, &len);
    char *c = strndup(raw, len);
    for (char *p = c; *p; p++)
        if (*p == '\'')
            *p = '"';
    if (f->n < FS_MAX)
        f->out[f->n++] = c;
    else
        free(c);
    sz_stanza_unref(st);
}

static void fs_kick(sz_session_t *s, enum sz_stream_err cond)
{
    (void)s;
    (void)cond;
}

static const sz_session_ops_t ops = {fs_deliver, fs_kick};

static void fs_clear(fs_t *f)
{
    for (unsigned i = 0; i < f->n; i++)
        free(f->out[i]);
    f->n = 0;
}

static void do_bind(void *arg)
{
    fs_t *f = arg;
    SZ_ASSERT(sz_router_bind(sz_reactor_self(), &f->s) == NULL);
}

static void fs_bind(fs_t *f, const char *full)
{
    memset(f, 0, sizeof(*f));
    SZ_ASSERT(sz_jid_parse(full, strlen(full), &f->s.jid) == 0);
    f->s.ops = &ops;
    f->home = sz_router_home(f->s.jid, NR);
    on(f->home, do_bind, f);
    settle();
}

static void do_unbind(void *arg)
{
    fs_t *f = arg;
    sz_router_unbind(sz_reactor_self(), &f->s);
}

static void fs_unbind(fs_t *f)
{
    on(f->home, do_unbind, f);
    settle();
    sz_jid_free(f->s.jid);
    fs_clear(f);
}

struct send {
    fs_t *f;
    const char *xml;
};

static void do_send(void *arg)
{
    struct send *sd = arg;
    sz_stanza_t *st = sz_stanza_from_xml(sd->xml, strlen(sd->xml));
    SZ_ASSERT(st);
    char to[1024];
    ssize_t n = sz_stanza_attr(st, SZ_XML_A_TO, to, sizeof(to));
    sz_jid_buf_t jb;
    sz_jid_t *j = NULL;
    if (n >= 0)
        SZ_ASSERT(sz_jid_parse_into(to, (size_t)n, &jb, sizeof(jb), &j, NULL) == 0);
    sz_router_from_client(sz_reactor_self(), &sd->f->s, st, j);
}

static void fs_send(fs_t *f, const char *fmt, ...)
{
    char xml[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(xml, sizeof(xml), fmt, ap);
    va_end(ap);
    struct send sd = {f, xml};
    on(f->home, do_send, &sd);
    settle();
}

static bool fs_has(const fs_t *f, const char *a, const char *b, const char *c)
{
    for (unsigned i = 0; i < f->n; i++)
        if (strstr(f->out[i], a) && (!b || strstr(f->out[i], b)) && (!c || strstr(f->out[i], c)))
            return true;
    return false;
}

static void check_got(const fs_t *f, int line, const char *x, const char *y, const char *z)
{
    if (fs_has(f, x, y, z))
        return;
    printf("# %s:%d: no stanza with %s %s %s\n", __FILE__, line, x, y ? y : "", z ? z : "");
    for (unsigned i = 0; i < f->n; i++)
        printf("#   [%u] %s\n", i, f->out[i]);
    sz_t_cur_failed = 1;
}

#define CHECK_GOT(f, x, y, z) check_got((f), __LINE__, (x), (y), (z))

/* ---- the test --------------------------------------------------------------------- */

static char ua[64], ub[64]; /* bare JIDs homed on reactor 0 and 1 */
static fs_t a, b;

SZ_TEST(handshake_and_presence_across_reactors)
{
    char af[96], bf[96];
    snprintf(af, sizeof(af), "%s/pc", ua);
    snprintf(bf, sizeof(bf), "%s/pc", ub);
    fs_bind(&a, af);
    fs_bind(&b, bf);
    SZ_CHECK(a.home != b.home);
    fs_send(&a, "<iq from='%s' type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>", af);
    fs_send(&b, "<iq from='%s' type='get' id='r'><query xmlns='jabber:iq:roster'/></iq>", bf);
    fs_send(&a, "<presence from='%s'/>", af);
    fs_send(&b, "<presence from='%s'><status>b here</status></presence>", bf);
    fs_clear(&a);
    fs_clear(&b);
    /* A asks B (§3.1.2, §3.1.3): the request crosses to B's reactor. */
    fs_send(&a, "<presence from='%s' to='%s' type='subscribe'/>", af, ub);
    CHECK_GOT(&a, "ask=\"subscribe\"", ub, NULL);
    CHECK_GOT(&b, "type=\"subscribe\"", ua, NULL);
    /* B approves (§3.1.5): back across, A gets To and B's presence. */
    fs_send(&b, "<presence from='%s' to='%s' type='subscribed'/>", bf, ua);
    CHECK_GOT(&b, "subscription=\"from\"", ua, NULL);
    CHECK_GOT(&a, "type=\"subscribed\"", ub, NULL);
    CHECK_GOT(&a, "subscription=\"to\"", ub, NULL);
    CHECK_GOT(&a, "<status>b here</status>", bf, NULL);
    /* A logs in again: the probe crosses and B's presence comes back
     * (§4.3). */
    fs_unbind(&a);
    fs_bind(&a, af);
    fs_send(&a, "<presence from='%s'/>", af);
    CHECK_GOT(&a, "<status>b here</status>", bf, NULL);
    /* B's updates and B's end reach A (§4.4, §4.5). */
    fs_clear(&a);
    fs_send(&b, "<presence from='%s'><show>away</show></presence>", bf);
    CHECK_GOT(&a, "<show>away</show>", bf, NULL);
    fs_unbind(&b);
    CHECK_GOT(&a, "type=\"unavailable\"", bf, NULL);
    fs_unbind(&a);
}

static void done(void *arg, int res)
{
    *(int *)arg = res;
}

int main(void)
{
    char dir[] = "/tmp/sz_reactors_XXXXXX", path[128], err[256];
    if (!mkdtemp(dir))
        return 1;
    snprintf(path, sizeof(path), "%s/im.db", dir);
    sz_store_opts_t so = {.path = path, .workers = 2};
    if (sz_store_open(&so, &store, err, sizeof(err)) < 0) {
        printf("# store: %s\n", err);
        return 1;
    }
    sz_store_register_handlers();
    /* One user homed on each reactor. */
    for (int i = 0; !ua[0] || !ub[0]; i++) {
        char bare[64];
        snprintf(bare, sizeof(bare), "user%d@" DOM, i);
        sz_jid_t *j = NULL;
        SZ_ASSERT(sz_jid_parse(bare, strlen(bare), &j) == 0);
        char *dst = sz_router_home(j, NR) == 0 ? ua : ub;
        if (!dst[0]) {
            strcpy(dst, bare);
            sz_scram_creds_t c;
            memset(&c, 0, sizeof(c));
            int res = 1;
            SZ_ASSERT(sz_store_account_create(store, j, &c, done, &res) == 0 && res == 0);
        }
        sz_jid_free(j);
    }
    static const char *const domains[] = {DOM};
    static const bool reg[] = {false};
    sz_router_configure(domains, 1, reg);
    sz_mod_env_t env = {.conf = NULL, .store = store};
    sz_mods_register(&env);
    xq = sz_xq_new(NR, 64);
    for (unsigned i = 0; i < NR; i++)
        pthread_create(&rx[i].t, NULL, run, &rx[i]);
    pthread_mutex_lock(&mu);
    while (started < NR)
        pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    int ret;
    if (rx[0].init < 0 || rx[1].init < 0) {
        printf("# reactor init failed: skipped\n");
        for (unsigned i = 0; i < NR; i++)
            if (rx[i].init == 0)
                on(i, do_stop, NULL);
        ret = SZ_TEST_SKIP;
    } else {
        SZ_RUN(handshake_and_presence_across_reactors);
        for (unsigned i = 0; i < NR; i++)
            on(i, do_stop, NULL);
        ret = sz_test_done();
    }
    for (unsigned i = 0; i < NR; i++)
        pthread_join(rx[i].t, NULL);
    sz_xq_free(xq);
    sz_store_close(store);
    sz_hooks_reset();
    char aux[160];
    unlink(path);
    snprintf(aux, sizeof(aux), "%s-wal", path);
    unlink(aux);
    snprintf(aux, sizeof(aux), "%s-shm", path);
    unlink(aux);
    rmdir(dir);
    return ret;
}
