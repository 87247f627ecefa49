/*
 * Provided-buffer ring: one per reactor, shared by every connection's
 * multishot recv, so no connection owns a receive buffer (DESIGN §1, §3).
 *
 * Accounting: a buffer is either in the ring (the kernel may fill it) or
 * out (a completion handed it to us). sz_bufring_take() marks it out and
 * sz_bufring_put() returns it; each id must go back exactly once, which is
 * checked (a double put or a take of a buffer that is not in the ring
 * aborts the process: it would mean memory corruption).
 *
 * Owner reactor only.
 */
#ifndef SZ_CORE_BUFRING_H
#define SZ_CORE_BUFRING_H

#include <stdint.h>

#include <liburing.h>

typedef struct sz_bufring {
    struct io_uring_buf_ring *br; /* shared with the kernel */
    char *base;                   /* nbufs * size bytes */
    uint8_t *out;                 /* one bit per buffer: 1 = out */
    uint32_t nbufs, size, mask;
    uint32_t nout; /* buffers out */
    uint16_t bgid;
} sz_bufring_t;

/**
 * Owner thread. Registers a ring of <nbufs> (power of two, <= 32768)
 * buffers of <size> bytes as group <bgid> on <ring>, all in the ring.
 * Returns 0 or -errno (e.g. -EINVAL from an old kernel).
 */
int sz_bufring_init(sz_bufring_t *b, struct io_uring *ring, uint16_t bgid, uint32_t nbufs,
                    uint32_t size);

/** Owner thread. Unregisters and frees. Buffers still out are lost with it. */
void sz_bufring_destroy(sz_bufring_t *b, struct io_uring *ring);

/** Owner thread. Marks buffer <bid> out and returns its memory. */
char *sz_bufring_take(sz_bufring_t *b, uint16_t bid);

/** Owner thread. Gives buffer <bid> back to the kernel. */
void sz_bufring_put(sz_bufring_t *b, uint16_t bid);

/** Buffers currently in the ring (available to the kernel). */
static inline uint32_t sz_bufring_avail(const sz_bufring_t *b)
{
    return b->nbufs - b->nout;
}

#endif
