/*
 * Front end of the last-activity records (storage/last.h): copies the
 * arguments into one request on the submitting thread and runs the typed
 * callback there; the status a get read is allocated on the worker and
 * freed by release() on the submitting thread.
 */
#include "storage/last.h"

#include <errno.h>
#include <string.h>

#include "core/mem.h"
#include "storage/backend.h"

static void release(sz_store_req_t *q)
{
    sz_free(q->u.last.out_status);
}

static void complete_get(sz_store_req_t *q)
{
    q->_cb.last(q->_arg, q->res, q->res == 0 ? q->u.last.when : 0,
                q->res == 0 ? q->u.last.out_status : NULL);
}

static void complete_done(sz_store_req_t *q)
{
    q->_cb.done(q->_arg, q->res);
}

int sz_store_last_set(sz_store_t *s, const sz_jid_t *owner, int64_t when, const char *status,
                      sz_store_done_fn cb, void *arg)
{
    if (!cb)
        return -EINVAL;
    size_t sl = status ? strnlen(status, SZ_STORE_LAST_STATUS_MAX + 1) : 0;
    if (sl > SZ_STORE_LAST_STATUS_MAX)
        return -EINVAL;
    char *at;
    sz_store_req_t *q = sz_store_req_acct(SZ_STORE_LAST_SET, owner, sl + 1, &at);
    if (!q)
        return -EINVAL;
    q->_release = release;
    q->u.last.when = when;
    if (status)
        q->u.last.status = sz_store_put_str(&at, status, sl);
    q->_complete = complete_done;
    q->_cb.done = cb;
    q->_arg = arg;
    return sz_store_submit(s, q, sz_jid_hash_bare(owner) | 1);
}

int sz_store_last_get(sz_store_t *s, const sz_jid_t *owner, sz_store_last_fn cb, void *arg)
{
    if (!cb)
        return -EINVAL;
    sz_store_req_t *q = sz_store_req_acct(SZ_STORE_LAST_GET, owner, 0, NULL);
    if (!q)
        return -EINVAL;
    q->_release = release;
    q->_complete = complete_get;
    q->_cb.last = cb;
    q->_arg = arg;
    return sz_store_submit(s, q, sz_jid_hash_bare(owner) | 1);
}
