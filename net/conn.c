/*
 * Connection lifecycle on one reactor. State changes that submit work
 * (send, cancel, close_direct, handoff) happen only in sz_conns_flush(),
 * which pops each dirty connection once per iteration: so a connection
 * handed to another reactor is never still referenced by this reactor's
 * flush list, and a connection is freed only after every operation that
 * names it has completed (SZ_CF_RECV/SEND/CLOSE clear).
 */
#include "net/conn.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mem.h"

_Static_assert(sizeof(sz_conn_t) == 104, "sz_conn_t layout changed: update the budget in conn.h");

#define SZ_CF_RECV      0x01 /* multishot recv armed */
#define SZ_CF_SEND      0x02 /* a send is in flight */
#define SZ_CF_CANCEL    0x04 /* cancel of all I/O submitted */
#define SZ_CF_CLOSE     0x08 /* close_direct submitted */
#define SZ_CF_MOVE      0x10 /* hand-off submitted: not ours any more */
#define SZ_CF_DIRTY     0x20 /* on the flush list */
#define SZ_CF_EOF       0x40 /* peer closed its side */
#define SZ_CF_PEER      0x80 /* peer-address query in flight */
#define SZ_CF_SHUT      0x100 /* shutdown(SHUT_WR) submitted */
#define SZ_CF_SHUT_BUSY 0x200 /* ... and not completed yet */

#define DRAIN_DEADLINE_MS 5000
#define STOP_DRAIN_MS     1000
#define OBUF_MIN          2048
#define SEND_IOV_MAX      32

uint32_t sz_conn_max_output = 1u << 20;

struct sz_obuf {
    sz_obuf_t *next;
    const char *p;     /* first unsent byte */
    uint32_t len;      /* unsent bytes from p */
    uint32_t cap;      /* >0: bytes of data[] (appendable); 0: external */
    void (*release)(void *ref);
    void *ref;
    char data[];
};

/* 24 bytes per slot; the table is sized for every slot but its pages are
 * touched only as slots are used. */
struct slot_entry {
    sz_conn_t *c;
    struct send_op *op; /* sendmsg state in flight, if any */
    uint32_t gen;
    uint32_t moving; /* handed off, waiting for MOVE_OUT: <c> belongs elsewhere */
};

/* Handoffs submitted and not yet adopted (or failed back): no reactor may
 * exit while one is in the air, or the connection would land on a ring
 * nobody reads. Node-wide, any reactor. */
static uint64_t moves_inflight;
/* The kernel lacks IORING_OP_FIXED_FD_INSTALL (Linux < 6.8), or the
 * configuration asks for it: hand off with MSG_RING SEND_FD instead.
 * Node-wide, set once. */
static int move_send_fd;

#ifndef IORING_OP_FIXED_FD_INSTALL
#define IORING_OP_FIXED_FD_INSTALL 54 /* Linux 6.8; newer than liburing 2.3's headers */
#endif

/* One hand-off by descriptor install (see submit_move). Allocated and freed
 * by the sending reactor; the receiving one fills in the answer. */
struct move {
    sz_conn_t *c;
    int fd;              /* process descriptor holding the socket in transit */
    int io;              /* FILES_UPDATE: the fd in, the allocated slot out */
    int ring_fd;         /* the sender's ring, for the answer */
    uint32_t slot;       /* the sender's slot */
    bool answered;       /* set by the receiver, which then closed <fd> */
};
/* Set (main thread) before any reactor is told to stop: no new handoff may
 * start then, because its destination may be about to exit. */
static int conns_stopping;

void sz_conns_stop_all(void)
{
    __atomic_store_n(&conns_stopping, 1, __ATOMIC_SEQ_CST);
}

struct sz_conns {
    struct slot_entry *slots;
    uint32_t nslots;
    uint32_t gen_next;
    sz_conn_t *dirty;
    const sz_proto_t *const *protos;
    unsigned nprotos;
    uint64_t id_next;
    uint32_t slot_closes; /* close_direct of moved-away slots in flight */
    uint32_t live;        /* connections allocated here */
};

/* A peer-address query in flight; freed on its completion. The connection
 * waits for it before it closes or moves (SZ_CF_PEER), so <c> stays valid. */
struct peer_op {
    sz_conn_t *c;
    struct sockaddr_in6 sa;
};

/* io_uring socket command (kernel >= 6.7): getsockopt at SOL_SOCKET. */
#define SOCKET_URING_OP_GETSOCKOPT 2
#ifndef SO_PEERNAME
#define SO_PEERNAME 28
#endif

/* State for a sendmsg in flight; freed on its completion. */
struct send_op {
    struct msghdr msg;
    struct iovec iov[SEND_IOV_MAX];
};

static inline sz_conns_t *conns_of(sz_reactor_t *r)
{
    return r->net;
}

sz_reactor_t *sz_conn_reactor(const sz_conn_t *c)
{
    sz_reactor_t *r = sz_reactor_self();
    if (!r || r->id != c->reactor)
        abort(); /* a connection touched from a thread that does not own it */
    return r;
}

static void mark_dirty(sz_reactor_t *r, sz_conn_t *c)
{
    if (c->flags & SZ_CF_DIRTY)
        return;
    sz_conns_t *cs = conns_of(r);
    c->flags |= SZ_CF_DIRTY;
    c->dirty_next = cs->dirty;
    cs->dirty = c;
}

