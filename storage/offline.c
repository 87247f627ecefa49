/*
 * Front end of the offline message queue (storage/offline.h): copies the
 * arguments into one request on the submitting thread and runs the typed
 * callback there; the messages a take read are allocated on the worker
 * and freed by release() on the submitting thread.
 */
#include "storage/offline.h"

#include <errno.h>
#include <string.h>

#include "core/mem.h"
#include "storage/backend.h"

static void release(sz_store_req_t *q)
{
    for (size_t i = 0; i < q->u.offline.n; i++)
        sz_free((void *)q->u.offline.msgs[i].xml);
    sz_free(q->u.offline.msgs);
}

static void complete_take(sz_store_req_t *q)
{
    q->_cb.offline(q->_arg, q->res, q->res == 0 ? q->u.offline.msgs : NULL,
                   q->res == 0 ? q->u.offline.n : 0);
}

static void complete_done(sz_store_req_t *q)
{
    q->_cb.done(q->_arg, q->res);
}

static void complete_count(sz_store_req_t *q)
{
    q->_cb.count(q->_arg, q->res, q->res == 0 ? q->u.offline.upto : 0);
}

int sz_store_offline_put(sz_store_t *s, const sz_jid_t *owner, const char *xml, size_t len,
                         uint32_t max, sz_store_done_fn cb, void *arg)
{
    if (!cb || !xml || len == 0 || len > SZ_STORE_OFFLINE_MSG_MAX)
        return -EINVAL;
    char *at;
    sz_store_req_t *q = sz_store_req_acct(SZ_STORE_OFFLINE_PUT, owner, len + 1, &at);
    if (!q)
        return -EINVAL;
    q->u.offline.xml = sz_store_put_str(&at, xml, len);
    q->u.offline.max = max;
    q->_complete = complete_done;
    q->_cb.done = cb;
    q->_arg = arg;
    return sz_store_submit(s, q, sz_jid_hash_bare(owner) | 1);
}

int sz_store_offline_take(sz_store_t *s, const sz_jid_t *owner, uint64_t upto, unsigned limit,
                          sz_store_offline_fn cb, void *arg)
{
    if (!cb || limit > SZ_STORE_OFFLINE_TAKE_MAX || upto > INT64_MAX)
        return -EINVAL;
    sz_store_req_t *q = sz_store_req_acct(SZ_STORE_OFFLINE_TAKE, owner, 0, NULL);
    if (!q)
        return -EINVAL;
    q->u.offline.upto = upto;
    q->u.offline.max = limit;
    q->_release = release;
    q->_complete = complete_take;
    q->_cb.offline = cb;
    q->_arg = arg;
    return sz_store_submit(s, q, sz_jid_hash_bare(owner) | 1);
}

int sz_store_offline_count(sz_store_t *s, const sz_jid_t *owner, sz_store_count_fn cb,
                           void *arg)
{
    if (!cb)
        return -EINVAL;
    sz_store_req_t *q = sz_store_req_acct(SZ_STORE_OFFLINE_COUNT, owner, 0, NULL);
    if (!q)
        return -EINVAL;
    q->_complete = complete_count;
    q->_cb.count = cb;
    q->_arg = arg;
    return sz_store_submit(s, q, sz_jid_hash_bare(owner) | 1);
}
