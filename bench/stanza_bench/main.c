/*
 * stanza-bench: command line, scenario phases and the provision command.
 * The main thread starts the workers (engine.c), moves the run through its
 * phases (ramp, hold or messages, drain, stop), samples the server's and
 * its own CPU and RSS from /proc at the phase boundaries, prints a live
 * line each second on a TTY and, at the end, the report (report.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include "bench/stanza_bench/csv.h"
#include "bench/stanza_bench/procs.h"
#include "bench/stanza_bench/register.h"
#include "bench/stanza_bench/report.h"
#include "bench/stanza_bench/sb.h"
#include "bench/stanza_bench/scenario.h"
#include "bench/stanza_bench/tls.h"

static const char *prog = "stanza-bench";

static void usage(FILE *f)
{
    fprintf(f,
        "usage: stanza-bench connect|one2one|roster-presence [options]\n"
        "       stanza-bench run SCENARIO.yaml [options that override the file]\n"
        "       stanza-bench provision --stanzactl PATH --config FILE --users N [options]\n"
        "       stanza-bench provision --xep0077 --port N --users N [options]\n"
        "\n"
        "An open-loop XMPP load generator (RFC 6120 client streams over io_uring).\n"
        "\n"
        "scenarios:\n"
        "  connect    ramp --users at --login-rate logins/s, then hold them idle for\n"
        "             --duration seconds\n"
        "  one2one    log in the same way, then users in pairs (user 2k and 2k+1, counted\n"
        "             from 0) exchange messages at --msg-rate messages/s in total for\n"
        "             --duration seconds. Each message carries its intended send time;\n"
        "             latency = receive time - intended time, so a stalled server\n"
        "             shows as latency, never as a lower send rate\n"
        "  roster-presence  log in the same way (each user also sends a roster get),\n"
        "             then --presence-rate presence updates/s in total for --duration s:\n"
        "             an update is directed presence to each of the user's --contacts\n"
        "             contacts (users j+1..j+N), each carrying its intended send time;\n"
        "             with --broadcast, one presence without 'to' that the server\n"
        "             sends to the user's roster (provision --contacts)\n"
        "  run FILE   the scenario and parameters of a YAML file (bench/scenarios/)\n"
        "  provision  write an import file (one \"JID PASSWORD\" per line) for --users\n"
        "             accounts and run `stanzactl --config F --iterations N import-users`;\n"
        "             with --contacts C (even) also a roster file and `stanzactl\n"
        "             import-rosters`: user j (from 0) gets users j-C/2..j-1 and\n"
        "             j+1..j+C/2 (modulo --users), subscription both\n"
        "\n"
        "target:\n"
        "  --server ADDR        IPv4 address of the server (default 127.0.0.1)\n"
        "  --port N             its client port (default 5222)\n"
        "  --domain D           the XMPP domain (default localhost; also the TLS SNI)\n"
        "  --tls MODE           none (default: SASL on a plaintext stream), starttls\n"
        "                       (<starttls/>, <proceed/>, handshake, new stream) or\n"
        "                       direct (XEP-0368: handshake first, ALPN xmpp-client)\n"
        "  --tls-version V      1.2 or 1.3 (default 1.3); every login is a full handshake\n"
        "  --ca FILE            verify the server's certificate against the PEM CAs in\n"
        "                       FILE and its name against --domain (default: no check)\n"
        "\n"
        "accounts:\n"
        "  --users N            simulated users (default 100)\n"
        "  --first N            number of the first user (default 1)\n"
        "  --user-pattern P     localpart pattern, {N} is the user number (default user{N})\n"
        "  --pass-pattern P     password pattern (default pass{N})\n"
        "  --resource R         resource to bind (default sb)\n"
        "  --mech M             PLAIN, SCRAM-SHA-1, SCRAM-SHA-256 (default), or with\n"
        "                       --tls and TLS 1.3 SCRAM-SHA-1-PLUS, SCRAM-SHA-256-PLUS\n"
        "                       (tls-exporter channel binding, RFC 9266)\n"
        "  --sm                 stream management (XEP-0198): after the bind, <enable/>\n"
        "                       when the server offers it, then count stanzas and answer\n"
        "                       its <r/> with <a h/> (no resumption); the login ends with\n"
        "                       <enabled/> or <failed/>\n"
        "\n"
        "load:\n"
        "  --login-rate R       logins started per second, all threads (default 100)\n"
        "  --duration S         hold (connect) or message phase (one2one), s (default 10)\n"
        "  --msg-rate R         one2one: messages per second in total (default 100)\n"
        "  --msg-size B         one2one: body bytes per message (default 64)\n"
        "  --resources N        one2one: sessions per user (default 1); above 1 they bind\n"
        "                       resources <resource>0..N-1, only resource 0 sends, to its\n"
        "                       partner's resource 0 (a full JID)\n"
        "  --carbons            one2one: every session enables message carbons (XEP-0280)\n"
        "                       at login; copies received are counted, not timed\n"
        "  --contacts N         roster-presence: contacts per user (default 10)\n"
        "  --presence-rate R    roster-presence: presence updates/s in total (default 10)\n"
        "  --broadcast          roster-presence: each update is one broadcast presence\n"
        "                       (no 'to'); the server's roster does the fan-out to the\n"
        "                       --contacts contacts, and the roster get must return them\n"
        "  --login-timeout S    a login not done after S s fails (default 30)\n"
        "  --loss-timeout S     a message not delivered within S s is lost (default 5)\n"
        "\n"
        "engine:\n"
        "  --threads N          worker threads, one io_uring each (default 1)\n"
        "  --src A[-B]          bind sockets to source addresses A..B, round robin\n"
        "                       (e.g. 127.0.0.2-127.0.0.250; each has its own port space)\n"
        "  --bufs N             provided receive buffers per thread (default 256)\n"
        "  --buf-size B         bytes per receive buffer (default 4096)\n"
        "  --procs N            split the users over N processes (default 1), each with\n"
        "                       its share of --src; one merged report\n"
        "  --tick-us N          wake up for due sends at most every N us (default 0:\n"
        "                       at each send's time). Batches sends at high rates; the\n"
        "                       added delay (< N us) is counted in the latency\n"
        "  --lazy-recv          with --tick-us: what arrives is handled at the next\n"
        "                       tick instead of waking the tool, as a client on\n"
        "                       another machine never makes the server wake it;\n"
        "                       the wait (< N us) is counted in the latency\n"
        "\n"
        "report:\n"
        "  --server-pid PID     sample the server's CPU and RSS from /proc\n"
        "  --json FILE          write the final report as JSON\n"
        "  --quiet              no live line (it is printed on stderr when a TTY)\n"
        "  --csv FILE           a per-second series (bench/plot draws it)\n"
        "\n"
        "provision:\n"
        "  --stanzactl PATH     stanzactl binary    --config FILE   the node's config\n"
        "  --iterations N       PBKDF2 iterations (default 1: test accounts only)\n"
        "  --file F             keep the import file at F (default: a temporary file;\n"
        "                       the roster file is F.rosters)\n"
        "  --contacts C         also write rosters of C contacts (even, below --users)\n"
        "  --xep0077            instead of stanzactl: register each account in-band\n"
        "                       (XEP-0077) on --server/--port, plaintext, one at a time,\n"
        "                       from the --src addresses in turn (servers limit\n"
        "                       registrations per address); works with any server that\n"
        "                       allows in-band registration\n"
        "  (--users, --first, --domain, --user-pattern, --pass-pattern as above)\n");
}

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", prog);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static double num(const char *opt, const char *v, double lo, double hi)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= lo && d <= hi)) {
        fprintf(stderr, "%s: %s: bad value '%s' (range %g..%g)\n", prog, opt, v, lo, hi);
        exit(2);
    }
    return d;
}

static uint32_t ip4(const char *s)
{
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1)
        die("not an IPv4 address: %s", s);
    return ntohl(a.s_addr);
}

/* ---- provision ------------------------------------------------------------ */