static sz_conn_t *lookup(sz_conns_t *cs, uint64_t ud)
{
    uint32_t slot = SZ_UD_SLOT(ud);
    if (slot >= cs->nslots)
        return NULL;
    struct slot_entry *e = &cs->slots[slot];
    /* Stale completion for an earlier connection on this slot, or for one
     * handed to another reactor (never touched here again): drop. */
    if (!e->c || e->gen != SZ_UD_GEN(ud) || e->moving)
        return NULL;
    return e->c;
}

/* The connection of a slot whose hand-off is in flight, or NULL for a
 * completion that names an earlier connection of the slot. */
static sz_conn_t *lookup_moving(sz_conns_t *cs, uint64_t ud)
{
    uint32_t slot = SZ_UD_SLOT(ud);
    if (slot >= cs->nslots)
        return NULL;
    struct slot_entry *e = &cs->slots[slot];
    return e->moving && e->gen == SZ_UD_GEN(ud) ? e->c : NULL;
}

static void arm_recv(sz_reactor_t *r, sz_conn_t *c)
{
    struct io_uring_sqe *sqe = sz_reactor_sqe(r);
    io_uring_prep_recv_multishot(sqe, (int)c->slot, NULL, 0, 0);
    sqe->flags |= IOSQE_FIXED_FILE | IOSQE_BUFFER_SELECT;
    sqe->buf_group = r->bufs.bgid;
    sqe->user_data = sz_ud(SZ_OP_RECV, c->gen, c->slot);
    c->flags |= SZ_CF_RECV;
}

/* Cancels the connection's multishot recv and, with <all>, its send in
 * flight. Each is cancelled by its user_data: the kernel finds it by hash,
 * whereas cancelling by descriptor scans every request on the ring (with
 * tens of thousands of idle recvs pending, that made each handoff O(n)).
 * The cancelled requests still complete and clear their flags; late
 * completions of the cancels themselves are harmless (see lookup()). */
static void cancel_io(sz_reactor_t *r, sz_conn_t *c, bool all)
{
    if (c->flags & SZ_CF_CANCEL)
        return;
    c->flags |= SZ_CF_CANCEL;
    if (c->flags & SZ_CF_RECV) {
        struct io_uring_sqe *sqe = sz_reactor_sqe(r);
        io_uring_prep_cancel64(sqe, sz_ud(SZ_OP_RECV, c->gen, c->slot), 0);
        sqe->user_data = sz_ud(SZ_OP_CANCEL, c->gen, c->slot);
    }
    if (all && (c->flags & SZ_CF_SEND)) {
        struct io_uring_sqe *sqe = sz_reactor_sqe(r);
        io_uring_prep_cancel64(sqe, sz_ud(SZ_OP_SEND, c->gen, c->slot), 0);
        sqe->user_data = sz_ud(SZ_OP_CANCEL, c->gen, c->slot);
    }
}

static void install(sz_reactor_t *r, sz_conn_t *c, uint32_t slot)
{
    sz_conns_t *cs = conns_of(r);
    c->slot = slot;
    c->gen = cs->gen_next++ & 0xffffffu;
    c->reactor = (uint16_t)r->id;
    cs->slots[slot].c = c;
    cs->slots[slot].gen = c->gen;
    cs->live++;
    SZ_STAT_ADD(&r->stats, conns_open, 1);
    SZ_STAT_ADD(&r->stats, slots_used, 1);
}

/* getsockopt(SO_PEERNAME) through IORING_OP_URING_CMD. The option length
 * must be exactly the address size: the kernel refuses a larger one. The
 * SQE fields are set by offset because liburing 2.3 predates the socket
 * commands: cmd_op is the low half of <off>, level/optname overlay <addr>,
 * optval overlays <addr3>, optlen overlays <file_index>. */
static void query_peer(sz_reactor_t *r, sz_conn_t *c, int family)
{
    struct peer_op *op = sz_calloc(1, sizeof(*op));
    op->c = c;
    struct io_uring_sqe *sqe = sz_reactor_sqe(r);
    memset(sqe, 0, sizeof(*sqe));
    sqe->opcode = IORING_OP_URING_CMD;
    sqe->fd = (int)c->slot;
    sqe->flags = IOSQE_FIXED_FILE;
    sqe->off = SOCKET_URING_OP_GETSOCKOPT;
    sqe->addr = (uint64_t)SOL_SOCKET | (uint64_t)SO_PEERNAME << 32;
    sqe->addr3 = (uint64_t)(uintptr_t)&op->sa;
    sqe->file_index = family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    sqe->user_data = sz_ud_ptr(SZ_OP_PEER, op);
    c->flags |= SZ_CF_PEER;
}

static void on_peer(sz_reactor_t *r, const struct io_uring_cqe *cqe)
{
    struct peer_op *op = SZ_UD_PTR(cqe->user_data);
    sz_conn_t *c = op->c;
    c->flags &= (uint16_t)~SZ_CF_PEER;
    if (cqe->res > 0 && c->state == SZ_CONN_ACTIVE)
        c->proto->on_peer(c, (const struct sockaddr *)&op->sa, (unsigned)cqe->res);
    else if (cqe->res < 0)
        SZ_DEBUG("msg=\"peer address unknown\" conn=%llu err=\"%s\"", (unsigned long long)c->id,
                 strerror(-cqe->res));
    sz_free(op);
    mark_dirty(r, c);
}

