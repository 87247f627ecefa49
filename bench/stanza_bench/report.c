/*
 * Report of a run (see report.h): the figures are derived once (struct
 * figures) and then printed as a table or written as JSON, so both always
 * agree. Server CPU per unit of work comes from /proc/PID/stat, whose
 * utime and stime are in clock ticks (usually 10 ms): run long enough for
 * the work to cost many ticks.
 */
#include "bench/stanza_bench/report.h"

#include <openssl/ssl.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/stanza_bench/scenario.h"

void sb_sample(pid_t pid, sb_sample_t *s)
{
    memset(s, 0, sizeof(*s));
    if (pid <= 0)
        return;
    char path[64], buf[4096];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* fields after "(comm)": state is field 3, utime 14, stime 15 */
    char *p = strrchr(buf, ')');
    if (!p)
        return;
    p++;
    unsigned long long ut = 0, st = 0;
    for (int field = 3; field <= 15 && p; field++) {
        while (*p == ' ')
            p++;
        if (field == 14)
            ut = strtoull(p, NULL, 10);
        if (field == 15)
            st = strtoull(p, NULL, 10);
        p = strchr(p, ' ');
    }
    long hz = sysconf(_SC_CLK_TCK);
    s->cpu_s = (double)(ut + st) / (double)(hz > 0 ? hz : 100);
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return;
    char line[256];
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            s->rss_kib = strtoull(line + 6, NULL, 10);
    fclose(f);
    s->ok = true;
}

void sb_report_init(sb_report_t *r)
{
    r->login_h = malloc(sizeof(sb_hist_t));
    r->deliver_h = malloc(sizeof(sb_hist_t));
    if (!r->login_h || !r->deliver_h)
        abort();
    sb_hist_reset(r->login_h);
    sb_hist_reset(r->deliver_h);
    memset(&r->c, 0, sizeof(r->c));
    memset(&r->errs, 0, sizeof(r->errs));
}

void sb_report_add(sb_report_t *r, const sb_counters_t *c, const sb_hist_t *login_h,
                   const sb_hist_t *deliver_h, const sb_errtab_t *errs)
{
    /* times and maxima are not sums */
    uint64_t last = r->c.last_online_ns > c->last_online_ns ? r->c.last_online_ns
                                                            : c->last_online_ns;
    uint64_t lag = r->c.max_lag_ns > c->max_lag_ns ? r->c.max_lag_ns : c->max_lag_ns;
    const uint64_t *src = (const uint64_t *)c;
    uint64_t *dst = (uint64_t *)&r->c;
    for (size_t k = 0; k < sizeof(sb_counters_t) / sizeof(uint64_t); k++)
        dst[k] += src[k];
    r->c.last_online_ns = last;
    r->c.max_lag_ns = lag;
    sb_hist_merge(r->login_h, login_h);
    sb_hist_merge(r->deliver_h, deliver_h);
    r->errs.other += errs->other;
    for (unsigned e = 0; e < errs->n; e++) {
        unsigned j;
        for (j = 0; j < r->errs.n; j++)
            if (strcmp(r->errs.e[j].name, errs->e[e].name) == 0)
                break;
        if (j == r->errs.n) {
            if (j == SB_ERR_KINDS) {
                r->errs.other += errs->e[e].count;
                continue;
            }
            memcpy(r->errs.e[j].name, errs->e[e].name, sizeof(r->errs.e[j].name));
            r->errs.n++;
        }
        r->errs.e[j].count += errs->e[e].count;
    }
}

void sb_report_build(sb_report_t *r)
{
    sb_run_t *run = r->run;
    sb_report_init(r);
    for (unsigned i = 0; i < run->conf.threads; i++) {
        sb_thread_t *t = &run->t[i];
        sb_report_add(r, &t->c, &t->login_h, &t->deliver_h, &t->errs);
    }
}

void sb_report_free(sb_report_t *r)
{
    free(r->login_h);
    free(r->deliver_h);
    r->login_h = r->deliver_h = NULL;
}

struct figures {
    double login_span_s, logins_per_s, conns_per_s;
    double msg_span_s, sent_per_s;
    uint64_t lost;
    bool srv, self;
    double srv_cpu_login_s, srv_us_per_login, srv_kib_per_session, srv_kib_per_session_end;
    double srv_cpu_msg_s, srv_us_per_msg, srv_s_per_100k;
    double self_cpu_s, self_kib_per_session, self_us_per_msg;
};