/* Runs `<ctl> --config <config> [--iterations <its>] <cmd> <path>`; returns
 * its exit status (1 when it cannot run). */
static int run_ctl(const char *ctl, const char *config, const char *its, const char *cmd,
                   const char *path)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (its)
            execl(ctl, ctl, "--config", config, "--iterations", its, cmd, path, (char *)NULL);
        else
            execl(ctl, ctl, "--config", config, cmd, path, (char *)NULL);
        fprintf(stderr, "%s: cannot run %s: %s\n", prog, ctl, strerror(errno));
        _exit(127);
    }
    int st = 0;
    if (pid < 0 || waitpid(pid, &st, 0) < 0)
        st = -1;
    return (st >= 0 && WIFEXITED(st)) ? WEXITSTATUS(st) : 1;
}

/* The roster file for `stanzactl import-rosters`: user j (0-based) holds
 * users j-C/2 .. j-1 and j+1 .. j+C/2 (modulo users) with subscription
 * both. The relation is symmetric, so the two items of a pair agree (RFC
 * 6121 §3), and j's broadcast reaches exactly C contacts: those are the
 * "contacts of j" of roster-presence --broadcast. bench/peers/prosody-provision
 * writes the same rosters for Prosody. */
static int provision_rosters(const sb_conf_t *cf, const char *ctl, const char *config,
                             const char *keep)
{
    char path[4096], tmpl[] = "/tmp/stanza-bench-rosters-XXXXXX";
    int fd = -1;
    if (keep) {
        snprintf(path, sizeof(path), "%s.rosters", keep);
    } else {
        fd = mkstemp(tmpl);
        snprintf(path, sizeof(path), "%s", tmpl);
    }
    FILE *f = keep ? fopen(path, "w") : fdopen(fd, "w");
    if (!f) {
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, path, strerror(errno));
        return 1;
    }
    const uint32_t half = cf->contacts / 2, n = cf->users;
    for (uint32_t j = 0; j < n; j++) {
        char u[160], c[160];
        sb_pattern(cf->user_pattern, cf->first + j, u, sizeof(u));
        for (uint32_t k = 1; k <= half; k++) {
            sb_pattern(cf->user_pattern, cf->first + (j + n - k) % n, c, sizeof(c));
            fprintf(f, "%s@%s %s@%s both\n", u, cf->domain, c, cf->domain);
            sb_pattern(cf->user_pattern, cf->first + (j + k) % n, c, sizeof(c));
            fprintf(f, "%s@%s %s@%s both\n", u, cf->domain, c, cf->domain);
        }
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, path, strerror(errno));
        return 1;
    }
    int rc = run_ctl(ctl, config, NULL, "import-rosters", path);
    if (!keep)
        unlink(path);
    fprintf(stderr, "%s: provision: %u rosters of %u contacts, stanzactl exit %d\n", prog, n,
            cf->contacts, rc);
    return rc;
}

