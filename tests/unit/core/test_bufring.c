/* Tests for core/bufring.c on a real io_uring (suite "uring"; exits 77
 * when the kernel lacks provided-buffer rings): buffers handed out by
 * multishot recv are accounted, returned exactly once, exhaustion stops the
 * recv with -ENOBUFS, and a double return is caught. */
#include "core/bufring.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sz_test.h"

#define NBUFS 8
#define BSIZE 64

static struct io_uring ring;
static sz_bufring_t br;
static int sv[2];

static void arm(void)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);
    io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = br.bgid;
    sqe->user_data = 7;
    io_uring_submit(&ring);
}

/* Waits for one recv completion; returns res, stores bid (or -1). */
static int next_cqe(int *bid, int *more)
{
    struct io_uring_cqe *cqe;
    if (io_uring_wait_cqe(&ring, &cqe) < 0)
        return -9999;
    int res = cqe->res;
    *bid = (cqe->flags & IORING_CQE_F_BUFFER) ? (int)(cqe->flags >> IORING_CQE_BUFFER_SHIFT) : -1;
    *more = !!(cqe->flags & IORING_CQE_F_MORE);
    io_uring_cqe_seen(&ring, cqe);
    return res;
}

SZ_TEST(take_and_put_account)
{
    SZ_CHECK_INT(sz_bufring_avail(&br), NBUFS);
    arm();
    int bid, more;
    SZ_CHECK_INT(write(sv[1], "hello", 5), 5);
    int res = next_cqe(&bid, &more);
    SZ_CHECK_INT(res, 5);
    SZ_CHECK(bid >= 0 && bid < NBUFS);
    SZ_CHECK(more);
    char *p = sz_bufring_take(&br, (uint16_t)bid);
    SZ_CHECK(memcmp(p, "hello", 5) == 0);
    SZ_CHECK_INT(sz_bufring_avail(&br), NBUFS - 1);
    sz_bufring_put(&br, (uint16_t)bid);
    SZ_CHECK_INT(sz_bufring_avail(&br), NBUFS);
}

SZ_TEST(exhaustion_stops_recv_with_enobufs)
{
    /* Hold every buffer: 8 writes, 8 completions, none returned. */
    int bids[NBUFS], bid, more, res;
    for (int i = 0; i < NBUFS; i++) {
        char msg[16];
        snprintf(msg, sizeof(msg), "m%d", i);
        SZ_CHECK_INT(write(sv[1], msg, strlen(msg)), (long)strlen(msg));
        res = next_cqe(&bid, &more);
        SZ_CHECK(res > 0 && bid >= 0);
        bids[i] = bid;
        sz_bufring_take(&br, (uint16_t)bid);
    }
    SZ_CHECK_INT(sz_bufring_avail(&br), 0);
    SZ_CHECK_INT(write(sv[1], "x", 1), 1);
    res = next_cqe(&bid, &more);
    SZ_CHECK_INT(res, -ENOBUFS);
    SZ_CHECK(!more); /* the multishot ended: flow control */
    /* Give everything back, re-arm: the pending byte arrives. */
    for (int i = 0; i < NBUFS; i++)
        sz_bufring_put(&br, (uint16_t)bids[i]);
    SZ_CHECK_INT(sz_bufring_avail(&br), NBUFS);
    arm();
    res = next_cqe(&bid, &more);
    SZ_CHECK_INT(res, 1);
    if (bid >= 0) {
        sz_bufring_take(&br, (uint16_t)bid);
        sz_bufring_put(&br, (uint16_t)bid);
    }
}

SZ_TEST(every_buffer_cycles_many_times)
{
    /* 1,000 messages through 8 buffers: ids are reused, none is lost. */
    int bid, more, ok = 1;
    for (int i = 0; i < 1000 && ok; i++) {
        if (write(sv[1], "abcdefgh", 8) != 8)
            ok = 0;
        int res = next_cqe(&bid, &more);
        if (res != 8 || bid < 0)
            ok = 0;
        else {
            sz_bufring_take(&br, (uint16_t)bid);
            sz_bufring_put(&br, (uint16_t)bid);
        }
        if (!more)
            arm();
    }
    SZ_CHECK(ok);
    SZ_CHECK_INT(sz_bufring_avail(&br), NBUFS);
}

SZ_TEST(double_put_aborts)
{
    pid_t pid = fork();
    if (pid == 0) {
        close(STDERR_FILENO); /* keep the abort message out of the TAP stream */
        sz_bufring_take(&br, 3);
        sz_bufring_put(&br, 3);
        sz_bufring_put(&br, 3); /* must abort */
        _exit(0);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    SZ_CHECK(WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT);
}

int main(void)
{
    int ret = io_uring_queue_init(64, &ring, 0);
    if (ret < 0) {
        printf("1..0 # SKIP io_uring unavailable: %s\n", strerror(-ret));
        return SZ_TEST_SKIP;
    }
    ret = sz_bufring_init(&br, &ring, 1, NBUFS, BSIZE);
    if (ret == -EINVAL || ret == -ENOSYS || ret == -EOPNOTSUPP) {
        printf("1..0 # SKIP provided-buffer rings unavailable: %s\n", strerror(-ret));
        return SZ_TEST_SKIP;
    }
    SZ_CHECK_INT(ret, 0);
    /* Bad sizes are refused. */
    sz_bufring_t bad;
    SZ_CHECK_INT(sz_bufring_init(&bad, &ring, 2, 6, 64), -EINVAL);
    socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
    SZ_RUN(take_and_put_account);
    SZ_RUN(exhaustion_stops_recv_with_enobufs);
    SZ_RUN(every_buffer_cycles_many_times);
    SZ_RUN(double_put_aborts);
    sz_bufring_destroy(&br, &ring);
    io_uring_queue_exit(&ring);
    close(sv[0]);
    close(sv[1]);
    return sz_test_done();
}