sz_conn_t *sz_conns_adopt(sz_reactor_t *r, uint32_t slot, unsigned listener, int family)
{
    sz_conns_t *cs = conns_of(r);
    sz_conn_t *c = sz_calloc(1, sizeof(*c));
    c->proto = cs->protos[listener];
    c->listener = (uint8_t)listener;
    c->id = ((uint64_t)r->id << 48) | cs->id_next++;
    install(r, c, slot);
    SZ_STAT_ADD(&r->stats, accepted, 1);
    arm_recv(r, c);
    if (c->proto->on_open)
        c->proto->on_open(c);
    if (c->proto->on_peer && c->state == SZ_CONN_ACTIVE)
        query_peer(r, c, family);
    return c;
}

/* ---- output queue ---------------------------------------------------- */

static void obuf_free(sz_obuf_t *b)
{
    if (b->release)
        b->release(b->ref);
    sz_free(b);
}

static void drop_output(sz_conn_t *c)
{
    sz_obuf_t *b = c->out_head;
    while (b) {
        sz_obuf_t *next = b->next;
        obuf_free(b);
        b = next;
    }
    c->out_head = c->out_tail = NULL;
    c->out_bytes = 0;
}

static int may_queue(sz_conn_t *c, size_t n)
{
    if (c->state == SZ_CONN_CLOSING || c->state == SZ_CONN_DRAINING)
        return -EPIPE;
    if (c->proto->uncapped)
        return 0;
    uint32_t cap = __atomic_load_n(&sz_conn_max_output, __ATOMIC_RELAXED);
    if (n > cap || c->out_bytes + n > cap)
        return -ENOBUFS;
    return 0;
}

static void queue_obuf(sz_reactor_t *r, sz_conn_t *c, sz_obuf_t *b)
{
    b->next = NULL;
    if (c->out_tail)
        c->out_tail->next = b;
    else
        c->out_head = b;
    c->out_tail = b;
    c->out_bytes += b->len;
    mark_dirty(r, c);
}

int sz_conn_send(sz_conn_t *c, const void *p, size_t n)
{
    sz_reactor_t *r = sz_reactor_self();
    int ret = may_queue(c, n);
    if (ret < 0)
        return ret;
    if (n == 0)
        return 0;
    /* Append to the tail buffer while it has room and is not being sent
     * (a send in flight may point into its unsent part, but appending
     * after its end does not move those bytes). */
    sz_obuf_t *t = c->out_tail;
    if (t && t->cap) {
        size_t used = (size_t)(t->p - t->data) + t->len;
        size_t room = t->cap - used;
        size_t k = n < room ? n : room;
        memcpy(t->data + used, p, k);
        t->len += (uint32_t)k;
        c->out_bytes += (uint32_t)k;
        p = (const char *)p + k;
        n -= k;
        if (n == 0) {
            mark_dirty(r, c);
            return 0;
        }
    }
    size_t cap = n < OBUF_MIN ? OBUF_MIN : n;
    sz_obuf_t *b = sz_malloc(sizeof(*b) + cap);
    memcpy(b->data, p, n);
    b->p = b->data;
    b->len = (uint32_t)n;
    b->cap = (uint32_t)cap;
    b->release = NULL;
    b->ref = NULL;
    queue_obuf(r, c, b);
    return 0;
}

int sz_conn_send_ref(sz_conn_t *c, const void *p, size_t n, void (*release)(void *ref),
                     void *ref)
{
    int ret = may_queue(c, n);
    if (ret < 0) {
        if (release)
            release(ref);
        return ret;
    }
    sz_obuf_t *b = sz_malloc(sizeof(*b));
    b->p = p;
    b->len = (uint32_t)n;
    b->cap = 0;
    b->release = release;
    b->ref = ref;
    queue_obuf(sz_reactor_self(), c, b);
    return 0;
}

static void submit_send(sz_reactor_t *r, sz_conn_t *c)
{
    struct io_uring_sqe *sqe = sz_reactor_sqe(r);
    if (!c->out_head->next) {
        io_uring_prep_send(sqe, (int)c->slot, c->out_head->p, c->out_head->len, MSG_NOSIGNAL);
        sqe->user_data = sz_ud(SZ_OP_SEND, c->gen, c->slot);
    } else {
        /* Several buffers: one sendmsg for all of them (up to 32). */
        struct send_op *op = sz_malloc(sizeof(*op));
        memset(&op->msg, 0, sizeof(op->msg));
        unsigned n = 0;
        for (sz_obuf_t *b = c->out_head; b && n < SEND_IOV_MAX; b = b->next, n++) {
            op->iov[n].iov_base = (void *)b->p;
            op->iov[n].iov_len = b->len;
        }
        op->msg.msg_iov = op->iov;
        op->msg.msg_iovlen = n;
        io_uring_prep_sendmsg(sqe, (int)c->slot, &op->msg, MSG_NOSIGNAL);
        sqe->user_data = sz_ud(SZ_OP_SEND, c->gen, c->slot);
        /* Kept beside the slot, not in the connection: it exists only
         * while the send is in flight. */
        conns_of(r)->slots[c->slot].op = op;
    }
    sqe->flags |= IOSQE_FIXED_FILE;
    c->flags |= SZ_CF_SEND;
}

