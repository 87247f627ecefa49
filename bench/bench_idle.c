/*
 * Idle connection cost of a running server: its memory before and after
 * <conns> TCP connections that send nothing, per connection.
 *
 * Reads VmRSS (/proc/PID/status) and Rss, Pss, Private_Dirty and Anonymous
 * (/proc/PID/smaps_rollup) of the server, opens the connections spread over
 * a range of loopback source addresses (bind before connect, port chosen at
 * connect time so each source address has its own port space), waits until
 * the server has accepted them (its admin /metrics when --admin-port is
 * given, else a settle delay), reads the memory again, prints the figures
 * (one key=value line), then closes the connections and reads it a third
 * time. Also reports the server's CPU time (utime + stime from
 * /proc/PID/stat) spent accepting, the kernel's TCP buffer pages
 * (/proc/net/sockstat) and its slab growth (/proc/meminfo Slab); the two
 * kernel figures are system-wide, so they cover both ends of every
 * connection and anything else the machine did meanwhile.
 *
 * Loopback only: destination and sources must be in 127.0.0.0/8. Every
 * wait is bounded by --timeout. Single thread, no project libraries.
 *
 * Usage: bench_idle --server-pid PID --port P [--addr 127.0.0.1]
 *        [--conns 10000] [--src 127.0.0.2-127.0.0.9] [--admin-port A]
 *        [--settle-ms 2000] [--timeout 60]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BATCH        512 /* connects in flight before waiting for them */
#define MAX_SRC      256 /* source addresses in a range */
#define METRICS_MAX  (1u << 20)
#define POLL_STEP_MS 100

struct mem {
    long vm_rss_kib;     /* /proc/PID/status VmRSS */
    long rss_kib;        /* smaps_rollup Rss */
    long pss_kib;        /* smaps_rollup Pss */
    long priv_dirty_kib; /* smaps_rollup Private_Dirty */
    long anon_kib;       /* smaps_rollup Anonymous */
};

struct metrics {
    long long open, accepted, refused;
    bool ok;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Value of the "<key> <n> kB" line in <path>, or -1. */
static long proc_kib(const char *path, const char *key)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static bool read_mem(long pid, struct mem *m)
{
    char st[64], sr[64];
    snprintf(st, sizeof(st), "/proc/%ld/status", pid);
    snprintf(sr, sizeof(sr), "/proc/%ld/smaps_rollup", pid);
    m->vm_rss_kib = proc_kib(st, "VmRSS");
    m->rss_kib = proc_kib(sr, "Rss");
    m->pss_kib = proc_kib(sr, "Pss");
    m->priv_dirty_kib = proc_kib(sr, "Private_Dirty");
    m->anon_kib = proc_kib(sr, "Anonymous");
    return m->vm_rss_kib >= 0;
}

/* utime + stime of <pid> in ms, or -1. */
static long cpu_ms(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces: fields restart after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    unsigned long ut = 0, stime = 0;
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &stime) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    return (long)((ut + stime) * 1000u / (unsigned long)(hz > 0 ? hz : 100));
}