static int provision(const sb_conf_t *cf, const char *ctl, const char *config, unsigned iter,
                     const char *keep, bool rosters)
{
    char tmpl[] = "/tmp/stanza-bench-users-XXXXXX";
    int fd = keep ? -1 : mkstemp(tmpl);
    const char *path = keep ? keep : tmpl;
    FILE *f = keep ? fopen(keep, "w") : fdopen(fd, "w");
    if (!f) {
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, path, strerror(errno));
        return 1;
    }
    for (uint32_t i = 0; i < cf->users; i++) {
        char u[160], p[160];
        sb_pattern(cf->user_pattern, cf->first + i, u, sizeof(u));
        sb_pattern(cf->pass_pattern, cf->first + i, p, sizeof(p));
        fprintf(f, "%s@%s %s\n", u, cf->domain, p);
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, path, strerror(errno));
        return 1;
    }
    char its[16];
    snprintf(its, sizeof(its), "%u", iter);
    int rc = run_ctl(ctl, config, its, "import-users", path);
    if (!keep)
        unlink(path);
    fprintf(stderr, "%s: provision: %u accounts %s@%s..., stanzactl exit %d%s\n", prog,
            cf->users, cf->user_pattern, cf->domain, rc,
            rc == 1 ? " (accounts that already exist are reported as errors)" : "");
    /* Existing accounts are no reason to skip their rosters (items are
     * replaced, so importing twice is harmless); anything else is. */
    if (rosters && rc <= 1) {
        int r2 = provision_rosters(cf, ctl, config, keep);
        rc = r2 ? r2 : rc;
    }
    return rc;
}

/* ---- run ---------------------------------------------------------------------- */

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {(time_t)(ns / 1000000000ull), (long)(ns % 1000000000ull)};
    nanosleep(&ts, NULL);
}

static uint64_t sum(const sb_run_t *run, size_t off)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < run->conf.threads; i++)
        v += __atomic_load_n((const uint64_t *)((const char *)&run->t[i].c + off), __ATOMIC_RELAXED);
    return v;
}
#define SUM(run, field) sum(run, offsetof(sb_counters_t, field))

static uint64_t max_of(const sb_run_t *run, size_t off)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < run->conf.threads; i++) {
        uint64_t x =
            __atomic_load_n((const uint64_t *)((const char *)&run->t[i].c + off), __ATOMIC_RELAXED);
        if (x > v)
            v = x;
    }
    return v;
}