/* Drops <n> sent bytes from the head of the queue. */
static void consume_output(sz_conn_t *c, uint32_t n)
{
    c->out_bytes -= n;
    while (n) {
        sz_obuf_t *b = c->out_head;
        if (n < b->len) {
            b->p += n;
            b->len -= n;
            return;
        }
        n -= b->len;
        c->out_head = b->next;
        if (!c->out_head)
            c->out_tail = NULL;
        obuf_free(b);
    }
}

/* ---- timers ------------------------------------------------------------ */

static void on_conn_timer(sz_timer_t *t)
{
    sz_conn_t *c = (sz_conn_t *)((char *)t - offsetof(sz_conn_t, timer));
    if (c->state == SZ_CONN_DRAINING) {
        /* Flush deadline passed: the peer does not read. */
        c->state = SZ_CONN_CLOSING;
        mark_dirty(sz_reactor_self(), c);
        return;
    }
    if (c->state != SZ_CONN_ACTIVE)
        return;
    if (c->proto->on_timer)
        c->proto->on_timer(c);
    else
        sz_conn_close(c, false);
}

void sz_conn_set_timer(sz_conn_t *c, uint64_t ms)
{
    sz_reactor_t *r = sz_reactor_self();
    sz_timer_arm(&r->wheel, &c->timer, sz_reactor_now(r) + ms, on_conn_timer);
}

void sz_conn_cancel_timer(sz_conn_t *c)
{
    sz_timer_cancel(&sz_reactor_self()->wheel, &c->timer);
}

/* ---- closing ----------------------------------------------------------- */

void sz_conn_close(sz_conn_t *c, bool flush)
{
    sz_reactor_t *r = sz_reactor_self();
    if (c->state == SZ_CONN_CLOSING || (c->flags & SZ_CF_MOVE))
        return;
    if (flush && c->out_head) {
        if (c->state == SZ_CONN_DRAINING)
            return;
        c->state = SZ_CONN_DRAINING;
        /* While the node stops, a peer that does not read or close gets
         * less time: shutdown must not wait on it. */
        sz_timer_arm(&r->wheel, &c->timer,
                     sz_reactor_now(r) + (r->stopping ? STOP_DRAIN_MS : DRAIN_DEADLINE_MS),
                     on_conn_timer);
    } else {
        c->state = SZ_CONN_CLOSING;
        sz_timer_cancel(&r->wheel, &c->timer);
    }
    mark_dirty(r, c);
}

static void free_conn(sz_reactor_t *r, sz_conn_t *c)
{
    sz_conns_t *cs = conns_of(r);
    sz_timer_cancel(&r->wheel, &c->timer);
    if (c->proto->on_close)
        c->proto->on_close(c);
    drop_output(c);
    cs->live--;
    sz_free(c);
}

/* ---- handoff ----------------------------------------------------------- */

int sz_conn_move(sz_conn_t *c, unsigned dst)
{
    sz_reactor_t *r = sz_reactor_self();
    if (dst >= r->n || dst == r->id)
        return -EINVAL;
    if (c->state != SZ_CONN_ACTIVE)
        return -EBUSY;
    c->state = SZ_CONN_MOVING;
    c->move_to = (uint16_t)dst;
    sz_timer_cancel(&r->wheel, &c->timer);
    /* Stop reading here; bytes the kernel has not handed us yet stay in
     * the socket and are read by the destination, in order. */
    if (c->flags & (SZ_CF_RECV | SZ_CF_SEND))
        cancel_io(r, c, true);
    mark_dirty(r, c);
    return 0;
}

/*
 * Hand-off. The descriptor leaves our table as a process descriptor
 * (IORING_OP_FIXED_FD_INSTALL), its number travels with the connection in
 * a MSG_RING data message, the destination puts it into its own table
 * (IORING_OP_FILES_UPDATE at a free index) and answers with another data
 * message; only then do we close our slot. Data messages respect the
 * destination's batching window, whereas MSG_RING SEND_FD (the fallback
 * for kernels before 6.8) wakes both reactors at once.
 */
