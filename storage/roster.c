/*
 * Roster storage front end (storage/roster.h): checks and copies the
 * arguments into one request on the submitting thread, and turns the
 * backend's results into the typed callbacks there. Results are built on
 * the worker by sz_store_roster_add_item / _add_pending (the same for
 * every backend) and freed by release() on the submitting thread.
 *
 * A result item is one allocation: its strings (jid, name, the packed
 * groups) and then, aligned, the array of group pointers into them; the
 * item's jid is the start of the allocation, which is what release()
 * frees. A pending request is one allocation starting at its from.
 *
 * Every request carries the owner as the account key (store.h ordering
 * rule), so one user's roster requests run in order on one worker.
 */
#include "storage/roster.h"

#include <errno.h>
#include <stdalign.h>
#include <string.h>

#include "core/mem.h"
#include "storage/backend.h"

/* ---- results (worker thread) ------------------------------------------------ */

int sz_store_roster_add_item(sz_store_req_t *q, const char *jid, size_t jlen, const char *name,
                             size_t nlen, unsigned sub, bool ask, bool approved,
                             const char *groups, size_t glen, uint64_t ver)
{
    /* Packed groups end with their last NUL; the NULs count the groups. */
    if (sub > SZ_STORE_SUB_BOTH || (glen > 0 && groups[glen - 1] != '\0') || jlen == 0)
        return -EIO;
    size_t ng = 0;
    for (size_t i = 0; i < glen; i++)
        ng += groups[i] == '\0';
    size_t strs = jlen + 1 + (name ? nlen + 1 : 0) + glen;
    size_t off = (strs + alignof(const char *) - 1) & ~(alignof(const char *) - 1);
    char *mem = sz_malloc(off + ng * sizeof(const char *));
    char *at = mem;
    sz_store_roster_item_t it = {.sub = (enum sz_store_sub)sub, .ask = ask, .approved = approved,
                                 .ngroups = ng, .ver = ver};
    it.jid = sz_store_put_str(&at, jid, jlen).p;
    if (name)
        it.name = sz_store_put_str(&at, name, nlen).p;
    if (ng) {
        const char **gp = (const char **)(void *)(mem + off);
        memcpy(at, groups, glen);
        for (size_t i = 0; i < ng; i++) {
            gp[i] = at;
            at += strlen(at) + 1;
        }
        it.groups = gp;
    }
    if (q->u.roster.n == q->u.roster.cap) {
        q->u.roster.cap = q->u.roster.cap ? 2 * q->u.roster.cap : 16;
        q->u.roster.items =
            sz_realloc(q->u.roster.items, q->u.roster.cap * sizeof(*q->u.roster.items));
    }
    q->u.roster.items[q->u.roster.n++] = it;
    return 0;
}

void sz_store_roster_add_pending(sz_store_req_t *q, const char *from, size_t flen,
                                 const char *stanza, size_t slen)
{
    char *mem = sz_malloc(flen + slen + 2);
    char *at = mem;
    sz_store_pending_t p;
    p.from = sz_store_put_str(&at, from, flen).p;
    p.stanza = sz_store_put_str(&at, stanza, slen).p;
    p.stanza_len = slen;
    if (q->u.roster.npend == q->u.roster.pcap) {
        q->u.roster.pcap = q->u.roster.pcap ? 2 * q->u.roster.pcap : 8;
        q->u.roster.pend =
            sz_realloc(q->u.roster.pend, q->u.roster.pcap * sizeof(*q->u.roster.pend));
    }
    q->u.roster.pend[q->u.roster.npend++] = p;
}

/* ---- completion (submitting thread) ----------------------------------------- */

static void release(sz_store_req_t *q)
{
    for (size_t i = 0; i < q->u.roster.n; i++)
        sz_free((void *)q->u.roster.items[i].jid);
    sz_free(q->u.roster.items);
    for (size_t i = 0; i < q->u.roster.npend; i++)
        sz_free((void *)q->u.roster.pend[i].from);
    sz_free(q->u.roster.pend);
}

static sz_store_roster_t roster_of(const sz_store_req_t *q)
{
    return (sz_store_roster_t){.ver = q->u.roster.ver, .n = q->u.roster.n,
                               .items = q->u.roster.n ? q->u.roster.items : NULL};
}

