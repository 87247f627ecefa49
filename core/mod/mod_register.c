/*
 * XEP-0077 In-Band Registration of new accounts, on a client stream
 * before authentication (scope SZ_IQ_PREAUTH: the stream hands the iq
 * here, not the router), enabled per host (hosts[].register). A request
 * costs three PBKDF2 derivations, so each source address gets
 * limits.register_per_source_per_hour attempts, charged only for
 * well-formed requests and before the derivation, which runs on a storage
 * worker; the account is then created in storage and the answer goes back
 * on the stream, if it is still there (the stream is held meanwhile).
 *
 * Not supported: changing the password or cancelling the account from an
 * authenticated stream (XEP-0077 §3.2, §3.3).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/hooks.h"
#include "core/mem.h"
#include "core/mod/modules.h"
#include "core/reactor.h"

#define NS_REGISTER      "jabber:iq:register"
#define NS_REGISTER_FEAT "http://jabber.org/features/iq-register"

static const sz_mod_env_t *env;

/* Registrations per source and hour: (hour << 32 | count), indexed like
 * the stream's source slot. Node-wide and lock-free: addresses that
 * collide share a budget, which only makes the limit stricter. */
#define SRC_SLOTS 65536u
static uint64_t by_src[SRC_SLOTS];

static bool enabled(int host)
{
    return sz_router_host_register(host);
}

/* One registration attempt from <source> in this hour? */
static bool budget(uint32_t source)
{
    uint32_t limit = SZ_CONF_LIMIT(env->conf, register_per_source_per_hour);
    uint64_t hour = sz_now_ms() / 3600000u;
    uint64_t *w = &by_src[source ? (source - 1) % SRC_SLOTS : 0];
    uint64_t old = __atomic_load_n(w, __ATOMIC_RELAXED), next;
    do {
        uint64_t count = (old >> 32) == (hour & 0xffffffffu) ? (old & 0xffffffffu) : 0;
        if (count >= limit)
            return false;
        next = (hour & 0xffffffffu) << 32 | (count + 1);
    } while (!__atomic_compare_exchange_n(w, &old, next, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return true;
}

/* One registration in flight: the stream it answers on is held. */
struct job {
    sz_preauth_t pre;
    char *id; /* the iq's id (decoded), or NULL */
    size_t idlen;
    sz_jid_t *jid;
    char *pw;
    size_t pl;
    uint32_t iterations;
    int rc;
    sz_scram_creds_t creds;
};

static void job_end(struct job *job, enum sz_stanza_err e)
{
    job->pre.ops->answer(job->pre.p, job->id, job->idlen, NULL, e);
    job->pre.ops->release(job->pre.p);
    sz_hooks_release();
    if (job->pw) {
        memset(job->pw, 0, job->pl);
        sz_free(job->pw);
    }
    memset(&job->creds, 0, sizeof(job->creds));
    sz_jid_free(job->jid);
    sz_free(job->id);
    sz_free(job);
}

static void on_created(void *arg, int res)
{
    struct job *job = arg;
    job_end(job, res == 0         ? 0
                 : res == -EEXIST ? SZ_STANZA_ERR_CONFLICT
                                  : SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
}

/* On a storage worker: the three derivations. */
static void derive(void *arg)
{
    struct job *job = arg;
    job->rc = env->derive(job->pw, job->pl, job->iterations, &job->creds);
}

static void derived(void *arg, int res)
{
    struct job *job = arg;
    (void)res;
    memset(job->pw, 0, job->pl);
    if (job->rc < 0) {
        job_end(job, SZ_STANZA_ERR_NOT_ACCEPTABLE); /* not a valid password */
        return;
    }
    if (sz_store_account_create(env->store, job->jid, &job->creds, on_created, job) < 0)
        job_end(job, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
}

/* Child element <name> of the query, as text (NULL: absent). */
static const char *field(const sz_xml_node_t *q, const char *name, size_t *len)
{
    const sz_xml_node_t *f = sz_xml_child(q, name, NS_REGISTER);
    return f ? sz_xml_text(f, len) : NULL;
}

static int on_register(sz_hook_ctx_t *ctx, const sz_xml_node_t *q, bool set)
{
    const sz_preauth_t *pre = ctx->pre;
    if (!enabled(ctx->host) || !env->store || !env->derive)
        return -SZ_STANZA_ERR_SERVICE_UNAVAILABLE;
    if (!pre->secure)
        return SZ_PASS; /* TLS first: the stream refuses it like any stanza */
    if (!set) {
        static const char form[] = "<query xmlns='" NS_REGISTER "'><instructions>Choose a "
                                   "username and password.</instructions><username/>"
                                   "<password/></query>";
        char id[1024];
        ssize_t il = sz_stanza_attr(ctx->st, SZ_XML_A_ID, id, sizeof(id));
        pre->ops->answer(pre->p, il >= 0 ? id : NULL, il >= 0 ? (size_t)il : 0, form, 0);
        return SZ_HANDLED;
    }
    size_t ul = 0, pl = 0;
    const char *user = field(q, "username", &ul), *pass = field(q, "password", &pl);
    if (!user || !pass || ul == 0 || pl == 0)
        return -SZ_STANZA_ERR_NOT_ACCEPTABLE; /* XEP-0077 §3.1: fields missing */
    const char *domain = sz_router_host_name(ctx->host);
    char jid[SZ_JID_INPUT_MAX_BYTES + 1];
    int n = snprintf(jid, sizeof(jid), "%.*s@%s", (int)ul, user, domain);
    sz_jid_t *j = NULL;
    if (n <= 0 || (size_t)n >= sizeof(jid) || memchr(user, '@', ul) || memchr(user, '/', ul) ||
        sz_jid_parse(jid, (size_t)n, &j) < 0)
        return -SZ_STANZA_ERR_NOT_ACCEPTABLE;
    if (!pre->ops->hold(pre->p)) {
        sz_jid_free(j);
        return -SZ_STANZA_ERR_RESOURCE_CONSTRAINT; /* one registration at a time */
    }
    /* The budget is charged only for well-formed requests, before the
     * costly key derivation. */
    if (!budget(pre->source)) {
        pre->ops->release(pre->p);
        sz_jid_free(j);
        return -SZ_STANZA_ERR_RESOURCE_CONSTRAINT;
    }
    struct job *job = sz_calloc(1, sizeof(*job));
    job->pre = *pre;
    char id[1024];
    ssize_t il = sz_stanza_attr(ctx->st, SZ_XML_A_ID, id, sizeof(id));
    if (il >= 0) {
        job->id = sz_strndup(id, (size_t)il);
        job->idlen = (size_t)il;
    }
    job->jid = j;
    job->pw = sz_strndup(pass, pl);
    job->pl = pl;
    job->iterations = SZ_CONF_LIMIT(env->conf, scram_iterations);
    sz_hooks_hold();
    if (sz_store_call(env->store, derive, derived, job) < 0) {
        derive(job); /* the store is closing: answer all the same */
        derived(job, 0);
    }
    return SZ_HANDLED;
}

void sz_mod_register_register(const sz_mod_env_t *e)
{
    env = e;
    sz_hooks_iq("query", NS_REGISTER, SZ_IQ_PREAUTH, on_register);
    sz_hooks_stream_feature("<register xmlns='" NS_REGISTER_FEAT "'/>", false, enabled);
    sz_hooks_disco_feature(NS_REGISTER, SZ_IQ_SERVER, enabled);
}