static void submit_move(sz_reactor_t *r, sz_conn_t *c)
{
    struct io_uring_sqe *sqe = sz_reactor_sqe(r);
    c->flags |= SZ_CF_MOVE;
    conns_of(r)->slots[c->slot].moving = 1;
    if (!__atomic_load_n(&move_send_fd, __ATOMIC_RELAXED)) {
        /* Installed with O_CLOEXEC (the default of the operation). */
        io_uring_prep_rw(IORING_OP_FIXED_FD_INSTALL, sqe, (int)c->slot, NULL, 0, 0);
        sqe->flags |= IOSQE_FIXED_FILE;
        sqe->user_data = sz_ud(SZ_OP_MOVE_FD, c->gen, c->slot);
        return;
    }
    int fd = __atomic_load_n(&r->ring_fds[c->move_to], __ATOMIC_ACQUIRE);
    /* IORING_MSG_SEND_FD: install our direct descriptor <slot> into the
     * destination's table at a free index (FILE_INDEX_ALLOC); the
     * destination's completion carries <off> as user_data, here the
     * connection pointer, so descriptor and state arrive as one event. */
    io_uring_prep_rw(IORING_OP_MSG_RING, sqe, fd, (void *)(uintptr_t)IORING_MSG_SEND_FD, 0,
                     sz_ud_ptr(SZ_OP_MOVE_IN, c));
    sqe->addr3 = c->slot;
    sqe->file_index = IORING_FILE_INDEX_ALLOC;
    sqe->user_data = sz_ud(SZ_OP_MOVE_OUT, c->gen, c->slot);
    /* From here on <c> belongs to the destination as soon as the kernel
     * delivers it: this reactor only remembers the slot, and never reads
     * <c> again unless the handoff fails. */
}

/* Our copy of a handed-off connection's descriptor: forget the connection
 * without touching it and close the slot. */
static void moved_away(sz_reactor_t *r, uint32_t slot)
{
    sz_conns_t *cs = conns_of(r);
    cs->slots[slot].moving = 0;
    cs->slots[slot].c = NULL;
    cs->live--;
    SZ_STAT_SUB(&r->stats, conns_open, 1);
    SZ_STAT_ADD(&r->stats, handoff_out, 1);
    struct io_uring_sqe *sqe = sz_reactor_sqe(r);
    io_uring_prep_close_direct(sqe, slot);
    sqe->user_data = sz_ud(SZ_OP_SLOT_CLOSE, 0, slot);
    cs->slot_closes++;
}

/* The destination could not take <c> (no free slot, ring gone): the
 * connection stays and resumes here. */
static void move_failed(sz_reactor_t *r, sz_conn_t *c, int err)
{
    conns_of(r)->slots[c->slot].moving = 0;
    __atomic_sub_fetch(&moves_inflight, 1, __ATOMIC_ACQ_REL);
    SZ_STAT_ADD(&r->stats, handoff_failed, 1);
    SZ_DEBUG("msg=\"handoff failed\" conn=%llu err=\"%s\"", (unsigned long long)c->id,
             strerror(-err));
    c->flags &= (uint16_t)~(SZ_CF_MOVE | SZ_CF_CANCEL);
    c->state = SZ_CONN_ACTIVE;
    if (r->stopping) {
        sz_conn_close(c, false);
        return;
    }
    arm_recv(r, c);
    if (c->proto->on_moved)
        c->proto->on_moved(c);
    mark_dirty(r, c);
}

/* The connection <c> arrived here in slot <slot>: adopt it. */
static void moved_in(sz_reactor_t *r, sz_conn_t *c, uint32_t slot)
{
    c->flags = 0;
    c->dirty_next = NULL;
    c->state = SZ_CONN_ACTIVE;
    install(r, c, slot);
    SZ_STAT_ADD(&r->stats, handoff_in, 1);
    if (r->stopping) {
        /* Arrived while this reactor drains: close it like the others. */
        sz_conn_close(c, false);
        return;
    }
    arm_recv(r, c);
    if (c->out_head)
        mark_dirty(r, c);
    if (c->proto->on_moved)
        c->proto->on_moved(c);
}

/* Sender, SEND_FD fallback: the descriptor went across, or not. On
 * success <c> may already be the destination's (adopted, even freed): the
 * slot comes from user_data, and <c> is read only when the move failed. */
static void on_move_out(sz_reactor_t *r, const struct io_uring_cqe *cqe)
{
    sz_conn_t *c = lookup_moving(conns_of(r), cqe->user_data);
    if (!c)
        return;
    if (cqe->res >= 0)
        moved_away(r, SZ_UD_SLOT(cqe->user_data));
    else
        move_failed(r, c, cqe->res);
}

/* Receiver, SEND_FD fallback: descriptor and connection arrived together. */
static void on_move_in(sz_reactor_t *r, const struct io_uring_cqe *cqe)
{
    sz_conn_t *c = SZ_UD_PTR(cqe->user_data);
    if (cqe->res < 0)
        return; /* not sent for failures; defensive */
    __atomic_sub_fetch(&moves_inflight, 1, __ATOMIC_ACQ_REL);
    moved_in(r, c, (uint32_t)cqe->res);
}

/* Sender: our slot is now also a process descriptor; send both over. */
static void on_move_fd(sz_reactor_t *r, const struct io_uring_cqe *cqe)
{
    sz_conn_t *c = lookup_moving(conns_of(r), cqe->user_data);
    if (!c)
        return;
    if (cqe->res == -EINVAL && !__atomic_load_n(&move_send_fd, __ATOMIC_RELAXED)) {
        /* Linux < 6.8 does not know the operation: SEND_FD from now on. */
        __atomic_store_n(&move_send_fd, 1, __ATOMIC_RELAXED);
        SZ_INFO("msg=\"hand-off by MSG_RING SEND_FD: IORING_OP_FIXED_FD_INSTALL needs Linux 6.8\"");
        submit_move(r, c);
        return;
    }
    if (cqe->res < 0) { /* e.g. -EMFILE: the process descriptor table is full */
        move_failed(r, c, cqe->res);
        return;
    }
    struct move *mv = sz_malloc(sizeof(*mv));
    *mv = (struct move){.c = c, .fd = cqe->res, .io = cqe->res, .ring_fd = r->ring.ring_fd,
                        .slot = c->slot};
    struct io_uring_sqe *sqe = sz_reactor_sqe(r);
    int dst = __atomic_load_n(&r->ring_fds[c->move_to], __ATOMIC_ACQUIRE);
    io_uring_prep_msg_ring(sqe, dst, 0, sz_ud_ptr(SZ_OP_MOVE_ARRIVE, mv), 0);
    /* Only a failed post completes here, as the destination's "no". */
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    sqe->user_data = sz_ud_ptr(SZ_OP_MOVE_DONE, mv);
}