static sz_store_pendings_t pendings_of(const sz_store_req_t *q)
{
    return (sz_store_pendings_t){.n = q->u.roster.npend,
                                 .items = q->u.roster.npend ? q->u.roster.pend : NULL};
}

static void complete_done(sz_store_req_t *q)
{
    q->_cb.done(q->_arg, q->res);
}

static void complete_roster(sz_store_req_t *q)
{
    sz_store_roster_t r = roster_of(q);
    q->_cb.roster(q->_arg, q->res, q->res == 0 ? &r : NULL);
}

static void complete_item(sz_store_req_t *q)
{
    /* A backend that found the item gives exactly one. */
    bool found = q->res == 0 && q->u.roster.n == 1;
    int res = q->res == 0 && !found ? -EIO : q->res;
    uint64_t ver = res == 0 || res == -ENOENT ? q->u.roster.ver : 0;
    q->_cb.item(q->_arg, res, ver, found ? &q->u.roster.items[0] : NULL);
}

static void complete_ver(sz_store_req_t *q)
{
    uint64_t ver = q->res == 0 || q->res == -ENOENT ? q->u.roster.ver : 0;
    q->_cb.ver(q->_arg, q->res, ver);
}

static void complete_pending(sz_store_req_t *q)
{
    sz_store_pendings_t p = pendings_of(q);
    q->_cb.pending(q->_arg, q->res, q->res == 0 ? &p : NULL);
}

static void complete_login(sz_store_req_t *q)
{
    sz_store_roster_t r = roster_of(q);
    sz_store_pendings_t p = pendings_of(q);
    q->_cb.login(q->_arg, q->res, q->res == 0 ? &r : NULL, q->res == 0 ? &p : NULL);
}

/* ---- submit ----------------------------------------------------------------- */

/* A non-empty NUL-terminated contact JID no longer than a JID can be. */
static bool contact_ok(const char *c, size_t *len)
{
    if (!c)
        return false;
    *len = strnlen(c, SZ_JID_MAX_BYTES + 1);
    return *len > 0 && *len <= SZ_JID_MAX_BYTES;
}

/* An owner-keyed request with room for <extra> more bytes; NULL when
 * <owner> is not an account JID. */
static sz_store_req_t *owner_req(enum sz_store_op op, const sz_jid_t *owner, size_t extra,
                                 char **at)
{
    sz_store_req_t *q = sz_store_req_acct(op, owner, extra, at);
    if (q)
        q->_release = release;
    return q;
}

static int submit(sz_store_t *s, sz_store_req_t *q, const sz_jid_t *owner, void *arg)
{
    q->_arg = arg;
    return sz_store_submit(s, q, sz_jid_hash_bare(owner) | 1);
}

/* A request about one contact of <owner>: the owner key and the contact. */
static sz_store_req_t *contact_req(enum sz_store_op op, const sz_jid_t *owner,
                                   const char *contact, size_t extra, char **at)
{
    size_t cl;
    if (!contact_ok(contact, &cl))
        return NULL;
    char *p;
    sz_store_req_t *q = owner_req(op, owner, cl + 1 + extra, &p);
    if (!q)
        return NULL;
    q->u.roster.contact = sz_store_put_str(&p, contact, cl);
    if (at)
        *at = p;
    return q;
}

int sz_store_roster_get(sz_store_t *s, const sz_jid_t *owner, sz_store_roster_fn cb, void *arg)
{
    if (!cb)
        return -EINVAL;
    sz_store_req_t *q = owner_req(SZ_STORE_ROSTER_GET, owner, 0, NULL);
    if (!q)
        return -EINVAL;
    q->_complete = complete_roster;
    q->_cb.roster = cb;
    return submit(s, q, owner, arg);
}

int sz_store_roster_get_item(sz_store_t *s, const sz_jid_t *owner, const char *contact,
                             sz_store_roster_item_fn cb, void *arg)
{
    if (!cb)
        return -EINVAL;
    sz_store_req_t *q = contact_req(SZ_STORE_ROSTER_GET_ITEM, owner, contact, 0, NULL);
    if (!q)
        return -EINVAL;
    q->_complete = complete_item;
    q->_cb.item = cb;
    return submit(s, q, owner, arg);
}

