/*
 * The hook table: fixed arrays filled on the main thread at start and read
 * by every reactor afterwards without a lock (sz_hooks_freeze() marks the
 * end of writing; registering later is a bug and aborts). The sizes are
 * budgets for the module list in core/mod/modules.c, not for traffic.
 */
#include "core/hooks.h"

#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "core/xml/builder.h"

#define MAX_HOOKS    16 /* per point */
#define MAX_EVENTS   16 /* per event */
#define MAX_IQ       48
#define MAX_FEATURES 48
#define MAX_STREAM   8  /* per stage */
#define MAX_NONZA    8

struct iq_entry {
    const char *name, *ns;
    unsigned scope;
    sz_iq_fn fn;
};

struct feature {
    const char *var;
    unsigned scope;
    sz_host_pred_fn when;
};

struct nonza {
    const char *ns;
    sz_nonza_fn fn;
};

struct stream_feature {
    const char *xml;
    sz_host_pred_fn when;
};

static struct {
    sz_hook_fn hooks[SZ_HOOK_POINT_COUNT][MAX_HOOKS];
    unsigned nhooks[SZ_HOOK_POINT_COUNT];
    sz_event_fn events[SZ_EV_COUNT][MAX_EVENTS];
    unsigned nevents[SZ_EV_COUNT];
    struct iq_entry iq[MAX_IQ];
    unsigned niq;
    struct feature features[MAX_FEATURES];
    unsigned nfeatures;
    struct stream_feature stream[2][MAX_STREAM];
    unsigned nstream[2];
    struct nonza nonza[MAX_NONZA];
    unsigned nnonza;
    unsigned user_slots, sess_slots;
    bool frozen;
} T;

static __thread unsigned held;

static void writable(void)
{
    SZ_ASSERT(!T.frozen);
}

void sz_hooks_add(enum sz_hook_point point, sz_hook_fn fn)
{
    writable();
    SZ_ASSERT(point < SZ_HOOK_POINT_COUNT && T.nhooks[point] < MAX_HOOKS);
    T.hooks[point][T.nhooks[point]++] = fn;
}

void sz_hooks_on(enum sz_hook_event ev, sz_event_fn fn)
{
    writable();
    SZ_ASSERT(ev < SZ_EV_COUNT && T.nevents[ev] < MAX_EVENTS);
    T.events[ev][T.nevents[ev]++] = fn;
}

void sz_hooks_iq(const char *name, const char *ns, unsigned scope, sz_iq_fn fn)
{
    writable();
    SZ_ASSERT(T.niq < MAX_IQ);
    for (unsigned i = 0; i < T.niq; i++)
        SZ_ASSERT(!(strcmp(T.iq[i].name, name) == 0 && strcmp(T.iq[i].ns, ns) == 0 &&
                    (T.iq[i].scope & scope)));
    T.iq[T.niq++] = (struct iq_entry){name, ns, scope, fn};
}

void sz_hooks_disco_feature(const char *var, unsigned scope, sz_host_pred_fn when)
{
    writable();
    SZ_ASSERT(T.nfeatures < MAX_FEATURES);
    T.features[T.nfeatures++] = (struct feature){var, scope, when};
}

void sz_hooks_stream_feature(const char *xml, bool authed, sz_host_pred_fn when)
{
    writable();
    SZ_ASSERT(T.nstream[authed] < MAX_STREAM);
    T.stream[authed][T.nstream[authed]++] = (struct stream_feature){xml, when};
}

void sz_hooks_nonza(const char *ns, sz_nonza_fn fn)
{
    writable();
    SZ_ASSERT(T.nnonza < MAX_NONZA);
    for (unsigned i = 0; i < T.nnonza; i++)
        SZ_ASSERT(strcmp(T.nonza[i].ns, ns) != 0);
    T.nonza[T.nnonza++] = (struct nonza){ns, fn};
}

unsigned sz_hooks_user_slot(void)
{
    writable();
    SZ_ASSERT(T.user_slots < SZ_USER_SLOTS);
    return T.user_slots++;
}

unsigned sz_hooks_sess_slot(void)
{
    writable();
    SZ_ASSERT(T.sess_slots < SZ_SESS_SLOTS);
    return T.sess_slots++;
}

void sz_hooks_freeze(void)
{
    __atomic_store_n(&T.frozen, true, __ATOMIC_RELEASE);
}

void sz_hooks_reset(void)
{
    memset(&T, 0, sizeof(T));
}

int sz_hooks_run(enum sz_hook_point point, sz_hook_ctx_t *ctx)
{
    for (unsigned i = 0; i < T.nhooks[point]; i++) {
        int ret = T.hooks[point][i](ctx);
        if (ret != SZ_PASS)
            return ret;
    }
    return SZ_PASS;
}

void sz_hooks_event(enum sz_hook_event ev, sz_hook_ctx_t *ctx)
{
    for (unsigned i = 0; i < T.nevents[ev]; i++)
        T.events[ev][i](ctx);
}

static bool span_is(const char *p, size_t len, const char *s)
{
    return p && strlen(s) == len && memcmp(p, s, len) == 0;
}

sz_nonza_fn sz_hooks_nonza_find(const char *ns, size_t len)
{
    for (unsigned i = 0; i < T.nnonza; i++)
        if (span_is(ns, len, T.nonza[i].ns))
            return T.nonza[i].fn;
    return NULL;
}

sz_iq_fn sz_hooks_iq_find(const sz_xml_node_t *payload, unsigned scope)
{
    if (!payload || payload->kind != SZ_XML_ELEM)
        return NULL;
    for (unsigned i = 0; i < T.niq; i++) {
        const struct iq_entry *e = &T.iq[i];
        if ((e->scope & scope) && span_is(payload->name, payload->name_len, e->name) &&
            span_is(payload->ns, payload->ns_len, e->ns))
            return e->fn;
    }
    return NULL;
}

void sz_hooks_disco_features(struct sz_xb *xb, unsigned scope, int host)
{
    for (unsigned i = 0; i < T.nfeatures; i++) {
        if (!(T.features[i].scope & scope) || (T.features[i].when && !T.features[i].when(host)))
            continue;
        sz_xb_start(xb, "feature", NULL);
        sz_xb_attr(xb, "var", T.features[i].var);
        sz_xb_end(xb);
    }
}

size_t sz_hooks_stream_features(bool authed, int host, char *buf, size_t cap)
{
    size_t n = 0;
    for (unsigned i = 0; i < T.nstream[authed]; i++) {
        const struct stream_feature *f = &T.stream[authed][i];
        if (f->when && !f->when(host))
            continue;
        size_t l = strlen(f->xml);
        if (n + l < cap)
            memcpy(buf + n, f->xml, l);
        n += l;
    }
    if (cap)
        buf[n < cap ? n : cap - 1] = '\0';
    return n;
}

void sz_hooks_hold(void)
{
    held++;
}

void sz_hooks_release(void)
{
    SZ_ASSERT(held > 0);
    held--;
}

unsigned sz_hooks_pending(void)
{
    return held;
}