/* Receiver: a hand-off arrived; put its descriptor into our table. */
static void on_move_arrive(sz_reactor_t *r, const struct io_uring_cqe *cqe)
{
    struct move *mv = SZ_UD_PTR(cqe->user_data);
    struct io_uring_sqe *sqe = sz_reactor_sqe(r);
    io_uring_prep_files_update(sqe, &mv->io, 1, (int)IORING_FILE_INDEX_ALLOC);
    sqe->user_data = sz_ud_ptr(SZ_OP_MOVE_INSTALL, mv);
}

/* Receiver: adopt the connection (or refuse it), then answer the sender. */
static void on_move_install(sz_reactor_t *r, const struct io_uring_cqe *cqe)
{
    struct move *mv = SZ_UD_PTR(cqe->user_data);
    close(mv->fd); /* the table holds the socket now, or the sender still does */
    int res = cqe->res == 1 ? 0 : cqe->res < 0 ? cqe->res : -ENFILE;
    mv->answered = true;
    if (res == 0)
        moved_in(r, mv->c, (uint32_t)mv->io);
    struct io_uring_sqe *sqe = sz_reactor_sqe(r);
    io_uring_prep_msg_ring(sqe, mv->ring_fd, (unsigned)res, sz_ud_ptr(SZ_OP_MOVE_DONE, mv), 0);
    sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
    sqe->user_data = sz_ud(SZ_OP_MOVE_REPLY, 0, 0); /* <mv> is the sender's again */
}

/* Sender: the answer (res 0: moved), or the failed post of the hand-off.
 * Until then the slot still names the connection (moving is set), so
 * nothing here can have reused it. */
static void on_move_done(sz_reactor_t *r, const struct io_uring_cqe *cqe)
{
    struct move *mv = SZ_UD_PTR(cqe->user_data);
    if (cqe->res == 0) {
        __atomic_sub_fetch(&moves_inflight, 1, __ATOMIC_ACQ_REL);
        moved_away(r, mv->slot);
    } else {
        if (!mv->answered)
            close(mv->fd); /* never arrived: the descriptor in transit is ours */
        move_failed(r, mv->c, cqe->res);
    }
    sz_free(mv);
}

/* Receiver: the answer could not be posted (the sender's ring is gone). */
static void on_move_reply(sz_reactor_t *r, const struct io_uring_cqe *cqe)
{
    (void)r;
    SZ_ERROR("msg=\"handoff answer lost\" err=\"%s\"", strerror(-cqe->res));
}

static void on_slot_close(sz_reactor_t *r, const struct io_uring_cqe *cqe)
{
    sz_conns_t *cs = conns_of(r);
    cs->slot_closes--;
    SZ_STAT_SUB(&r->stats, slots_used, 1);
}

/* ---- completions ------------------------------------------------------- */

static void on_recv(sz_reactor_t *r, const struct io_uring_cqe *cqe)
{
    sz_conn_t *c = lookup(conns_of(r), cqe->user_data);
    char *buf = NULL;
    uint16_t bid = 0;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        bid = (uint16_t)(cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        buf = sz_bufring_take(&r->bufs, bid);
    }
    if (c && cqe->res > 0) {
        SZ_STAT_ADD(&r->stats, bytes_in, cqe->res);
        /* MOVING still handles data that was already read: it is part of
         * the stream and must not be lost. */
        if (c->state == SZ_CONN_ACTIVE || c->state == SZ_CONN_MOVING)
            c->proto->on_data(c, buf, (size_t)cqe->res);
    }
    if (buf)
        sz_bufring_put(&r->bufs, bid);
    if (!c || (cqe->flags & IORING_CQE_F_MORE))
        return;
    /* The multishot recv ended. */
    c->flags &= (uint16_t)~SZ_CF_RECV;
    if (cqe->res == -ENOBUFS) {
        SZ_STAT_ADD(&r->stats, recv_enobufs, 1);
        if (c->state == SZ_CONN_ACTIVE) {
            arm_recv(r, c); /* buffers were returned above */
            return;
        }
    } else if (cqe->res > 0 && c->state == SZ_CONN_ACTIVE) {
        arm_recv(r, c); /* ended without error (e.g. overflow): re-arm */
        return;
    } else if (c->state == SZ_CONN_MOVING && cqe->res != -ECANCELED) {
        /* The peer went away while moving: close here instead. */
        c->flags |= SZ_CF_EOF;
        c->state = SZ_CONN_CLOSING;
    } else if (c->state == SZ_CONN_ACTIVE && cqe->res != -ECANCELED) {
        /* EOF (0) or a read error. */
        c->flags |= SZ_CF_EOF;
        if (c->proto->on_eof)
            c->proto->on_eof(c);
        else
            sz_conn_close(c, false);
        if (c->state == SZ_CONN_ACTIVE)
            sz_conn_close(c, false); /* the protocol kept it: nothing more can come */
    }
    mark_dirty(r, c);
}