/* Pages of TCP socket buffers system-wide ("TCP: ... mem N"), or -1. */
static long tcp_mem_pages(void)
{
    FILE *f = fopen("/proc/net/sockstat", "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    while (fgets(line, sizeof(line), f)) {
        char *p = strncmp(line, "TCP:", 4) == 0 ? strstr(line, " mem ") : NULL;
        if (p) {
            v = strtol(p + 5, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

static bool is_loopback(struct in_addr a)
{
    return (ntohl(a.s_addr) >> 24) == 127;
}

/* Sum of every sample of <name> ("stanzad_x{...} N" or "stanzad_x N"). */
static long long metric_sum(const char *body, const char *name)
{
    long long sum = 0;
    size_t nl = strlen(name);
    for (const char *p = body; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, name, nl) != 0 || (p[nl] != '{' && p[nl] != ' '))
            continue;
        const char *v = strchr(p, ' ');
        const char *eol = strchr(p, '\n');
        if (v && (!eol || v < eol))
            sum += strtoll(v + 1, NULL, 10);
    }
    return sum;
}

/* One GET /metrics; every step bounded by <deadline>. */
static struct metrics get_metrics(struct in_addr addr, int port, uint64_t deadline)
{
    struct metrics m = {0, 0, 0, false};
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return m;
    struct sockaddr_in sa = {
        .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = addr};
    char *buf = malloc(METRICS_MAX + 1);
    size_t len = 0;
    bool sent = false;
    if (!buf)
        goto out;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS)
        goto out;
    static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
    for (;;) {
        uint64_t t = now_ms();
        if (t >= deadline)
            goto out;
        struct pollfd pfd = {fd, sent ? POLLIN : POLLOUT, 0};
        int left = (int)(deadline - t);
        if (poll(&pfd, 1, left > 1000 ? 1000 : left) < 0 && errno != EINTR)
            goto out;
        if (!sent && (pfd.revents & (POLLOUT | POLLERR | POLLHUP))) {
            if (send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) != (ssize_t)sizeof(req) - 1)
                goto out;
            sent = true;
        } else if (sent && (pfd.revents & (POLLIN | POLLERR | POLLHUP))) {
            ssize_t n = recv(fd, buf + len, METRICS_MAX - len, 0);
            if (n < 0 && errno != EAGAIN && errno != EINTR)
                goto out;
            if (n == 0 || len + (size_t)(n > 0 ? n : 0) >= METRICS_MAX)
                break;
            if (n > 0)
                len += (size_t)n;
        }
    }
    buf[len] = '\0';
    if (strncmp(buf, "HTTP/1.1 200", 12) != 0)
        goto out;
    m.open = metric_sum(buf, "stanzad_connections_open");
    m.accepted = metric_sum(buf, "stanzad_connections_accepted_total");
    m.refused = metric_sum(buf, "stanzad_connections_refused_total");
    m.ok = true;
out:
    free(buf);
    close(fd);
    return m;
}

/* Parses "A" or "A-B" (same /24, loopback) into <out>; returns the count
 * or 0 when malformed. */
static unsigned parse_src(const char *s, struct in_addr *out)
{
    char a[64], b[64];
    const char *dash = strchr(s, '-');
    size_t al = dash ? (size_t)(dash - s) : strlen(s);
    if (al == 0 || al >= sizeof(a) || (dash && strlen(dash + 1) >= sizeof(b)))
        return 0;
    memcpy(a, s, al);
    a[al] = '\0';
    snprintf(b, sizeof(b), "%s", dash ? dash + 1 : a);
    struct in_addr lo, hi;
    if (inet_pton(AF_INET, a, &lo) != 1 || inet_pton(AF_INET, b, &hi) != 1)
        return 0;
    uint32_t l = ntohl(lo.s_addr), h = ntohl(hi.s_addr);
    if (!is_loopback(lo) || !is_loopback(hi) || h < l || h - l >= MAX_SRC)
        return 0;
    for (uint32_t i = l; i <= h; i++)
        out[i - l].s_addr = htonl(i);
    return h - l + 1;
}

static bool first_error_shown; /* one connect error on stderr is enough */

/* Waits for the connects of fds[from..to) to finish; failed ones are
 * closed and set to -1. Returns how many failed. */
static unsigned finish_batch(int *fds, unsigned from, unsigned to, uint64_t deadline)
{
    struct pollfd pfd[BATCH];
    unsigned failed = 0;
    for (;;) {
        unsigned n = 0;
        for (unsigned i = from; i < to; i++)
            if (fds[i] >= 0)
                pfd[n++] = (struct pollfd){fds[i], POLLOUT, 0};
        uint64_t t = now_ms();
        if (n == 0)
            return failed;
        if (t >= deadline)
            break;
        int left = (int)(deadline - t);
        int r = poll(pfd, n, left > 1000 ? 1000 : left);
        if (r < 0 && errno != EINTR)
            break;
        unsigned pending = 0;
        for (unsigned k = 0, i = from; i < to; i++) {
            if (fds[i] < 0)
                continue;
            struct pollfd *p = &pfd[k++];
            if (!p->revents) {
                pending++;
                continue;
            }
            int err = 0;
            socklen_t el = sizeof(err);
            getsockopt(fds[i], SOL_SOCKET, SO_ERROR, &err, &el);
            if (err) {
                if (!first_error_shown) {
                    fprintf(stderr, "bench_idle: connect: %s\n", strerror(err));
                    first_error_shown = true;
                }
                close(fds[i]);
                fds[i] = -1;
                failed++;
            }
            fds[i] = fds[i] >= 0 ? -2 - fds[i] : -1; /* mark done, keep the fd */
        }
        if (pending == 0)
            break;
    }
    /* Restore the done marks; anything still pending past the deadline fails. */
    for (unsigned i = from; i < to; i++) {
        if (fds[i] <= -2) {
            fds[i] = -2 - fds[i];
        } else if (fds[i] >= 0) {
            close(fds[i]);
            fds[i] = -1;
            failed++;
        }
    }
    return failed;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: bench_idle --server-pid PID --port P [--addr 127.0.0.1] [--conns 10000]\n"
            "                  [--src 127.0.0.2-127.0.0.9] [--admin-port A] [--settle-ms 2000]\n"
            "                  [--timeout 60]\n");
}