static void derive(const sb_report_t *r, struct figures *f)
{
    const sb_run_t *run = r->run;
    memset(f, 0, sizeof(*f));
    if (r->c.online && r->c.last_online_ns > run->t_ramp0) {
        f->login_span_s = (double)(r->c.last_online_ns - run->t_ramp0) / 1e9;
        f->logins_per_s = (double)r->c.online / f->login_span_s;
        f->conns_per_s = (double)r->c.connected / f->login_span_s;
    }
    if (run->conf.scenario != SB_SC_CONNECT && r->t_end > r->t_phase2) {
        f->msg_span_s = run->conf.duration;
        f->sent_per_s = f->msg_span_s > 0 ? (double)r->c.sent / f->msg_span_s : 0;
    }
    f->lost = r->c.sent > r->c.received ? r->c.sent - r->c.received : 0;
    double online = r->c.online ? (double)r->c.online : 1.0;
    f->srv = r->server_pid > 0 && r->srv[0].ok && r->srv[1].ok && r->srv[2].ok;
    if (f->srv) {
        f->srv_cpu_login_s = r->srv[1].cpu_s - r->srv[0].cpu_s;
        f->srv_us_per_login = f->srv_cpu_login_s * 1e6 / online;
        f->srv_kib_per_session = ((double)r->srv[1].rss_kib - (double)r->srv[0].rss_kib) / online;
        f->srv_kib_per_session_end =
            ((double)r->srv[2].rss_kib - (double)r->srv[0].rss_kib) / online;
        f->srv_cpu_msg_s = r->srv[2].cpu_s - r->srv[1].cpu_s;
        if (r->c.sent) {
            f->srv_us_per_msg = f->srv_cpu_msg_s * 1e6 / (double)r->c.sent;
            f->srv_s_per_100k = f->srv_cpu_msg_s * 1e5 / (double)r->c.sent;
        }
    }
    f->self = r->self[0].ok && r->self[1].ok && r->self[2].ok;
    if (f->self) {
        f->self_cpu_s = r->self[2].cpu_s - r->self[0].cpu_s;
        f->self_kib_per_session = ((double)r->self[1].rss_kib - (double)r->self[0].rss_kib) / online;
        if (r->c.sent)
            f->self_us_per_msg = (r->self[2].cpu_s - r->self[1].cpu_s) * 1e6 / (double)r->c.sent;
    }
}

static const char *procs_note(const sb_report_t *r)
{
    static char b[48];
    b[0] = '\0';
    if (r->procs > 1)
        snprintf(b, sizeof(b), " per process, %u processes", r->procs);
    return b;
}

static const double pcts[] = {50, 90, 99, 99.9, 100};
static const char *const pct_names[] = {"p50", "p90", "p99", "p99.9", "max"};
static const char *const pct_keys[] = {"p50", "p90", "p99", "p99_9", "max"};

static void print_lat(FILE *f, const char *label, const sb_hist_t *h)
{
    fprintf(f, "%-22s", label);
    if (!h->count) {
        fprintf(f, "no samples\n");
        return;
    }
    for (unsigned i = 0; i < 5; i++)
        fprintf(f, " %s %.3f ms", pct_names[i], (double)sb_hist_pct(h, pcts[i]) / 1e6);
    fprintf(f, "  (n=%llu)\n", (unsigned long long)h->count);
}

static const char *const tls_modes[] = {"none", "starttls", "direct"};

static const char *tls_ver(const sb_conf_t *cf)
{
    return cf->tls_version == TLS1_2_VERSION ? "1.2" : "1.3";
}

/* "plaintext", or "STARTTLS, TLS 1.3" */
static const char *tls_name(const sb_conf_t *cf)
{
    if (cf->tls == SB_TLS_NONE)
        return "plaintext";
    if (cf->tls == SB_TLS_STARTTLS)
        return cf->tls_version == TLS1_2_VERSION ? "STARTTLS, TLS 1.2" : "STARTTLS, TLS 1.3";
    return cf->tls_version == TLS1_2_VERSION ? "Direct TLS, TLS 1.2" : "Direct TLS, TLS 1.3";
}