static void on_send(sz_reactor_t *r, const struct io_uring_cqe *cqe)
{
    sz_conns_t *cs = conns_of(r);
    uint32_t slot = SZ_UD_SLOT(cqe->user_data);
    sz_conn_t *c = lookup(cs, cqe->user_data);
    /* The sendmsg state belongs to the slot's in-flight send; a slot is
     * never reused before its send completed, so it is this one. */
    if (slot < cs->nslots && cs->slots[slot].op) {
        sz_free(cs->slots[slot].op);
        cs->slots[slot].op = NULL;
    }
    if (!c)
        return;
    c->flags &= (uint16_t)~SZ_CF_SEND;
    if (cqe->res > 0) {
        SZ_STAT_ADD(&r->stats, bytes_out, cqe->res);
        consume_output(c, (uint32_t)cqe->res);
    } else if (cqe->res < 0 && cqe->res != -ECANCELED && cqe->res != -EAGAIN &&
               cqe->res != -EINTR) {
        /* The peer is gone (EPIPE, ECONNRESET...): nothing more can be sent. */
        c->flags |= SZ_CF_EOF;
        drop_output(c);
        if (c->state != SZ_CONN_MOVING)
            sz_conn_close(c, false);
    }
    mark_dirty(r, c);
}

static void on_close(sz_reactor_t *r, const struct io_uring_cqe *cqe)
{
    sz_conns_t *cs = conns_of(r);
    uint32_t slot = SZ_UD_SLOT(cqe->user_data);
    sz_conn_t *c = lookup(cs, cqe->user_data);
    if (!c)
        return;
    cs->slots[slot].c = NULL;
    SZ_STAT_SUB(&r->stats, conns_open, 1);
    SZ_STAT_SUB(&r->stats, slots_used, 1);
    SZ_STAT_ADD(&r->stats, closed, 1);
    free_conn(r, c);
}

static void on_shutdown(sz_reactor_t *r, const struct io_uring_cqe *cqe)
{
    sz_conn_t *c = lookup(conns_of(r), cqe->user_data);
    if (!c)
        return;
    c->flags &= (uint16_t)~SZ_CF_SHUT_BUSY;
    if (cqe->res < 0)
        c->flags |= SZ_CF_EOF; /* not connected any more: nothing to wait for */
    mark_dirty(r, c);
}

static void on_cancel(sz_reactor_t *r, const struct io_uring_cqe *cqe)
{
    /* -ENOENT (nothing left to cancel) is fine. Clearing the flag lets the
     * next step cancel again if requests are still running. */
    sz_conn_t *c = lookup(conns_of(r), cqe->user_data);
    if (!c)
        return;
    c->flags &= (uint16_t)~SZ_CF_CANCEL;
    mark_dirty(r, c);
}

/* ---- the per-iteration step ----------------------------------------- */

static void step(sz_reactor_t *r, sz_conn_t *c)
{
    switch (c->state) {
    case SZ_CONN_ACTIVE:
        if (c->out_head && !(c->flags & SZ_CF_SEND))
            submit_send(r, c);
        break;
    case SZ_CONN_DRAINING:
        if (c->out_head && !(c->flags & SZ_CF_SEND)) {
            submit_send(r, c);
            break;
        }
        if (c->out_head || (c->flags & SZ_CF_SEND))
            break;
        /* Lingering close: everything is sent; send FIN and read (and
         * drop) until the peer's EOF. Closing with unread input would
         * make the kernel answer with RST, and the peer could lose the
         * last bytes we sent (a stream error). The drain deadline bounds
         * the wait. */
        if (!(c->flags & (SZ_CF_SHUT | SZ_CF_EOF)) && (c->flags & SZ_CF_RECV)) {
            struct io_uring_sqe *sqe = sz_reactor_sqe(r);
            io_uring_prep_shutdown(sqe, (int)c->slot, SHUT_WR);
            sqe->flags |= IOSQE_FIXED_FILE;
            sqe->user_data = sz_ud(SZ_OP_SHUTDOWN, c->gen, c->slot);
            c->flags |= SZ_CF_SHUT | SZ_CF_SHUT_BUSY;
            break;
        }
        if (c->flags & (SZ_CF_SHUT_BUSY | SZ_CF_RECV))
            break;
        c->state = SZ_CONN_CLOSING;
        /* fall through */
    case SZ_CONN_CLOSING:
        if (c->flags & (SZ_CF_RECV | SZ_CF_SEND)) {
            cancel_io(r, c, true);
            break;
        }
        if (c->flags & (SZ_CF_PEER | SZ_CF_SHUT_BUSY))
            break; /* complete on their own, at once */
        if (!(c->flags & SZ_CF_CLOSE)) {
            c->flags |= SZ_CF_CLOSE;
            struct io_uring_sqe *sqe = sz_reactor_sqe(r);
            io_uring_prep_close_direct(sqe, c->slot);
            sqe->user_data = sz_ud(SZ_OP_CLOSE, c->gen, c->slot);
        }
        break;
    case SZ_CONN_MOVING:
        if (c->flags & (SZ_CF_RECV | SZ_CF_SEND | SZ_CF_MOVE | SZ_CF_PEER))
            break; /* the completions will mark it dirty again */
        /* Count the move first, then look at the stop flag (both seq_cst):
         * a reactor that saw no move in flight after the flag was set
         * cannot miss this one, and a move that sees the flag is dropped
         * here. Pairs with sz_conns_quiesced(). */
        __atomic_add_fetch(&moves_inflight, 1, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&conns_stopping, __ATOMIC_SEQ_CST)) {
            __atomic_sub_fetch(&moves_inflight, 1, __ATOMIC_SEQ_CST);
            c->state = SZ_CONN_CLOSING;
            mark_dirty(r, c);
            break;
        }
        submit_move(r, c);
        break;
    }
}

