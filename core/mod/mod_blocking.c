/*
 * Blocking Command (XEP-0191, version 1.3): the blocklist get, block and
 * unblock (all) of a user's own resources, answered after storage
 * committed and pushed to the resources that asked for the list; stanzas
 * from a blocked entity refused per the XEP's section "Blocked Entity
 * Attempts to Communicate with User" (below: the inbound rule), stanzas of
 * the user to one per "User Attempts to Communicate with Blocked Entity"
 * (the outbound rule); and presence cut when a contact is blocked, sent again when it is
 * unblocked (§3.3, §3.4). The cache and job queue are core/mod/blocklist.c;
 * presence broadcasts skip blocked contacts in mod_presence.c.
 *
 * Every stanza of a user's client, and every stanza to the user from
 * someone else, waits while the user's blocklist loads or changes, so no
 * stanza slips past a block, and none overtakes another. A held stanza
 * then goes on along the router's path as if never stopped (resume_*).
 *
 * Threads: the user's home reactor.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/mod/blocklist.h"
#include "core/mod/modules.h"
#include "core/mod/roster.h"
#include "core/xml/builder.h"

#define NS_BLOCKING "urn:xmpp:blocking"
#define NS_BLOCKING_ERRORS "urn:xmpp:blocking:errors"

/* The stanza a held job is sending on, while it is routed: the hooks
 * here pass it (it was checked), wherever the router takes it next. */
static __thread const sz_stanza_t *resume_out, *resume_in;

/* ---- requested changes ---------------------------------------------------------- */

/* The JIDs of one block or unblock, normalized: <n> pointers into the
 * strings after them (one allocation). n 0 in an unblock: all (§3.5). */
struct change {
    sz_blocklist_t *bl; /* while the write runs */
    sz_blocklist_job_t *job;
    size_t n;
    const char *v[];
};

static struct change *change_new(const char *const *v, const size_t *len, size_t n)
{
    size_t bytes = 0;
    for (size_t i = 0; i < n; i++)
        bytes += len[i] + 1;
    struct change *c = sz_calloc(1, sizeof(*c) + n * sizeof(c->v[0]) + bytes);
    char *at = (char *)&c->v[n];
    for (size_t i = 0; i < n; i++) {
        memcpy(at, v[i], len[i]);
        at[len[i]] = '\0';
        c->v[i] = at;
        at += len[i] + 1;
    }
    c->n = n;
    return c;
}

/* The <item jid='…'/> children of <payload> (§3.3, §3.4) as a change, or a
 * stanza error: bad-request for an item without a JID, jid-malformed for
 * one that is no JID (RFC 6120 §8.3.3.8), not-allowed for more than <max>
 * items (0: no limit). Duplicates are kept once. */
static int parse_items(const sz_xml_node_t *payload, size_t max, struct change **out)
{
    size_t n = 0;
    for (const sz_xml_node_t *it = sz_xml_child(payload, "item", NS_BLOCKING); it;
         it = sz_xml_next(it, "item", NS_BLOCKING))
        n++;
    if (n > max && max)
        return -SZ_STANZA_ERR_NOT_ALLOWED;
    char **v = sz_calloc(n ? n : 1, sizeof(*v));
    size_t *len = sz_calloc(n ? n : 1, sizeof(*len));
    size_t k = 0;
    int ret = 0;
    for (const sz_xml_node_t *it = sz_xml_child(payload, "item", NS_BLOCKING); it && ret == 0;
         it = sz_xml_next(it, "item", NS_BLOCKING)) {
        size_t al;
        const char *a = sz_xml_attr(it, "jid", NULL, &al);
        sz_jid_buf_t jb;
        sz_jid_t *j = NULL;
        if (!a) {
            ret = -SZ_STANZA_ERR_BAD_REQUEST;
            break;
        }
        if (sz_jid_parse_into(a, al, &jb, sizeof(jb), &j, NULL) < 0) {
            ret = -SZ_STANZA_ERR_JID_MALFORMED;
            break;
        }
        size_t fl;
        const char *f = sz_jid_full(j, &fl);
        bool dup = false;
        for (size_t i = 0; i < k && !dup; i++)
            dup = len[i] == fl && memcmp(v[i], f, fl) == 0;
        if (dup)
            continue;
        v[k] = sz_strndup(f, fl);
        len[k++] = fl;
    }
    if (ret == 0)
        *out = change_new((const char *const *)v, len, k);
    for (size_t i = 0; i < k; i++)
        sz_free(v[i]);
    sz_free(v);
    sz_free(len);
    return ret;
}