void sb_report_print(const sb_report_t *r, FILE *f)
{
    const sb_run_t *run = r->run;
    const sb_conf_t *cf = &run->conf;
    struct figures d;
    derive(r, &d);
    char addr[32];
    uint32_t a = ntohl(cf->server.sin_addr.s_addr);
    snprintf(addr, sizeof(addr), "%u.%u.%u.%u:%u", a >> 24, (a >> 16) & 255, (a >> 8) & 255,
             a & 255, ntohs(cf->server.sin_port));
    fprintf(f, "stanza-bench %s: %u users, %u threads%s, %s, domain %s, %s, %s\n",
            sb_scenario_name(cf->scenario), cf->users, cf->threads, procs_note(r), addr,
            cf->domain, sb_mech_name(cf->mech), tls_name(cf));
    fprintf(f, "%-22s %llu online, %llu failed, %llu dropped later (of %llu launched)\n",
            "logins", (unsigned long long)r->c.online, (unsigned long long)r->c.failed,
            (unsigned long long)r->c.dropped, (unsigned long long)r->c.launched);
    fprintf(f, "%-22s %.0f logins/s, %.0f connections/s over %.2f s (target %.0f/s)\n", "login rate",
            d.logins_per_s, d.conns_per_s, d.login_span_s, cf->login_rate);
    print_lat(f, "login latency", r->login_h);
    if (cf->scenario != SB_SC_CONNECT) {
        /* roster-presence: the "messages" are directed presences, <contacts>
         * per update */
        fprintf(f,
                "%-22s planned %llu, sent %llu (%.0f/s, target %.0f/s), received %llu, lost %llu "
                "(late %llu, bounced %llu; timeout %.1f s)\n",
                cf->scenario == SB_SC_ROSTER ? "presences" : "messages",
                (unsigned long long)(run->nmsgs * (cf->scenario == SB_SC_ROSTER ? cf->contacts : 1)),
                (unsigned long long)r->c.sent,
                d.sent_per_s, cf->msg_rate * (cf->scenario == SB_SC_ROSTER ? cf->contacts : 1),
                (unsigned long long)r->c.received,
                (unsigned long long)d.lost, (unsigned long long)r->c.late,
                (unsigned long long)r->c.bounced, cf->loss_timeout);
        print_lat(f, cf->scenario == SB_SC_ROSTER ? "presence latency" : "delivery latency",
                  r->deliver_h);
        fprintf(f, "%-22s %.3f ms (a send later than its intended time; counted in latency)\n",
                "max send lag", (double)r->c.max_lag_ns / 1e6);
    } else {
        fprintf(f, "%-22s %.1f s\n", "held idle", cf->duration);
    }
    if (cf->scenario == SB_SC_ROSTER)
        fprintf(f, "%-22s %llu results (%llu items, %.1f per roster%s), errors counted below\n",
                "roster gets", (unsigned long long)r->c.roster_results,
                (unsigned long long)r->c.roster_items,
                r->c.roster_results ? (double)r->c.roster_items / (double)r->c.roster_results : 0.0,
                cf->broadcast ? "; broadcast mode" : "; directed mode");
    if (cf->resources > 1 || cf->carbons)
        fprintf(f, "%-22s %u per user (%u sessions); carbons %s: %llu enabled, %llu copies received\n",
                "resources", cf->resources, sb_sessions(cf), cf->carbons ? "on" : "off",
                (unsigned long long)r->c.carbons_enabled,
                (unsigned long long)r->c.carbons_received);
    if (cf->sm)
        fprintf(f,
                "%-22s enabled %llu, failed %llu, not offered %llu; <r/> received %llu, "
                "<a/> sent %llu, <a/> received %llu\n",
                "stream management", (unsigned long long)r->c.sm_enabled,
                (unsigned long long)r->c.sm_failed, (unsigned long long)r->c.sm_unsupported,
                (unsigned long long)r->c.sm_requests, (unsigned long long)r->c.sm_acks_sent,
                (unsigned long long)r->c.sm_acks_received);
    if (r->errs.n == 0 && r->errs.other == 0) {
        fprintf(f, "%-22s none\n", "errors");
    } else {
        fprintf(f, "%-22s %llu\n", "errors", (unsigned long long)r->c.errors);
        for (unsigned i = 0; i < r->errs.n; i++)
            fprintf(f, "  %-40s %llu\n", r->errs.e[i].name, (unsigned long long)r->errs.e[i].count);
        if (r->errs.other)
            fprintf(f, "  %-40s %llu\n", "(other kinds)", (unsigned long long)r->errs.other);
    }
    if (d.srv) {
        fprintf(f, "%-22s pid %d: logins %.2f s CPU = %.0f us/login; RSS %llu -> %llu KiB = %.2f "
                   "KiB/session",
                "server", (int)r->server_pid, d.srv_cpu_login_s, d.srv_us_per_login,
                (unsigned long long)r->srv[0].rss_kib, (unsigned long long)r->srv[1].rss_kib,
                d.srv_kib_per_session);
        if (cf->scenario == SB_SC_CONNECT)
            fprintf(f, " (%.2f at the end of the hold)\n", d.srv_kib_per_session_end);
        else
            fprintf(f, "\n%-22s messages %.2f s CPU = %.1f us/message = %.3f s per 100k messages\n",
                    "", d.srv_cpu_msg_s, d.srv_us_per_msg, d.srv_s_per_100k);
    } else if (r->server_pid > 0) {
        fprintf(f, "%-22s pid %d could not be sampled\n", "server", (int)r->server_pid);
    }
    if (d.self)
    {
        fprintf(f, "%-22s %.2f s CPU in total, RSS %.2f KiB/session", "stanza-bench itself",
                d.self_cpu_s, d.self_kib_per_session);
        if (cf->scenario != SB_SC_CONNECT)
            fprintf(f, ", %.1f us CPU/message", d.self_us_per_msg);
        fputc('\n', f);
    }
}

