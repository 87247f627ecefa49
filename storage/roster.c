/*
 * Roster storage front end (storage/roster.h). Not implemented yet: every
 * submit refuses with -ENOSYS, so the roster module can build against the
 * header while the backend is written.
 */
#include "storage/roster.h"

#include <errno.h>

int sz_store_roster_get(sz_store_t *s, const sz_jid_t *owner, sz_store_roster_fn cb, void *arg)
{
    (void)s, (void)owner, (void)cb, (void)arg;
    return -ENOSYS;
}

int sz_store_roster_get_item(sz_store_t *s, const sz_jid_t *owner, const char *contact,
                             sz_store_roster_item_fn cb, void *arg)
{
    (void)s, (void)owner, (void)contact, (void)cb, (void)arg;
    return -ENOSYS;
}

int sz_store_roster_put(sz_store_t *s, const sz_jid_t *owner, const sz_store_roster_item_t *item,
                        unsigned max_items, sz_store_roster_ver_fn cb, void *arg)
{
    (void)s, (void)owner, (void)item, (void)max_items, (void)cb, (void)arg;
    return -ENOSYS;
}

int sz_store_roster_remove(sz_store_t *s, const sz_jid_t *owner, const char *contact,
                           sz_store_roster_ver_fn cb, void *arg)
{
    (void)s, (void)owner, (void)contact, (void)cb, (void)arg;
    return -ENOSYS;
}

int sz_store_pending_add(sz_store_t *s, const sz_jid_t *owner, const char *from,
                         const char *stanza, size_t stanza_len, sz_store_done_fn cb, void *arg)
{
    (void)s, (void)owner, (void)from, (void)stanza, (void)stanza_len, (void)cb, (void)arg;
    return -ENOSYS;
}

int sz_store_pending_remove(sz_store_t *s, const sz_jid_t *owner, const char *from,
                            sz_store_done_fn cb, void *arg)
{
    (void)s, (void)owner, (void)from, (void)cb, (void)arg;
    return -ENOSYS;
}

int sz_store_pending_list(sz_store_t *s, const sz_jid_t *owner, sz_store_pending_fn cb, void *arg)
{
    (void)s, (void)owner, (void)cb, (void)arg;
    return -ENOSYS;
}

int sz_store_roster_login(sz_store_t *s, const sz_jid_t *owner, sz_store_roster_login_fn cb,
                          void *arg)
{
    (void)s, (void)owner, (void)cb, (void)arg;
    return -ENOSYS;
}
