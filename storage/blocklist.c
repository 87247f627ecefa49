/*
 * Blocklist storage front end (storage/blocklist.h): checks and copies the
 * arguments into one request on the submitting thread (the JIDs packed
 * back to back in its tail), and turns the backend's results into the
 * typed callback there. Result strings are built on the worker by
 * sz_store_blocklist_add_result and freed by release() on the submitting
 * thread. Every request carries the owner as its account key, so one
 * user's blocklist requests run in order on one worker.
 */
#include "storage/blocklist.h"

#include <errno.h>
#include <string.h>

#include "core/mem.h"
#include "storage/backend.h"

void sz_store_blocklist_add_result(sz_store_req_t *q, const char *jid, size_t len)
{
    if (q->u.block.nout == q->u.block.cap) {
        q->u.block.cap = q->u.block.cap ? 2 * q->u.block.cap : 16;
        q->u.block.out = sz_realloc(q->u.block.out, q->u.block.cap * sizeof(*q->u.block.out));
    }
    q->u.block.out[q->u.block.nout++] = sz_strndup(jid, len);
}

static void release(sz_store_req_t *q)
{
    for (size_t i = 0; i < q->u.block.nout; i++)
        sz_free(q->u.block.out[i]);
    sz_free(q->u.block.out);
}

static void complete_get(sz_store_req_t *q)
{
    sz_store_blocklist_t bl = {.n = q->u.block.nout,
                               .items = q->u.block.nout ? (const char *const *)q->u.block.out
                                                        : NULL};
    q->_cb.blocklist(q->_arg, q->res, q->res == 0 ? &bl : NULL);
}

static void complete_done(sz_store_req_t *q)
{
    q->_cb.done(q->_arg, q->res);
}

static int submit(sz_store_t *s, sz_store_req_t *q, const sz_jid_t *owner, void *arg)
{
    q->_arg = arg;
    q->_release = release;
    return sz_store_submit(s, q, sz_jid_hash_bare(owner) | 1);
}

/* A request carrying the <n> JIDs of <items>, packed; NULL when one of
 * them is empty or too long, or <owner> is not an account JID. */
static sz_store_req_t *items_req(enum sz_store_op op, const sz_jid_t *owner,
                                 const char *const *items, size_t n)
{
    if (n > SZ_STORE_BLOCKLIST_BATCH_MAX || (n && !items))
        return NULL;
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t l = items[i] ? strnlen(items[i], SZ_JID_MAX_BYTES + 1) : 0;
        if (l == 0 || l > SZ_JID_MAX_BYTES)
            return NULL;
        total += l + 1;
    }
    char *at;
    sz_store_req_t *q = sz_store_req_acct(op, owner, total + 1, &at);
    if (!q)
        return NULL;
    q->u.block.items.p = at;
    q->u.block.items.len = total;
    for (size_t i = 0; i < n; i++)
        (void)sz_store_put_str(&at, items[i], strlen(items[i]));
    *at = '\0';
    q->u.block.n = n;
    return q;
}

int sz_store_blocklist_get(sz_store_t *s, const sz_jid_t *owner, sz_store_blocklist_fn cb,
                           void *arg)
{
    if (!cb)
        return -EINVAL;
    sz_store_req_t *q = items_req(SZ_STORE_BLOCKLIST_GET, owner, NULL, 0);
    if (!q)
        return -EINVAL;
    q->_complete = complete_get;
    q->_cb.blocklist = cb;
    return submit(s, q, owner, arg);
}

int sz_store_blocklist_add(sz_store_t *s, const sz_jid_t *owner, const char *const *items,
                           size_t n, unsigned max_items, sz_store_done_fn cb, void *arg)
{
    if (!cb || n == 0)
        return -EINVAL;
    sz_store_req_t *q = items_req(SZ_STORE_BLOCKLIST_ADD, owner, items, n);
    if (!q)
        return -EINVAL;
    q->u.block.max_items = max_items;
    q->_complete = complete_done;
    q->_cb.done = cb;
    return submit(s, q, owner, arg);
}

int sz_store_blocklist_remove(sz_store_t *s, const sz_jid_t *owner, const char *const *items,
                              size_t n, sz_store_done_fn cb, void *arg)
{
    if (!cb)
        return -EINVAL;
    sz_store_req_t *q = items_req(SZ_STORE_BLOCKLIST_REMOVE, owner, items, n);
    if (!q)
        return -EINVAL;
    q->_complete = complete_done;
    q->_cb.done = cb;
    return submit(s, q, owner, arg);
}