void sz_conns_flush(sz_reactor_t *r)
{
    sz_conns_t *cs = conns_of(r);
    /* Steps may mark other connections dirty (and this one again): take
     * the list, then loop until it stays empty. */
    while (cs->dirty) {
        sz_conn_t *c = cs->dirty;
        cs->dirty = NULL;
        while (c) {
            sz_conn_t *next = c->dirty_next;
            c->dirty_next = NULL;
            c->flags &= (uint16_t)~SZ_CF_DIRTY;
            step(r, c);
            c = next; /* after submit_move, <c> is not read again */
        }
    }
}

void sz_conns_shutdown(sz_reactor_t *r)
{
    sz_conns_t *cs = conns_of(r);
    for (uint32_t i = 0; i < cs->nslots; i++) {
        sz_conn_t *c = cs->slots[i].c;
        /* A connection handed off is not ours to read, let alone close:
         * the destination closes it when it arrives there. */
        if (!c || cs->slots[i].moving || c->state == SZ_CONN_CLOSING)
            continue;
        if (c->state == SZ_CONN_MOVING) {
            c->state = SZ_CONN_CLOSING; /* not yet submitted: close it here */
            mark_dirty(r, c);
        } else if (c->proto->on_shutdown) {
            c->proto->on_shutdown(c);
        } else {
            sz_conn_close(c, true);
        }
    }
}

bool sz_conns_quiesced(sz_reactor_t *r)
{
    sz_conns_t *cs = conns_of(r);
    return cs->live == 0 && cs->slot_closes == 0 &&
           __atomic_load_n(&moves_inflight, __ATOMIC_SEQ_CST) == 0;
}

void sz_conns_init(sz_reactor_t *r, const sz_proto_t *const *protos, unsigned nlisteners)
{
    sz_conns_t *cs = sz_calloc(1, sizeof(*cs));
    cs->nslots = r->direct_slots;
    /* calloc of a large table maps zero pages: RSS grows only with the
     * slots actually used. */
    cs->slots = sz_calloc(cs->nslots, sizeof(cs->slots[0]));
    cs->protos = protos;
    cs->nprotos = nlisteners;
    cs->gen_next = 1;
    r->net = cs;
}

void sz_conns_destroy(sz_reactor_t *r)
{
    sz_conns_t *cs = conns_of(r);
    if (!cs)
        return;
    for (uint32_t i = 0; i < cs->nslots; i++) {
        if (cs->slots[i].op)
            sz_free(cs->slots[i].op);
        if (cs->slots[i].c)
            free_conn(r, cs->slots[i].c);
    }
    sz_free(cs->slots);
    sz_free(cs);
    r->net = NULL;
}

void sz_conns_register_handlers(void)
{
    sz_reactor_set_handler(SZ_OP_RECV, on_recv);
    sz_reactor_set_handler(SZ_OP_SEND, on_send);
    sz_reactor_set_handler(SZ_OP_CLOSE, on_close);
    sz_reactor_set_handler(SZ_OP_SLOT_CLOSE, on_slot_close);
    sz_reactor_set_handler(SZ_OP_MOVE_OUT, on_move_out);
    sz_reactor_set_handler(SZ_OP_MOVE_IN, on_move_in);
    sz_reactor_set_handler(SZ_OP_MOVE_FD, on_move_fd);
    sz_reactor_set_handler(SZ_OP_MOVE_ARRIVE, on_move_arrive);
    sz_reactor_set_handler(SZ_OP_MOVE_INSTALL, on_move_install);
    sz_reactor_set_handler(SZ_OP_MOVE_DONE, on_move_done);
    sz_reactor_set_handler(SZ_OP_MOVE_REPLY, on_move_reply);
    sz_reactor_set_handler(SZ_OP_CANCEL, on_cancel);
    sz_reactor_set_handler(SZ_OP_PEER, on_peer);
    sz_reactor_set_handler(SZ_OP_SHUTDOWN, on_shutdown);
}

void sz_conns_handoff_by_send_fd(void)
{
    __atomic_store_n(&move_send_fd, 1, __ATOMIC_RELAXED);
    SZ_INFO("msg=\"hand-off by MSG_RING SEND_FD (node.handoff)\"");
}