static const char *const phase_names[] = {"init", "ramp", "hold", "messages", "drain", "stop"};

struct live {
    bool on;
    FILE *csv;      /* --csv: one row per tick */
    uint64_t t0, next, last;
    uint64_t online, sent, recv;
};

/* Set by main: --csv FILE, and the pipe of a --procs child (-1: none). */
static const char *csv_path;
static int dump_fd = -1;

/* Once per second: a line on stderr (phase, sessions, rates of the last
 * second, the delivery p99 of the last second (worst thread), errors) and
 * a --csv row. Ticks are on a fixed one-second grid from t0, so that the
 * rows of --procs children line up. */
static void live_tick(struct live *l, const sb_run_t *run)
{
    uint64_t now = sb_now_ns();
    if ((!l->on && !l->csv) || now < l->next)
        return;
    double dt = (double)(now - l->last) / 1e9;
    l->last = now;
    while (l->next <= now)
        l->next += 1000000000ull;
    uint64_t on = SUM(run, online), sent = SUM(run, sent), recv = SUM(run, received);
    int ph = __atomic_load_n(&run->phase, __ATOMIC_RELAXED);
    if (l->csv) {
        sb_csv_row_t r = {(double)(now - l->t0) / 1e9, phase_names[ph], on - SUM(run, dropped),
                          (double)(on - l->online) / dt, (double)(sent - l->sent) / dt,
                          (double)(recv - l->recv) / dt,
                          (double)max_of(run, offsetof(sb_counters_t, ival_p50_ns)) / 1e6,
                          (double)max_of(run, offsetof(sb_counters_t, ival_p99_ns)) / 1e6,
                          SUM(run, errors)};
        sb_csv_write(l->csv, &r);
    }
    if (l->on) {
        char sm[48] = "";
        if (run->conf.sm)
            snprintf(sm, sizeof(sm), " sm=%llu acks=%llu", (unsigned long long)SUM(run, sm_enabled),
                     (unsigned long long)SUM(run, sm_acks_sent));
        fprintf(stderr,
            "[%5.1fs] %-8s online=%llu failed=%llu logins/s=%.0f sent/s=%.0f recv/s=%.0f "
            "p99=%.2fms errors=%llu%s\n",
            (double)(now - l->t0) / 1e9, phase_names[__atomic_load_n(&run->phase, __ATOMIC_RELAXED)],
            (unsigned long long)on, (unsigned long long)SUM(run, failed),
            (double)(on - l->online) / dt, (double)(sent - l->sent) / dt,
            (double)(recv - l->recv) / dt, (double)max_of(run, offsetof(sb_counters_t, ival_p99_ns)) / 1e6,
            (unsigned long long)SUM(run, errors), sm);
    }
    l->online = on;
    l->sent = sent;
    l->recv = recv;
}

/* Waits (polling every 10 ms, live line on) until <done>(run) or <deadline>. */
static bool wait_for(sb_run_t *run, struct live *l, bool (*done)(const sb_run_t *), uint64_t deadline)
{
    for (;;) {
        if (done && done(run))
            return true;
        if (sb_now_ns() >= deadline)
            return false;
        for (unsigned i = 0; i < run->conf.threads; i++)
            if (__atomic_load_n(&run->t[i].err, __ATOMIC_RELAXED))
                return false;
        live_tick(l, run);
        sleep_ns(10000000ull);
    }
}

static bool logins_done(const sb_run_t *run)
{
    return SUM(run, online) + SUM(run, failed) >= sb_sessions(&run->conf);
}

static bool all_picked(const sb_run_t *run)
{
    return SUM(run, picked) == run->conf.threads;
}

static bool all_sent(const sb_run_t *run)
{
    return all_picked(run) && SUM(run, sent) >= SUM(run, planned);
}

static bool drained(const sb_run_t *run)
{
    return all_sent(run) &&
           SUM(run, received) + SUM(run, late) + SUM(run, bounced) >= SUM(run, sent);
}

static void set_phase(sb_run_t *run, int ph)
{
    __atomic_store_n(&run->phase, ph, __ATOMIC_RELEASE);
}

/* The summary on stdout and --json; 0 or 1. */
static int report_out(sb_report_t *rep, const char *json)
{
    sb_report_print(rep, stdout);
    if (json && sb_report_json(rep, json) < 0) {
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, json, strerror(errno));
        return 1;
    }
    return 0;
}