/* <block/> or <unblock/> with the items of <c> (none: an unblock of
 * all), serialized for a push; caller frees. */
static char *payload_xml(const char *name, const struct change *c, size_t *len)
{
    sz_xb_t xb;
    sz_xb_init(&xb, 64 + c->n * 64);
    sz_xb_start(&xb, name, NS_BLOCKING);
    for (size_t i = 0; i < c->n; i++) {
        sz_xb_start(&xb, "item", NULL);
        sz_xb_attr(&xb, "jid", c->v[i]);
        sz_xb_end(&xb);
    }
    sz_xb_end(&xb);
    char *xml;
    if (sz_xb_finish(&xb, &xml, len) < 0)
        return NULL;
    return xml;
}

/* ---- presence on block and unblock (§3.3, §3.4) ------------------------------------- */

#define P_RESTORE 0x80000000u /* job->aux: unblock (else block) */

/* Whether item <item> concerns roster contact <c>/<cl> (bare): a bare or
 * full JID of the contact, or the contact's domain (with or without a
 * resource). The presence goes to <to> (NUL-terminated, in <buf>): the
 * item's full JID, contact/resource for a domain/resource item, else the
 * contact's bare JID. */
static bool covers(const char *item, const char *c, size_t cl, char *buf, size_t cap)
{
    sz_jid_buf_t ib, cb;
    sz_jid_t *ij = sz_roster_jid(item, strlen(item), &ib), *cj = sz_roster_jid(c, cl, &cb);
    if (!ij || !cj)
        return false;
    size_t idl, cdl, rl = 0;
    const char *idom = sz_jid_domain(ij, &idl), *cdom = sz_jid_domain(cj, &cdl);
    const char *res = sz_jid_is_bare(ij) ? NULL : sz_jid_resource(ij, &rl);
    if (sz_jid_has_local(ij) ? !sz_jid_bare_eq(ij, cj)
                             : idl != cdl || memcmp(idom, cdom, idl) != 0)
        return false;
    if (res && sz_jid_has_local(ij))
        snprintf(buf, cap, "%s", item);
    else if (res)
        snprintf(buf, cap, "%.*s/%.*s", (int)cl, c, (int)rl, res);
    else
        snprintf(buf, cap, "%.*s", (int)cl, c);
    return true;
}

/* A roster job (so it waits for the roster and keeps its order with
 * presence broadcasts): for each contact that a changed item concerns,
 * on block an unavailable from each available resource, if the contact
 * may see the user's presence (§3.3: "only if the contact is allowed to
 * receive presence notifications"); on unblock, if nothing else blocks it
 * now, the current presence (From, Both) and a probe (To, Both), §3.4. A
 * full-JID item gets its presence at that full JID. */
static bool job_presence(sz_roster_t *ro, sz_roster_job_t *job, int res)
{
    struct change *c = job->data;
    sz_user_t *u = sz_roster_user(ro);
    bool restore = (job->aux & P_RESTORE) != 0;
    size_t ol;
    const char *o = sz_jid_bare(sz_roster_owner(ro), &ol);
    size_t n = res == 0 && u ? sz_roster_count(ro) : 0;
    for (size_t i = 0; i < n; i++) {
        size_t cl;
        unsigned b;
        const char *ct = sz_roster_at(ro, i, &cl, &b);
        for (size_t k = 0; k < c->n; k++) {
            char to[SZ_JID_MAX_BYTES + 1];
            if (!covers(c->v[k], ct, cl, to, sizeof(to)))
                continue;
            size_t tl = strlen(to);
            if (!restore) {
                if (b & SZ_RC_FROM)
                    sz_presence_send_unavailable(job->r, u, to, tl);
            } else if (!sz_blocking_blocks(u, to, tl)) {
                if (b & SZ_RC_FROM)
                    sz_presence_send_current(job->r, u, to, tl);
                if ((b & SZ_RC_TO) && tl == cl)
                    sz_roster_send(job->r, "probe", o, ol, ct, cl);
            }
        }
    }
    /* Entities that only got directed presence (§4.6) are cut too. */
    if (!restore && u && res == 0)
        sz_presence_cut_directed(job->r, ro);
    return true;
}