int main(int argc, char **argv)
{
    long pid = 0, port = 0, admin_port = 0, conns = 10000, settle_ms = 2000, timeout_s = 60;
    const char *addr_s = "127.0.0.1", *src_s = "127.0.0.2-127.0.0.9";
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) {
            usage();
            return 2;
        }
        const char *a = argv[i], *v = argv[i + 1];
        char *end = NULL;
        long *num = NULL;
        if (strcmp(a, "--server-pid") == 0)
            num = &pid;
        else if (strcmp(a, "--port") == 0)
            num = &port;
        else if (strcmp(a, "--admin-port") == 0)
            num = &admin_port;
        else if (strcmp(a, "--conns") == 0)
            num = &conns;
        else if (strcmp(a, "--settle-ms") == 0)
            num = &settle_ms;
        else if (strcmp(a, "--timeout") == 0)
            num = &timeout_s;
        else if (strcmp(a, "--addr") == 0)
            addr_s = v;
        else if (strcmp(a, "--src") == 0)
            src_s = v;
        else {
            usage();
            return 2;
        }
        if (num) {
            *num = strtol(v, &end, 10);
            if (!end || *end || end == v) {
                usage();
                return 2;
            }
        }
    }
    struct in_addr dst, src[MAX_SRC];
    unsigned nsrc = parse_src(src_s, src);
    if (pid <= 0 || port <= 0 || port > 65535 || admin_port < 0 || admin_port > 65535 ||
        conns <= 0 || conns > 1000000 || settle_ms < 0 || settle_ms > 600000 || timeout_s <= 0 ||
        timeout_s > 3600 || inet_pton(AF_INET, addr_s, &dst) != 1 || !is_loopback(dst) ||
        nsrc == 0) {
        fprintf(stderr, "bench_idle: bad arguments (addresses must be IPv4 loopback)\n");
        usage();
        return 2;
    }
    uint64_t deadline = now_ms() + (uint64_t)timeout_s * 1000u;

    /* Our own descriptors: soft limit up to the hard one. */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if ((rlim_t)conns + 32 > rl.rlim_cur) {
        fprintf(stderr, "bench_idle: --conns %ld needs more than RLIMIT_NOFILE %llu\n", conns,
                (unsigned long long)rl.rlim_cur);
        return 2;
    }

    struct metrics m0 = {0, 0, 0, false};
    if (admin_port) {
        m0 = get_metrics(dst, (int)admin_port, deadline);
        if (!m0.ok) {
            fprintf(stderr, "bench_idle: no answer from admin port %ld\n", admin_port);
            return 1;
        }
    }
    struct mem before, after, closed;
    if (!read_mem(pid, &before)) {
        fprintf(stderr, "bench_idle: cannot read /proc/%ld/status\n", pid);
        return 1;
    }
    long cpu0 = cpu_ms(pid), tcp0 = tcp_mem_pages();
    long slab0 = proc_kib("/proc/meminfo", "Slab");

    int *fds = malloc(sizeof(int) * (size_t)conns);
    if (!fds)
        return 1;
    unsigned failed = 0, opened = 0;
    uint64_t t_open0 = now_ms();
    for (unsigned from = 0; from < (unsigned)conns; from += BATCH) {
        unsigned to = from + BATCH < (unsigned)conns ? from + BATCH : (unsigned)conns;
        for (unsigned i = from; i < to; i++) {
            fds[i] = -1;
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                failed++;
                continue;
            }
            int one = 1;
            /* The port is picked at connect(), per 4-tuple, not at bind(). */
            setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
            struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = src[i % nsrc]};
            struct sockaddr_in da = {
                .sin_family = AF_INET, .sin_port = htons((uint16_t)port), .sin_addr = dst};
            if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
                (connect(fd, (struct sockaddr *)&da, sizeof(da)) < 0 && errno != EINPROGRESS)) {
                if (!first_error_shown) {
                    fprintf(stderr, "bench_idle: connect: %s\n", strerror(errno));
                    first_error_shown = true;
                }
                close(fd);
                failed++;
                continue;
            }
            fds[i] = fd;
        }
        failed += finish_batch(fds, from, to, deadline);
    }
    for (long i = 0; i < conns; i++)
        opened += fds[i] >= 0;
    uint64_t t_open = now_ms() - t_open0;

    /* Wait until the server holds them all (or the deadline). */
    struct metrics m1 = {0, 0, 0, false};
    bool all_accepted = false;
    uint64_t t_acc0 = now_ms();
    if (admin_port) {
        while (now_ms() < deadline) {
            m1 = get_metrics(dst, (int)admin_port, deadline);
            if (m1.ok && m1.open >= m0.open + (long long)opened) {
                all_accepted = true;
                break;
            }
            if (m1.ok && m1.refused > m0.refused)
                break; /* the server's slot table is full: they never will be */
            sleep_ms(POLL_STEP_MS);
        }
        sleep_ms(200); /* receives are armed at the end of the accepting iteration */
    } else {
        sleep_ms((unsigned)settle_ms);
    }
    uint64_t t_acc = now_ms() - t_acc0;
    read_mem(pid, &after);
    long cpu1 = cpu_ms(pid), tcp1 = tcp_mem_pages();
    long slab1 = proc_kib("/proc/meminfo", "Slab");

    for (long i = 0; i < conns; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    /* Let the server see the ends before the third reading. */
    struct metrics m2 = {0, 0, 0, false};
    if (admin_port) {
        while (now_ms() < deadline) {
            m2 = get_metrics(dst, (int)admin_port, deadline);
            if (m2.ok && m2.open <= m0.open)
                break;
            sleep_ms(POLL_STEP_MS);
        }
    } else {
        sleep_ms((unsigned)settle_ms);
    }
    read_mem(pid, &closed);

    double n = opened ? (double)opened : 1.0;
    printf("conns=%u failed=%u accepted=%s open_s=%.3f accept_wait_s=%.3f "
           "vmrss_before_kib=%ld vmrss_after_kib=%ld vmrss_closed_kib=%ld "
           "pss_before_kib=%ld pss_after_kib=%ld "
           "private_dirty_before_kib=%ld private_dirty_after_kib=%ld "
           "anon_before_kib=%ld anon_after_kib=%ld "
           "vmrss_per_conn_kib=%.3f pss_per_conn_kib=%.3f private_dirty_per_conn_kib=%.3f "
           "server_cpu_ms=%ld server_cpu_us_per_conn=%.1f kernel_tcp_mem_pages_delta=%ld "
           "kernel_slab_per_conn_kib=%.2f server_open=%lld server_refused=%lld\n",
           opened, failed,
           !admin_port    ? "unchecked"
           : all_accepted ? "all"
                          : "incomplete",
           (double)t_open / 1000.0, (double)t_acc / 1000.0, before.vm_rss_kib, after.vm_rss_kib,
           closed.vm_rss_kib, before.pss_kib, after.pss_kib, before.priv_dirty_kib,
           after.priv_dirty_kib, before.anon_kib, after.anon_kib,
           (double)(after.vm_rss_kib - before.vm_rss_kib) / n,
           (double)(after.pss_kib - before.pss_kib) / n,
           (double)(after.priv_dirty_kib - before.priv_dirty_kib) / n,
           cpu0 >= 0 && cpu1 >= 0 ? cpu1 - cpu0 : -1,
           cpu0 >= 0 && cpu1 >= 0 ? (double)(cpu1 - cpu0) * 1000.0 / n : -1.0,
           tcp0 >= 0 && tcp1 >= 0 ? tcp1 - tcp0 : -1,
           slab0 >= 0 && slab1 >= 0 ? (double)(slab1 - slab0) / n : -1.0,
           m1.ok ? m1.open - m0.open : -1, m1.ok ? m1.refused - m0.refused : -1);
    return failed || (admin_port && !all_accepted) ? 1 : 0;
}
