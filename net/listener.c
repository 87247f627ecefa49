/*
 * Listening sockets and multishot accept. Sockets are made on the main
 * thread (so bind errors stop the start-up with a clear message); each
 * reactor then owns fds[reactor]. Accept completions carry the listener
 * index in the slot field of user_data.
 */
#include "net/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"

#define LISTEN_BACKLOG 4096
#define BURST_FIRST    2  /* single accepts queued on readiness */
#define BURST_MAX      64 /* a burst that accepted every time doubles, up to this */
#ifndef IORING_ACCEPT_DONTWAIT
#define IORING_ACCEPT_DONTWAIT (1U << 1) /* Linux 6.10; newer than liburing 2.3's headers */
#endif

static int make_addr(const sz_conf_listen_t *cl, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, cl->address, &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(cl->port);
        *len = sizeof(*in4);
        return 0;
    }
    if (inet_pton(AF_INET6, cl->address, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(cl->port);
        *len = sizeof(*in6);
        return 0;
    }
    return -EINVAL;
}

static int bound_socket(const struct sockaddr_storage *ss, socklen_t len, int reuseport)
{
    int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0)
        goto fail;
    if (ss->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, (const struct sockaddr *)ss, len) < 0)
        goto fail;
    return fd;
fail:;
    int err = -errno;
    close(fd);
    return err;
}

int sz_listener_open(sz_listener_t *l, const sz_conf_listen_t *cl, unsigned n, char *err,
                     size_t errlen)
{
    memset(l, 0, sizeof(*l));
    l->conf = cl;
    l->n = n;
    struct sockaddr_storage ss;
    socklen_t len;
    if (make_addr(cl, &ss, &len) < 0) {
        snprintf(err, errlen, "listen %s:%u: not an IP address", cl->address, cl->port);
        return -EINVAL;
    }
    /* Probe without SO_REUSEPORT: fails if anybody holds the port. */
    int fd = bound_socket(&ss, len, 0);
    if (fd < 0) {
        snprintf(err, errlen, "listen %s %s:%u: %s", sz_conf_kind_name(cl->kind), cl->address,
                 cl->port, strerror(-fd));
        return fd;
    }
    close(fd);
    l->fds = sz_malloc(sizeof(int) * n);
    l->st = sz_calloc(n, sizeof(*l->st));
    for (unsigned i = 0; i < n; i++)
        l->fds[i] = -1;
    for (unsigned i = 0; i < n; i++) {
        fd = bound_socket(&ss, len, 1);
        if (fd >= 0 && listen(fd, LISTEN_BACKLOG) < 0) {
            int e = -errno;
            close(fd);
            fd = e;
        }
        if (fd < 0) {
            snprintf(err, errlen, "listen %s %s:%u: %s", sz_conf_kind_name(cl->kind),
                     cl->address, cl->port, strerror(-fd));
            sz_listener_close(l);
            return fd;
        }
        l->fds[i] = fd;
    }
    return 0;
}

void sz_listener_close(sz_listener_t *l)
{
    if (!l->fds)
        return;
    for (unsigned i = 0; i < l->n; i++)
        if (l->fds[i] >= 0)
            close(l->fds[i]);
    sz_free(l->fds);
    l->fds = NULL;
    sz_free(l->st);
    l->st = NULL;
}

void sz_listener_arm(sz_reactor_t *r, sz_listener_t *l, unsigned idx)
{
    sz_accept_state_t *st = &l->st[r->id];
    struct io_uring_sqe *sqe = sz_reactor_sqe(r);
    st->ended = false;
    /* batch_wait_us is non-zero only on kernels with the minimum-wait
     * feature (6.12), which also have IORING_ACCEPT_DONTWAIT (6.10). */
    if (r->batch_wait_us) {
        io_uring_prep_poll_multishot(sqe, l->fds[r->id], POLLIN);
        sqe->user_data = sz_ud(SZ_OP_ACCEPT, SZ_ACCEPT_READY, idx);
        return;
    }
    /* No SOCK_CLOEXEC: a direct descriptor has no fd to inherit, and the
     * kernel rejects the flag with a fixed-file target. */
    io_uring_prep_multishot_accept_direct(sqe, l->fds[r->id], NULL, NULL, 0);
    sqe->user_data = sz_ud(SZ_OP_ACCEPT, SZ_ACCEPT_MULTI, idx);
}

void sz_listener_burst(sz_reactor_t *r, sz_listener_t *l, unsigned idx)
{
    sz_accept_state_t *st = &l->st[r->id];
    /* One more than expected: the -EAGAIN that ends a burst is the proof
     * that the backlog is empty, and the only wasted accept. */
    unsigned n = st->empty || !st->burst ? BURST_FIRST : st->burst * 2u;
    if (n > BURST_MAX)
        n = BURST_MAX;
    st->burst = (uint16_t)n;
    st->empty = false;
    for (unsigned i = 0; i < n; i++) {
        struct io_uring_sqe *sqe = sz_reactor_sqe(r);
        /* liburing 2.3 adds one to the index without special-casing
         * "allocate", so pass the value that becomes IORING_FILE_INDEX_ALLOC. */
        io_uring_prep_accept_direct(sqe, l->fds[r->id], NULL, NULL, 0,
                                    IORING_FILE_INDEX_ALLOC - 1);
        sqe->ioprio |= IORING_ACCEPT_DONTWAIT;
        sqe->user_data = sz_ud(SZ_OP_ACCEPT, SZ_ACCEPT_ONE, idx);
        st->inflight++;
    }
}

void sz_listener_stop(sz_reactor_t *r, sz_listener_t *l, unsigned idx)
{
    if (l->fds[r->id] < 0)
        return;
    struct io_uring_sqe *sqe = sz_reactor_sqe(r);
    io_uring_prep_cancel_fd(sqe, l->fds[r->id], IORING_ASYNC_CANCEL_ALL);
    sqe->user_data = sz_ud(SZ_OP_CANCEL, 0, UINT32_MAX); /* names no connection */
}
