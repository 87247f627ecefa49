/*
 * Provided-buffer ring (IORING_REGISTER_PBUF_RING). liburing 2.3 has no
 * io_uring_setup_buf_ring(), so the ring memory is allocated page-aligned
 * here and registered by address. Owner reactor only.
 */
#include "core/bufring.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "core/mem.h"

int sz_bufring_init(sz_bufring_t *b, struct io_uring *ring, uint16_t bgid, uint32_t nbufs,
                    uint32_t size)
{
    memset(b, 0, sizeof(*b));
    if (nbufs == 0 || (nbufs & (nbufs - 1)) || nbufs > 32768 || size == 0)
        return -EINVAL;
    size_t rlen = (size_t)nbufs * sizeof(struct io_uring_buf);
    void *br = mmap(NULL, rlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (br == MAP_FAILED)
        return -errno;
    /* Buffer memory is mapped, not malloc'd: pages are touched only when
     * the kernel first fills a buffer, so an idle reactor costs no RSS. */
    void *base = mmap(NULL, (size_t)nbufs * size, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        int err = -errno;
        munmap(br, rlen);
        return err;
    }
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)br,
        .ring_entries = nbufs,
        .bgid = bgid,
    };
    int ret = io_uring_register_buf_ring(ring, &reg, 0);
    if (ret < 0) {
        munmap(base, (size_t)nbufs * size);
        munmap(br, rlen);
        return ret;
    }
    b->br = br;
    b->base = base;
    b->nbufs = nbufs;
    b->size = size;
    b->mask = io_uring_buf_ring_mask(nbufs);
    b->bgid = bgid;
    b->out = sz_calloc((nbufs + 7) / 8, 1);
    io_uring_buf_ring_init(b->br);
    for (uint32_t i = 0; i < nbufs; i++)
        io_uring_buf_ring_add(b->br, b->base + (size_t)i * size, size, (uint16_t)i, b->mask, (int)i);
    io_uring_buf_ring_advance(b->br, (int)nbufs);
    return 0;
}

void sz_bufring_destroy(sz_bufring_t *b, struct io_uring *ring)
{
    if (!b->br)
        return;
    io_uring_unregister_buf_ring(ring, b->bgid);
    munmap(b->br, (size_t)b->nbufs * sizeof(struct io_uring_buf));
    munmap(b->base, (size_t)b->nbufs * b->size);
    sz_free(b->out);
    memset(b, 0, sizeof(*b));
}

static void corrupt(const char *what, uint16_t bid)
{
    fprintf(stderr, "level=error msg=\"provided buffer %s\" bid=%u\n", what, bid);
    abort();
}

char *sz_bufring_take(sz_bufring_t *b, uint16_t bid)
{
    if (bid >= b->nbufs || (b->out[bid >> 3] & (1u << (bid & 7))))
        corrupt("taken twice", bid);
    b->out[bid >> 3] |= (uint8_t)(1u << (bid & 7));
    b->nout++;
    return b->base + (size_t)bid * b->size;
}

void sz_bufring_put(sz_bufring_t *b, uint16_t bid)
{
    if (bid >= b->nbufs || !(b->out[bid >> 3] & (1u << (bid & 7))))
        corrupt("returned twice", bid);
    b->out[bid >> 3] &= (uint8_t)~(1u << (bid & 7));
    b->nout--;
    io_uring_buf_ring_add(b->br, b->base + (size_t)bid * b->size, b->size, bid, b->mask, 0);
    io_uring_buf_ring_advance(b->br, 1);
}