static int run_scenario(sb_run_t *run, pid_t server_pid, const char *json, bool quiet)
{
    sb_conf_t *cf = &run->conf;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && (uint64_t)sb_sessions(cf) + 64 > rl.rlim_cur)
        fprintf(stderr, "%s: warning: %u sessions but RLIMIT_NOFILE is %llu: logins will fail\n",
                prog, sb_sessions(cf), (unsigned long long)rl.rlim_cur);
    char err[256];
    if (sb_tls_init(cf, err, sizeof(err)) < 0) {
        fprintf(stderr, "%s: %s\n", prog, err);
        sb_tls_exit();
        return 1;
    }
    sb_report_t rep = {.run = run, .server_pid = server_pid};
    sb_sample(server_pid, &rep.srv[0]);
    sb_sample(getpid(), &rep.self[0]);
    int ret = sb_engine_start(run);
    if (ret < 0) {
        fprintf(stderr, "%s: cannot start threads: %s\n", prog, strerror(-ret));
        return 1;
    }
    /* Logins: user j is due at t_ramp0 + j / rate (the same instant for
     * every process of --procs). */
    run->t_ramp0 = sb_procs_t0 ? sb_procs_t0 : sb_now_ns() + 20000000ull;
    struct live l = {.on = !quiet && isatty(2) && dump_fd < 0};
    l.t0 = l.last = run->t_ramp0 - 20000000ull;
    l.next = l.t0 + 1000000000ull;
    if (csv_path && !(l.csv = sb_csv_open(csv_path)))
        fprintf(stderr, "%s: cannot write %s: %s\n", prog, csv_path, strerror(errno));
    set_phase(run, SB_PH_RAMP);
    double ramp_s = (double)sb_sessions(cf) / cf->login_rate;
    uint64_t dl = run->t_ramp0 + (uint64_t)((ramp_s + cf->login_timeout + 2.0) * 1e9);
    wait_for(run, &l, logins_done, dl);
    rep.t_ramp_end = sb_now_ns();
    sb_sample(server_pid, &rep.srv[1]);
    sb_sample(getpid(), &rep.self[1]);
    if (cf->scenario == SB_SC_CONNECT) {
        set_phase(run, SB_PH_HOLD);
        rep.t_phase2 = sb_now_ns();
        wait_for(run, &l, NULL, rep.t_phase2 + (uint64_t)(cf->duration * 1e9));
    } else {
        run->nmsgs = (uint64_t)(cf->duration * cf->msg_rate);
        run->t_msg0 = sb_now_ns() + 50000000ull;
        set_phase(run, SB_PH_MSG);
        rep.t_phase2 = run->t_msg0;
        uint64_t end = run->t_msg0 + (uint64_t)(cf->duration * 1e9);
        wait_for(run, &l, NULL, end);
        set_phase(run, SB_PH_DRAIN);
        /* the senders finish the schedule (if behind), then messages in
         * flight get up to --loss-timeout to arrive */
        wait_for(run, &l, all_sent, end + (uint64_t)(cf->loss_timeout * 1e9));
        wait_for(run, &l, drained, sb_now_ns() + (uint64_t)(cf->loss_timeout * 1e9));
    }
    rep.t_end = sb_now_ns();
    sb_sample(server_pid, &rep.srv[2]);
    sb_sample(getpid(), &rep.self[2]);
    set_phase(run, SB_PH_STOP);
    sb_engine_join(run);
    sb_tls_exit();
    int rc = 0;
    for (unsigned i = 0; i < cf->threads; i++) {
        if (run->t[i].err) {
            fprintf(stderr, "%s: thread %u: io_uring setup failed: %s\n", prog, i,
                    strerror(-run->t[i].err));
            rc = 1;
        }
    }
    if (l.csv && fclose(l.csv) != 0)
        rc = 1;
    sb_report_build(&rep);
    if (dump_fd >= 0)
        rc |= sb_procs_put(dump_fd, &rep) < 0; /* --procs: the parent reports */
    else
        rc |= report_out(&rep, json);
    sb_report_free(&rep);
    for (unsigned i = 0; i < cf->threads; i++)
        free(run->t[i].sess);
    free(run->t);
    free(run->online);
    return rc;
}

/* Set by main for the children of --procs. */
static pid_t opt_server_pid;
static const char *opt_json;

/* A --procs child: its own CSV part, no live line, its report to <fd>. */
static int procs_child(sb_run_t *run, unsigned i, int fd)
{
    static char part[4096];
    if (csv_path) {
        snprintf(part, sizeof(part), "%s.%u", csv_path, i);
        csv_path = part;
    }
    dump_fd = fd;
    return run_scenario(run, opt_server_pid, NULL, true);
}