/* JSON string without quotes: escapes quote, backslash and controls. */
static void jstr(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static void jlat(FILE *f, const sb_hist_t *h)
{
    fprintf(f, "{\"count\": %llu", (unsigned long long)h->count);
    for (unsigned i = 0; i < 5; i++)
        fprintf(f, ", \"%s\": %.3f", pct_keys[i], (double)sb_hist_pct(h, pcts[i]) / 1e3);
    fprintf(f, ", \"mean\": %.3f}", sb_hist_mean(h) / 1e3);
}

int sb_report_json(const sb_report_t *r, const char *path)
{
    const sb_run_t *run = r->run;
    const sb_conf_t *cf = &run->conf;
    struct figures d;
    derive(r, &d);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    uint32_t a = ntohl(cf->server.sin_addr.s_addr);
    fprintf(f, "{\n  \"tool\": \"stanza-bench\",\n  \"scenario\": \"%s\",\n",
            sb_scenario_name(cf->scenario));
    fprintf(f, "  \"procs\": %u,\n", r->procs ? r->procs : 1);
    if (cf->scenario == SB_SC_ROSTER)
        fprintf(f,
                "  \"contacts\": %u,\n  \"broadcast\": %s,\n"
                "  \"roster\": {\"results\": %llu, \"items\": %llu},\n",
                cf->contacts, cf->broadcast ? "true" : "false",
                (unsigned long long)r->c.roster_results, (unsigned long long)r->c.roster_items);
    fprintf(f, "  \"server\": \"%u.%u.%u.%u:%u\",\n  \"domain\": ", a >> 24, (a >> 16) & 255,
            (a >> 8) & 255, a & 255, ntohs(cf->server.sin_port));
    jstr(f, cf->domain);
    fprintf(f, ",\n  \"tls\": %s,\n  \"tls_mode\": \"%s\",\n  \"tls_version\": \"%s\",",
            cf->tls ? "true" : "false", tls_modes[cf->tls], cf->tls ? tls_ver(cf) : "");
    fprintf(f, "\n  \"mechanism\": \"%s\",\n  \"threads\": %u,\n  \"users\": %u,\n",
            sb_mech_name(cf->mech), cf->threads, cf->users);
    fprintf(f,
            "  \"logins\": {\"target_rate\": %.3f, \"launched\": %llu, \"connected\": %llu, "
            "\"online\": %llu, \"failed\": %llu, \"dropped\": %llu, \"duration_s\": %.3f, "
            "\"logins_per_s\": %.3f, \"connections_per_s\": %.3f, \"latency_us\": ",
            cf->login_rate, (unsigned long long)r->c.launched, (unsigned long long)r->c.connected,
            (unsigned long long)r->c.online, (unsigned long long)r->c.failed,
            (unsigned long long)r->c.dropped, d.login_span_s, d.logins_per_s, d.conns_per_s);
    jlat(f, r->login_h);
    fprintf(f, "},\n");
    if (cf->scenario == SB_SC_CONNECT) {
        fprintf(f, "  \"hold_s\": %.3f,\n", cf->duration);
    } else {
        fprintf(f,
                "  \"messages\": {\"target_rate\": %.3f, \"size\": %u, \"duration_s\": %.3f, "
                "\"planned\": %llu, \"sent\": %llu, \"received\": %llu, \"lost\": %llu, "
                "\"late\": %llu, \"bounced\": %llu, \"loss_timeout_s\": %.3f, "
                "\"max_send_lag_us\": %.3f, \"latency_us\": ",
                cf->msg_rate, cf->msg_size, cf->duration, (unsigned long long)run->nmsgs,
                (unsigned long long)r->c.sent, (unsigned long long)r->c.received,
                (unsigned long long)d.lost, (unsigned long long)r->c.late,
                (unsigned long long)r->c.bounced, cf->loss_timeout, (double)r->c.max_lag_ns / 1e3);
        jlat(f, r->deliver_h);
        fprintf(f, "},\n");
    }
    fprintf(f, "  \"resources\": %u,\n  \"carbons\": {\"requested\": %s, \"enabled\": %llu, "
               "\"received\": %llu},\n",
            cf->resources, cf->carbons ? "true" : "false",
            (unsigned long long)r->c.carbons_enabled, (unsigned long long)r->c.carbons_received);
    fprintf(f,
            "  \"sm\": {\"requested\": %s, \"enabled\": %llu, \"failed\": %llu, "
            "\"unsupported\": %llu, \"requests_received\": %llu, \"acks_sent\": %llu, "
            "\"acks_received\": %llu},\n",
            cf->sm ? "true" : "false", (unsigned long long)r->c.sm_enabled,
            (unsigned long long)r->c.sm_failed, (unsigned long long)r->c.sm_unsupported,
            (unsigned long long)r->c.sm_requests, (unsigned long long)r->c.sm_acks_sent,
            (unsigned long long)r->c.sm_acks_received);
    fprintf(f, "  \"errors\": {\"total\": %llu, \"by_condition\": {",
            (unsigned long long)r->c.errors);
    for (unsigned i = 0; i < r->errs.n; i++) {
        fprintf(f, "%s", i ? ", " : "");
        jstr(f, r->errs.e[i].name);
        fprintf(f, ": %llu", (unsigned long long)r->errs.e[i].count);
    }
    if (r->errs.other)
        fprintf(f, "%s\"other\": %llu", r->errs.n ? ", " : "", (unsigned long long)r->errs.other);
    fprintf(f, "}},\n");
    if (d.srv)
        fprintf(f,
                "  \"server\": {\"pid\": %d, \"cpu_s_logins\": %.3f, \"cpu_us_per_login\": %.3f, "
                "\"rss_kib_before\": %llu, \"rss_kib_after_logins\": %llu, \"rss_kib_end\": %llu, "
                "\"kib_per_session\": %.3f, \"kib_per_session_end\": %.3f, "
                "\"cpu_s_messages\": %.3f, \"cpu_us_per_message\": %.3f, "
                "\"cpu_s_per_100k_messages\": %.3f},\n",
                (int)r->server_pid, d.srv_cpu_login_s, d.srv_us_per_login,
                (unsigned long long)r->srv[0].rss_kib, (unsigned long long)r->srv[1].rss_kib,
                (unsigned long long)r->srv[2].rss_kib, d.srv_kib_per_session,
                d.srv_kib_per_session_end, d.srv_cpu_msg_s, d.srv_us_per_msg, d.srv_s_per_100k);
    else
        fprintf(f, "  \"server\": null,\n");
    fprintf(f,
            "  \"client\": {\"cpu_s\": %.3f, \"rss_kib_before\": %llu, \"rss_kib_after_logins\": "
            "%llu, \"kib_per_session\": %.3f, \"cpu_us_per_message\": %.3f}\n}\n",
            d.self_cpu_s, (unsigned long long)r->self[0].rss_kib,
            (unsigned long long)r->self[1].rss_kib, d.self_kib_per_session, d.self_us_per_msg);
    return fclose(f) == 0 ? 0 : -1;
}