int sz_store_roster_put(sz_store_t *s, const sz_jid_t *owner, const sz_store_roster_item_t *item,
                        unsigned max_items, sz_store_roster_ver_fn cb, void *arg)
{
    if (!cb || !item || (unsigned)item->sub > SZ_STORE_SUB_BOTH ||
        item->ngroups > SZ_STORE_ROSTER_GROUPS_MAX || (item->ngroups && !item->groups))
        return -EINVAL;
    size_t nl = item->name ? strlen(item->name) : 0;
    size_t gl = 0;
    for (size_t i = 0; i < item->ngroups; i++) {
        if (!item->groups[i])
            return -EINVAL;
        gl += strlen(item->groups[i]) + 1;
    }
    char *at;
    sz_store_req_t *q =
        contact_req(SZ_STORE_ROSTER_PUT, owner, item->jid, (item->name ? nl + 1 : 0) + gl + 1, &at);
    if (!q)
        return -EINVAL;
    if (item->name)
        q->u.roster.name = sz_store_put_str(&at, item->name, nl);
    /* The groups, packed: each name and its NUL, back to back. */
    q->u.roster.groups.p = at;
    q->u.roster.groups.len = gl;
    for (size_t i = 0; i < item->ngroups; i++)
        (void)sz_store_put_str(&at, item->groups[i], strlen(item->groups[i]));
    *at = '\0'; /* tail of an empty list: p stays a valid string */
    q->u.roster.ngroups = item->ngroups;
    q->u.roster.sub = item->sub;
    q->u.roster.ask = item->ask;
    q->u.roster.approved = item->approved;
    q->u.roster.max_items = max_items;
    q->_complete = complete_ver;
    q->_cb.ver = cb;
    return submit(s, q, owner, arg);
}

int sz_store_roster_remove(sz_store_t *s, const sz_jid_t *owner, const char *contact,
                           sz_store_roster_ver_fn cb, void *arg)
{
    if (!cb)
        return -EINVAL;
    sz_store_req_t *q = contact_req(SZ_STORE_ROSTER_REMOVE, owner, contact, 0, NULL);
    if (!q)
        return -EINVAL;
    q->_complete = complete_ver;
    q->_cb.ver = cb;
    return submit(s, q, owner, arg);
}

int sz_store_pending_add(sz_store_t *s, const sz_jid_t *owner, const char *from,
                         const char *stanza, size_t stanza_len, sz_store_done_fn cb, void *arg)
{
    if (!cb || (!stanza && stanza_len) || (stanza_len && memchr(stanza, '\0', stanza_len)))
        return -EINVAL;
    char *at;
    sz_store_req_t *q = contact_req(SZ_STORE_PENDING_ADD, owner, from, stanza_len + 1, &at);
    if (!q)
        return -EINVAL;
    q->u.roster.stanza = sz_store_put_str(&at, stanza, stanza_len);
    q->_complete = complete_done;
    q->_cb.done = cb;
    return submit(s, q, owner, arg);
}

int sz_store_pending_remove(sz_store_t *s, const sz_jid_t *owner, const char *from,
                            sz_store_done_fn cb, void *arg)
{
    if (!cb)
        return -EINVAL;
    sz_store_req_t *q = contact_req(SZ_STORE_PENDING_REMOVE, owner, from, 0, NULL);
    if (!q)
        return -EINVAL;
    q->_complete = complete_done;
    q->_cb.done = cb;
    return submit(s, q, owner, arg);
}

int sz_store_pending_list(sz_store_t *s, const sz_jid_t *owner, sz_store_pending_fn cb, void *arg)
{
    if (!cb)
        return -EINVAL;
    sz_store_req_t *q = owner_req(SZ_STORE_PENDING_LIST, owner, 0, NULL);
    if (!q)
        return -EINVAL;
    q->_complete = complete_pending;
    q->_cb.pending = cb;
    return submit(s, q, owner, arg);
}

int sz_store_roster_login(sz_store_t *s, const sz_jid_t *owner, sz_store_roster_login_fn cb,
                          void *arg)
{
    if (!cb)
        return -EINVAL;
    sz_store_req_t *q = owner_req(SZ_STORE_ROSTER_LOGIN, owner, 0, NULL);
    if (!q)
        return -EINVAL;
    q->_complete = complete_login;
    q->_cb.login = cb;
    return submit(s, q, owner, arg);
}