/* --procs N: the parent's side (procs.c forks); merged report and CSV. */
static int run_procs(sb_run_t *run, unsigned procs)
{
    sb_report_t rep = {.server_pid = opt_server_pid};
    int rc = sb_procs_run(run, procs, procs_child, &rep);
    rc |= report_out(&rep, opt_json);
    sb_report_free(&rep);
    if (csv_path) {
        char **parts = calloc(procs, sizeof(*parts));
        for (unsigned i = 0; parts && i < procs; i++)
            if (asprintf(&parts[i], "%s.%u", csv_path, i) < 0)
                abort();
        if (!parts || sb_csv_merge(csv_path, parts, procs) < 0) {
            fprintf(stderr, "%s: cannot merge the CSV series into %s: %s\n", prog, csv_path,
                    strerror(errno));
            rc = 1;
        }
        for (unsigned i = 0; parts && i < procs; i++) {
            unlink(parts[i]);
            free(parts[i]);
        }
        free(parts);
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    static sb_run_t run;
    sb_conf_t *cf = &run.conf;
    *cf = (sb_conf_t){
        .domain = "localhost",
        .user_pattern = "user{N}",
        .pass_pattern = "pass{N}",
        .resource = "sb",
        .threads = 1,
        .users = 100,
        .first = 1,
        .login_rate = 100,
        .duration = 10,
        .msg_rate = 100,
        .msg_size = 64,
        .mech = SB_MECH_SCRAM_SHA256,
        .login_timeout = 30,
        .loss_timeout = 5,
        .bufs = 256,
        .buf_size = 4096,
        .contacts = 10,
        .resources = 1,
        .tls_version = TLS1_3_VERSION,
    };
    cf->server.sin_family = AF_INET;
    cf->server.sin_port = htons(5222);
    cf->server.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool provision_cmd = strcmp(cmd, "provision") == 0;
    bool xep0077 = false;
    unsigned procs = 1;
    int first_opt = 2;
    if (strcmp(cmd, "connect") == 0)
        cf->scenario = SB_SC_CONNECT;
    else if (strcmp(cmd, "one2one") == 0)
        cf->scenario = SB_SC_ONE2ONE;
    else if (strcmp(cmd, "roster-presence") == 0)
        cf->scenario = SB_SC_ROSTER;
    else if (!provision_cmd) {
        if (strcmp(cmd, "run") != 0)
            die("unknown command '%s' (connect, one2one, roster-presence, run, provision; "
                "--help)", cmd);
        /* run FILE: the file's values over the defaults, then the options */
        char err[512];
        if (argc < 3)
            die("%s", "run needs a scenario file");
        if (sb_scenario_load(argv[2], cf, &procs, err, sizeof(err)) < 0) {
            fprintf(stderr, "%s: %s\n", prog, err);
            return 2;
        }
        first_opt = 3;
    }

    enum {
        O_SERVER = 256, O_PORT, O_DOMAIN, O_USERS, O_FIRST, O_UPAT, O_PPAT, O_RES, O_MECH,
        O_LRATE, O_DUR, O_MRATE, O_MSIZE, O_LTO, O_LOSS, O_THREADS, O_SRC, O_BUFS, O_BUFSZ,
        O_SPID, O_JSON, O_QUIET, O_TICK, O_CTL, O_CONFIG, O_ITER, O_FILE, O_HELP,
        O_TLS, O_TLSVER, O_CA, O_CSV, O_PROCS, O_CONTACTS, O_PRATE, O_XEP0077, O_SM, O_LAZY,
        O_BCAST, O_RESOURCES, O_CARBONS
    };
    static const struct option opts[] = {
        {"server", 1, NULL, O_SERVER},      {"port", 1, NULL, O_PORT},
        {"domain", 1, NULL, O_DOMAIN},      {"users", 1, NULL, O_USERS},
        {"first", 1, NULL, O_FIRST},        {"user-pattern", 1, NULL, O_UPAT},
        {"pass-pattern", 1, NULL, O_PPAT},  {"resource", 1, NULL, O_RES},
        {"mech", 1, NULL, O_MECH},          {"login-rate", 1, NULL, O_LRATE},
        {"duration", 1, NULL, O_DUR},       {"msg-rate", 1, NULL, O_MRATE},
        {"msg-size", 1, NULL, O_MSIZE},     {"login-timeout", 1, NULL, O_LTO},
        {"loss-timeout", 1, NULL, O_LOSS},  {"threads", 1, NULL, O_THREADS},
        {"src", 1, NULL, O_SRC},            {"bufs", 1, NULL, O_BUFS},
        {"buf-size", 1, NULL, O_BUFSZ},     {"server-pid", 1, NULL, O_SPID},
        {"json", 1, NULL, O_JSON},          {"quiet", 0, NULL, O_QUIET},
        {"stanzactl", 1, NULL, O_CTL},      {"config", 1, NULL, O_CONFIG},
        {"iterations", 1, NULL, O_ITER},    {"file", 1, NULL, O_FILE},
        {"tick-us", 1, NULL, O_TICK},       {"help", 0, NULL, O_HELP},
        {"tls", 1, NULL, O_TLS},            {"tls-version", 1, NULL, O_TLSVER},
        {"ca", 1, NULL, O_CA},              {"csv", 1, NULL, O_CSV},
        {"xep0077", 0, NULL, O_XEP0077},    {"sm", 0, NULL, O_SM}, {"lazy-recv", 0, NULL, O_LAZY},
        {"procs", 1, NULL, O_PROCS},        {"contacts", 1, NULL, O_CONTACTS},
        {"presence-rate", 1, NULL, O_PRATE},          {"broadcast", 0, NULL, O_BCAST},
        {"resources", 1, NULL, O_RESOURCES},          {"carbons", 0, NULL, O_CARBONS},
        {NULL, 0, NULL, 0},
    };
    pid_t server_pid = 0;
    const char *json = NULL, *ctl = NULL, *config = NULL, *keep = NULL;
    unsigned iter = 1;
    bool quiet = false, contacts_set = false;
    optind = first_opt;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case O_SERVER: cf->server.sin_addr.s_addr = htonl(ip4(optarg)); break;
        case O_PORT: cf->server.sin_port = htons((uint16_t)num("--port", optarg, 1, 65535)); break;
        case O_DOMAIN: cf->domain = optarg; break;
        case O_USERS: cf->users = (uint32_t)num("--users", optarg, 1, 10000000); break;
        case O_FIRST: cf->first = (uint32_t)num("--first", optarg, 0, 1e9); break;
        case O_UPAT: cf->user_pattern = optarg; break;
        case O_PPAT: cf->pass_pattern = optarg; break;
        case O_RES: cf->resource = optarg; break;
        case O_MECH: {
            int m = sb_mech_parse(optarg);
            if (m < 0)
                die("--mech: PLAIN, SCRAM-SHA-1, SCRAM-SHA-256 or their -PLUS, not '%s'",
                    optarg);
            cf->mech = (enum sb_mech)m;
            break;
        }
        case O_LRATE: cf->login_rate = num("--login-rate", optarg, 0.001, 1e7); break;
        case O_DUR: cf->duration = num("--duration", optarg, 0, 86400); break;
        case O_MRATE: cf->msg_rate = num("--msg-rate", optarg, 0.001, 1e8); break;
        case O_MSIZE: cf->msg_size = (uint32_t)num("--msg-size", optarg, 0, 65536); break;
        case O_LTO: cf->login_timeout = num("--login-timeout", optarg, 0.1, 3600); break;
        case O_LOSS: cf->loss_timeout = num("--loss-timeout", optarg, 0.01, 3600); break;
        case O_THREADS: cf->threads = (unsigned)num("--threads", optarg, 1, 256); break;
        case O_SRC: {
            char lo[64];
            const char *dash = strchr(optarg, '-');
            snprintf(lo, sizeof(lo), "%.*s", dash ? (int)(dash - optarg) : (int)strlen(optarg),
                     optarg);
            cf->src_lo = ip4(lo);
            cf->src_hi = dash ? ip4(dash + 1) : cf->src_lo;
            if (cf->src_hi < cf->src_lo)
                die("--src: the range '%s' is reversed", optarg);
            break;
        }
        case O_BUFS: {
            uint32_t n = (uint32_t)num("--bufs", optarg, 1, 32768);
            if (n & (n - 1))
                die("--bufs: must be a power of two, not %s", optarg);
            cf->bufs = n;
            break;
        }
        case O_BUFSZ: cf->buf_size = (uint32_t)num("--buf-size", optarg, 256, 1 << 20); break;
        case O_SPID: server_pid = (pid_t)num("--server-pid", optarg, 1, 1 << 30); break;
        case O_JSON: json = optarg; break;
        case O_TICK: cf->tick_ns = (uint64_t)(num("--tick-us", optarg, 0, 1e6) * 1e3); break;
        case O_QUIET: quiet = true; break;
        case O_CTL: ctl = optarg; break;
        case O_CONFIG: config = optarg; break;
        case O_ITER: iter = (unsigned)num("--iterations", optarg, 1, 10000000); break;
        case O_FILE: keep = optarg; break;
        case O_HELP: usage(stdout); return 0;
        case O_TLS:
            if (strcmp(optarg, "none") == 0)
                cf->tls = SB_TLS_NONE;
            else if (strcmp(optarg, "starttls") == 0)
                cf->tls = SB_TLS_STARTTLS;
            else if (strcmp(optarg, "direct") == 0)
                cf->tls = SB_TLS_DIRECT;
            else
                die("--tls: none, starttls or direct, not '%s'", optarg);
            break;
        case O_TLSVER:
            if (strcmp(optarg, "1.2") == 0)
                cf->tls_version = TLS1_2_VERSION;
            else if (strcmp(optarg, "1.3") == 0)
                cf->tls_version = TLS1_3_VERSION;
            else
                die("--tls-version: 1.2 or 1.3, not '%s'", optarg);
            break;
        case O_CA: cf->ca = optarg; break;
        case O_CSV: csv_path = optarg; break;
        case O_XEP0077: xep0077 = true; break;
        case O_SM: cf->sm = true; break;
        case O_LAZY: cf->lazy_recv = true; break;
        case O_PROCS: procs = (unsigned)num("--procs", optarg, 1, 64); break;
        case O_CONTACTS:
            cf->contacts = (uint32_t)num("--contacts", optarg, 1, 1000);
            contacts_set = true;
            break;
        case O_BCAST: cf->broadcast = true; break;
        case O_RESOURCES: cf->resources = (uint32_t)num("--resources", optarg, 1, 16); break;
        case O_CARBONS: cf->carbons = true; break;
        case O_PRATE: cf->msg_rate = num("--presence-rate", optarg, 0.001, 1e7); break;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc)
        die("unexpected argument '%s'", argv[optind]);
    if (provision_cmd && xep0077)
        return sb_register_accounts(cf);
    if (provision_cmd) {
        if (!ctl || !config)
            die("%s", "provision needs --stanzactl PATH and --config FILE, or --xep0077");
        if (contacts_set && (cf->contacts % 2 || cf->contacts >= cf->users))
            die("--contacts: %u must be even and less than --users (%u)", cf->contacts,
                cf->users);
        return provision(cf, ctl, config, iter, keep, contacts_set);
    }
    if (sb_mech_is_plus(cf->mech) && (cf->tls == SB_TLS_NONE || cf->tls_version != TLS1_3_VERSION))
        die("%s", "a -PLUS mechanism needs --tls starttls|direct and TLS 1.3 (tls-exporter)");
    if (cf->ca && cf->tls == SB_TLS_NONE)
        die("%s", "--ca needs --tls starttls|direct");
    if (cf->lazy_recv && !cf->tick_ns)
        die("%s", "--lazy-recv (lazy_recv) needs --tick-us (tick_us) above 0");
    if (cf->scenario == SB_SC_ONE2ONE && cf->users < 2 * procs)
        die("%s", "one2one needs at least 2 users (per process)");
    if (cf->scenario == SB_SC_ROSTER && cf->contacts >= cf->users / procs)
        die("--contacts: %u must be less than the users of a process (%u)", cf->contacts,
            cf->users / procs);
    if (cf->broadcast && cf->scenario != SB_SC_ROSTER)
        die("%s", "--broadcast is an option of roster-presence");
    if (cf->broadcast && procs > 1)
        die("%s", "--broadcast needs --procs 1: the server's fan-out would cross processes, "
                  "which count their deliveries apart");
    if (procs > cf->users)
        die("--procs: %u processes for %u users", procs, cf->users);
    if ((cf->resources > 1 || cf->carbons) && cf->scenario != SB_SC_ONE2ONE)
        die("%s", "--resources and --carbons are options of one2one");
    if (server_pid > 0 && kill(server_pid, 0) < 0 && errno == ESRCH)
        die("--server-pid: no process %s", "with that id");
    if (procs > 1) {
        opt_server_pid = server_pid;
        opt_json = json;
        return run_procs(&run, procs);
    }
    return run_scenario(&run, server_pid, json, quiet);
}