/* Queues the presence work of change <c> (copied) for online user <u>. */
static void presence_after(sz_reactor_t *r, sz_user_t *u, const struct change *c, bool restore)
{
    if (!u || !sz_roster_store() || c->n == 0)
        return;
    size_t *len = sz_calloc(c->n, sizeof(*len));
    for (size_t i = 0; i < c->n; i++)
        len[i] = strlen(c->v[i]);
    sz_roster_job_t *job = sz_roster_job_new(r, job_presence, NULL);
    job->data = change_new(c->v, len, c->n);
    job->aux = restore ? P_RESTORE : 0;
    sz_free(len);
    sz_roster_submit(sz_roster_of(r, u, u->bare), job);
}

/* ---- the IQs (§3.2 - §3.5) ------------------------------------------------------------ */

static bool job_get(sz_blocklist_t *bl, sz_blocklist_job_t *job, int res)
{
    if (res < 0) {
        sz_router_bounce(job->r, job->st, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return true;
    }
    sz_xb_t xb;
    size_t n = sz_blocklist_count(bl);
    sz_xb_init(&xb, 64 + n * 64);
    /* §3.2: one <item/> per blocked JID; an empty <blocklist/> when none. */
    sz_xb_start(&xb, "blocklist", NS_BLOCKING);
    for (size_t i = 0; i < n; i++) {
        size_t l;
        const char *j = sz_blocklist_at(bl, i, &l);
        sz_xb_start(&xb, "item", NULL);
        sz_xb_attr_n(&xb, "jid", j, l);
        sz_xb_end(&xb);
    }
    sz_xb_end(&xb);
    char *xml;
    size_t len;
    if (sz_xb_finish(&xb, &xml, &len) < 0) {
        sz_router_bounce(job->r, job->st, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return true;
    }
    sz_router_iq_result(job->r, job->st, xml, len);
    sz_free(xml);
    /* The resource that read the list gets the changes from now on. */
    sz_session_t *s = sz_roster_session_of(sz_blocklist_user(bl), job->st);
    if (s)
        sz_blocklist_interest(bl, s);
    return true;
}

/* A committed block or unblock: the cache, then presence, the answer and
 * the pushes, in the order of §3.3. */
static void on_written(void *arg, int res)
{
    struct change *c = arg;
    sz_blocklist_job_t *job = c->job;
    sz_blocklist_t *bl = c->bl;
    bool block = job->aux != 0;
    if (res < 0) {
        if (res != -ENOSPC)
            SZ_WARN("msg=\"blocklist write failed\" err=%d", res);
        sz_router_bounce(job->r, job->st, res == -ENOSPC ? SZ_STANZA_ERR_NOT_ALLOWED
                                                          : SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
        sz_blocklist_job_done(bl, job);
        return;
    }
    sz_user_t *u = sz_blocklist_user(bl);
    struct change *all = NULL;
    if (block) {
        for (size_t i = 0; i < c->n; i++)
            sz_blocklist_add(bl, c->v[i], strlen(c->v[i]));
    } else if (c->n == 0) {
        /* §3.5: everything is unblocked; presence goes to each. */
        size_t n = sz_blocklist_count(bl);
        const char **v = sz_calloc(n ? n : 1, sizeof(*v));
        size_t *len = sz_calloc(n ? n : 1, sizeof(*len));
        for (size_t i = 0; i < n; i++)
            v[i] = sz_blocklist_at(bl, i, &len[i]);
        all = change_new(v, len, n);
        sz_free(v);
        sz_free(len);
        sz_blocklist_clear(bl);
    } else {
        for (size_t i = 0; i < c->n; i++)
            sz_blocklist_del(bl, c->v[i], strlen(c->v[i]));
    }
    presence_after(job->r, u, all ? all : c, !block);
    sz_free(all);
    sz_router_iq_result(job->r, job->st, NULL, 0);
    size_t len;
    char *xml = payload_xml(block ? "block" : "unblock", c, &len);
    if (xml)
        sz_blocklist_push(bl, xml, len);
    sz_free(xml);
    sz_blocklist_job_done(bl, job);
}

/* job->data: the change; job->aux: 1 block, 0 unblock. */
static bool job_write(sz_blocklist_t *bl, sz_blocklist_job_t *job, int res)
{
    struct change *c = job->data;
    if (res < 0) {
        sz_router_bounce(job->r, job->st, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return true;
    }
    /* Only what changes is written and pushed. */
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        bool has = sz_blocklist_has(bl, c->v[i], strlen(c->v[i]));
        if (job->aux ? !has : has)
            c->v[k++] = c->v[i];
    }
    bool unblock_all = !job->aux && c->n == 0;
    c->n = k;
    if (k == 0 && !unblock_all) {
        sz_router_iq_result(job->r, job->st, NULL, 0);
        return true;
    }
    if (job->aux && sz_blocklist_max_items() &&
        sz_blocklist_count(bl) + k > sz_blocklist_max_items()) {
        /* limits.max_blocklist_items: a policy of this server. */
        sz_router_bounce(job->r, job->st, SZ_STANZA_ERR_NOT_ALLOWED);
        return true;
    }
    c->bl = bl;
    c->job = job;
    sz_store_t *s = sz_blocklist_store();
    const sz_jid_t *owner = sz_blocklist_owner(bl);
    int ret = job->aux ? sz_store_blocklist_add(s, owner, c->v, k, sz_blocklist_max_items(),
                                                on_written, c)
                       : sz_store_blocklist_remove(s, owner, c->v, k, on_written, c);
    if (ret < 0) {
        sz_router_bounce(job->r, job->st, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return true;
    }
    return false;
}

static int on_iq(sz_hook_ctx_t *ctx, const sz_xml_node_t *payload, bool set)
{
    /* The blocklist is the account's own business (§3.2 - §3.5 send it
     * without 'to'); others are refused as for the roster. */
    sz_session_t *s = ctx->from;
    if (!s && ctx->user)
        s = sz_roster_session_of(ctx->user, ctx->st);
    if (!s || !s->user || !ctx->to || !sz_jid_bare_eq(s->jid, ctx->to))
        return -SZ_STANZA_ERR_FORBIDDEN;
    if (!sz_blocklist_store())
        return -SZ_STANZA_ERR_SERVICE_UNAVAILABLE;
    bool get = strcmp(payload->name, "blocklist") == 0;
    bool block = strcmp(payload->name, "block") == 0;
    if (get == set)
        return -SZ_STANZA_ERR_BAD_REQUEST; /* a get of block/unblock, a set of blocklist */
    sz_blocklist_job_t *job;
    if (get) {
        job = sz_blocklist_job_new(ctx->r, job_get, ctx->st);
    } else {
        struct change *c = NULL;
        /* A block may not name more JIDs than the list may hold; an
         * unblock may name any (those not in the list are ignored). */
        int ret = parse_items(payload, block ? sz_blocklist_max_items()
                                             : SZ_STORE_BLOCKLIST_BATCH_MAX, &c);
        if (ret == 0 && block && c->n == 0)
            ret = -SZ_STANZA_ERR_BAD_REQUEST; /* §3.3: at least one <item/> */
        if (ret < 0) {
            sz_free(c);
            return ret;
        }
        job = sz_blocklist_job_new(ctx->r, job_write, ctx->st);
        job->data = c;
        job->aux = block;
    }
    sz_blocklist_submit(sz_blocklist_of(s->user, s->user->bare), job);
    return SZ_HANDLED;
}

/* ---- the user's stanzas to a blocked entity (the outbound rule) ------------------------------------ */

/* Answers <st> with <not-acceptable/> and the <blocked/> condition of
 * the outbound rule, unless it is an error or an iq result (RFC 6120 §8.3.1). */
static void refuse_out(sz_session_t *s, const sz_stanza_t *st)
{
    static const char *const kinds[] = {"message", "presence", "iq"};
    enum sz_stanza_kind k = sz_stanza_kind(st);
    char type[16], from[SZ_JID_INPUT_MAX_BYTES + 1], to[SZ_JID_INPUT_MAX_BYTES + 1];
    ssize_t tl = sz_stanza_attr(st, SZ_XML_A_TYPE, type, sizeof(type) - 1);
    if (tl >= 0)
        type[tl] = '\0';
    if (k > SZ_STANZA_IQ || (tl >= 0 && (strcmp(type, "error") == 0 ||
                                         (k == SZ_STANZA_IQ && strcmp(type, "result") == 0))))
        return;
    ssize_t fl = sz_stanza_attr(st, SZ_XML_A_FROM, from, sizeof(from));
    ssize_t ol = sz_stanza_attr(st, SZ_XML_A_TO, to, sizeof(to));
    if (fl < 0)
        return;
    /* RFC 6120 §8.3.1: the error carries the stanza's id, however long. */
    size_t raw_il = 0;
    char *id = NULL;
    ssize_t il = -1;
    if (sz_stanza_attr_raw(st, SZ_XML_A_ID, &raw_il, NULL)) {
        id = sz_malloc(raw_il + 1);
        il = sz_stanza_attr(st, SZ_XML_A_ID, id, raw_il + 1);
    }
    sz_xb_t xb;
    sz_xb_init(&xb, 512);
    sz_xb_start(&xb, kinds[k], NULL);
    sz_xb_attr(&xb, "type", "error");
    if (il >= 0)
        sz_xb_attr_n(&xb, "id", id, (size_t)il);
    if (ol >= 0)
        sz_xb_attr_n(&xb, "from", to, (size_t)ol);
    sz_xb_attr_n(&xb, "to", from, (size_t)fl);
    sz_xb_start(&xb, "error", NULL);
    sz_xb_attr(&xb, "type", "cancel");
    sz_xb_empty(&xb, "not-acceptable", "urn:ietf:params:xml:ns:xmpp-stanzas");
    sz_xb_empty(&xb, "blocked", NS_BLOCKING_ERRORS);
    sz_xb_end(&xb);
    sz_xb_end(&xb);
    sz_free(id);
    /* Straight to the session: routed, it would come from the blocked
     * entity and fall under the inbound rule itself. */
    sz_stanza_t *out = sz_stanza_from_xb(&xb);
    if (out) {
        sz_router_deliver(s, out);
        sz_stanza_unref(out);
    }
}

/* Whether the user's stanza <st> to <to> (NULL: none) goes on. */
static bool check_out(sz_session_t *s, sz_blocklist_t *bl, const sz_stanza_t *st,
                      const sz_jid_t *to)
{
    if (!to || sz_jid_bare_eq(to, sz_blocklist_owner(bl)) || !sz_blocklist_match(bl, to))
        return true;
    refuse_out(s, st);
    return false;
}

/* The parsed 'to' of <st> into <jb>, or NULL. */
static sz_jid_t *to_of(const sz_stanza_t *st, sz_jid_buf_t *jb)
{
    char dec[SZ_JID_INPUT_MAX_BYTES + 1];
    sz_jid_t *j = NULL;
    ssize_t n = sz_stanza_attr(st, SZ_XML_A_TO, dec, sizeof(dec));
    if (n < 0 || sz_jid_parse_into(dec, (size_t)n, jb, sizeof(*jb), &j, NULL) < 0)
        return NULL;
    return j;
}

/* A client's stanza held until the list was loaded or changed. */
static bool job_out(sz_blocklist_t *bl, sz_blocklist_job_t *job, int res)
{
    sz_session_t *s = sz_roster_session_of(sz_blocklist_user(bl), job->st);
    if (!s)
        return true; /* the session is gone: as if it never sent it */
    if (res < 0) {
        /* Unknown list: nothing leaves rather than something blocked. */
        sz_router_bounce(job->r, job->st, SZ_STANZA_ERR_INTERNAL_SERVER_ERROR);
        return true;
    }
    sz_jid_buf_t jb;
    sz_jid_t *to = to_of(job->st, &jb);
    if (!check_out(s, bl, job->st, to))
        return true;
    const sz_stanza_t *prev = resume_out;
    resume_out = job->st;
    sz_router_from_client(job->r, s, sz_stanza_ref(job->st), to);
    resume_out = prev;
    return true;
}

/* FROM_CLIENT. */
static int on_out(sz_hook_ctx_t *ctx)
{
    if (ctx->st == resume_out)
        return SZ_PASS;
    sz_session_t *s = ctx->from;
    if (!s || !s->user || !sz_blocklist_store())
        return SZ_PASS;
    sz_blocklist_t *bl = sz_blocklist_of(s->user, s->user->bare);
    if (!sz_blocklist_ready(bl)) {
        sz_blocklist_submit(bl, sz_blocklist_job_new(ctx->r, job_out, ctx->st));
        return SZ_HANDLED;
    }
    if (sz_blocklist_count(bl) == 0)
        return SZ_PASS; /* the common case: nothing to compare */
    return check_out(s, bl, ctx->st, ctx->to) ? SZ_PASS : SZ_HANDLED;
}

/* ---- stanzas from a blocked entity (the inbound rule) ------------------------------------------- */

/* What the inbound rule does with <st> of kind <k>, type <t>, from a blocked entity:
 * presence (notifications, subscriptions, probes) is dropped without an
 * answer; a message gets service-unavailable (an error message is
 * dropped); an iq get/set gets service-unavailable, other iqs are
 * dropped. The user then looks offline to the entity. */
static int refuse_in(enum sz_stanza_kind k, const char *t)
{
    if (k == SZ_STANZA_MESSAGE && !(t && strcmp(t, "error") == 0))
        return -SZ_STANZA_ERR_SERVICE_UNAVAILABLE;
    if (k == SZ_STANZA_IQ && t && (strcmp(t, "get") == 0 || strcmp(t, "set") == 0))
        return -SZ_STANZA_ERR_SERVICE_UNAVAILABLE;
    return SZ_HANDLED;
}

/* The sender of <st> into <jb>, or NULL. */
static sz_jid_t *from_of(const sz_stanza_t *st, sz_jid_buf_t *jb)
{
    char dec[SZ_JID_INPUT_MAX_BYTES + 1];
    sz_jid_t *j = NULL;
    ssize_t n = sz_stanza_attr(st, SZ_XML_A_FROM, dec, sizeof(dec));
    if (n < 0 || sz_jid_parse_into(dec, (size_t)n, jb, sizeof(*jb), &j, NULL) < 0)
        return NULL;
    return j;
}

static const char *type_of(const sz_stanza_t *st, char *buf, size_t cap)
{
    ssize_t n = sz_stanza_attr(st, SZ_XML_A_TYPE, buf, cap - 1);
    if (n < 0)
        return NULL;
    buf[n] = '\0';
    return buf;
}

/* A stanza to the user held until the list was loaded or changed. */
static bool job_in(sz_blocklist_t *bl, sz_blocklist_job_t *job, int res)
{
    sz_jid_buf_t jb;
    sz_jid_t *from = from_of(job->st, &jb);
    char tb[16];
    const char *t = type_of(job->st, tb, sizeof(tb));
    if (res < 0) {
        /* Unknown list: refused as if blocked, the safe side. */
        int ret = refuse_in(sz_stanza_kind(job->st), t);
        if (ret < 0)
            sz_router_bounce(job->r, job->st, (enum sz_stanza_err)-ret);
        return true;
    }
    if (from && sz_blocklist_match(bl, from)) {
        int ret = refuse_in(sz_stanza_kind(job->st), t);
        if (ret < 0)
            sz_router_bounce(job->r, job->st, (enum sz_stanza_err)-ret);
        return true;
    }
    const sz_stanza_t *prev = resume_in;
    resume_in = job->st;
    sz_router_route(job->r, sz_stanza_ref(job->st));
    resume_in = prev;
    return true;
}

/* TO_BARE, TO_FULL, NO_RESOURCE: a stanza to a local user. The common
 * case, an online user whose list is loaded and empty, costs no parse. */
static int on_in(sz_hook_ctx_t *ctx)
{
    if (ctx->st == resume_in)
        return SZ_PASS; /* at every point it reaches (NO_RESOURCE, then TO_BARE) */
    if (!ctx->to || !sz_blocklist_store())
        return SZ_PASS;
    sz_blocklist_t *bl = ctx->user ? sz_blocklist_find(ctx->user, ctx->to) : NULL;
    if (bl && sz_blocklist_ready(bl) && sz_blocklist_count(bl) == 0)
        return SZ_PASS;
    sz_jid_buf_t fb;
    sz_jid_t *from = from_of(ctx->st, &fb);
    if (!from || sz_jid_bare_eq(from, ctx->to))
        return SZ_PASS; /* the server's own, or the user's own resources */
    if (!bl) {
        const char *t = ctx->type;
        bool quiet = false;
        if (ctx->kind == SZ_STANZA_PRESENCE)
            quiet = !t || strcmp(t, "unavailable") == 0 || strcmp(t, "error") == 0;
        else if (ctx->kind == SZ_STANZA_MESSAGE)
            quiet = t && strcmp(t, "error") == 0;
        else if (ctx->kind == SZ_STANZA_IQ)
            quiet = t && (strcmp(t, "result") == 0 || strcmp(t, "error") == 0);
        sz_jid_buf_t ob;
        size_t ol;
        const char *o = sz_jid_bare(ctx->to, &ol);
        sz_jid_t *owner = sz_roster_jid(o, ol, &ob);
        if (!owner)
            return SZ_PASS;
        bl = sz_blocklist_find(ctx->user, owner);
        if (!bl && !ctx->user && quiet)
            /* To a user who is offline, presence broadcasts and errors are
             * dropped by the router anyway: no storage read for them. */
            return SZ_PASS;
        if (!bl)
            bl = sz_blocklist_of(ctx->user, owner);
    }
    if (!sz_blocklist_ready(bl)) {
        sz_blocklist_submit(bl, sz_blocklist_job_new(ctx->r, job_in, ctx->st));
        return SZ_HANDLED;
    }
    return sz_blocklist_match(bl, from) ? refuse_in(ctx->kind, ctx->type) : SZ_PASS;
}

void sz_mod_blocking_register(const sz_mod_env_t *env)
{
    sz_blocklist_setup(env);
    sz_hooks_iq("blocklist", NS_BLOCKING, SZ_IQ_ACCOUNT, on_iq);
    sz_hooks_iq("block", NS_BLOCKING, SZ_IQ_ACCOUNT, on_iq);
    sz_hooks_iq("unblock", NS_BLOCKING, SZ_IQ_ACCOUNT, on_iq);
    sz_hooks_add(SZ_HOOK_FROM_CLIENT, on_out);
    sz_hooks_add(SZ_HOOK_TO_BARE, on_in);
    sz_hooks_add(SZ_HOOK_TO_FULL, on_in);
    sz_hooks_add(SZ_HOOK_NO_RESOURCE, on_in);
    /* §3.1: support is discovered from the server (XEP-0030 to the
     * domain); the commands themselves go to the account. */
    sz_hooks_disco_feature(NS_BLOCKING, SZ_IQ_SERVER, NULL);
}
