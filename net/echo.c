/*
 * The echo protocol (listener kind "echo"): every byte received is sent
 * back, in order.
 * A line that is exactly "@move N" additionally hands the connection to
 * reactor N (mod the reactor count) after echoing it. Tests and benchmarks
 * use it to drive the runtime: queues, output path, handoff under load.
 */
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/mem.h"
#include "net/proto.h"

#define CMD_MAX 15

/* 16 bytes per echo connection: the line-start flag and a partial
 * "@move N" command split across receives. */
struct echo_state {
    uint8_t mid_line; /* not at the start of a line */
    uint8_t len;      /* bytes in cmd; CMD_MAX+1 means "not a command" */
    char cmd[CMD_MAX - 1];
};

static void echo_open(sz_conn_t *c)
{
    c->pstate = sz_calloc(1, sizeof(struct echo_state));
}

static void run_cmd(sz_conn_t *c, const char *cmd, size_t len)
{
    if (len < 7 || memcmp(cmd, "@move ", 6) != 0)
        return;
    unsigned long dst = 0;
    for (size_t i = 6; i < len; i++) {
        if (cmd[i] < '0' || cmd[i] > '9')
            return;
        dst = dst * 10 + (unsigned long)(cmd[i] - '0');
    }
    sz_reactor_t *r = sz_conn_reactor(c);
    dst %= r->n;
    if (dst != r->id)
        sz_conn_move(c, (unsigned)dst); /* -EBUSY while already moving: keep the first */
}

static void echo_data(sz_conn_t *c, const char *p, size_t n)
{
    if (sz_conn_send(c, p, n) < 0) {
        /* The peer does not read its echo: the output cap is reached. */
        SZ_STAT_ADD(&sz_conn_reactor(c)->stats, output_overflow, 1);
        sz_conn_close(c, false);
        return;
    }
    struct echo_state *st = c->pstate;
    for (size_t i = 0; i < n; i++) {
        char ch = p[i];
        if (ch == '\n') {
            if (st->len > 0 && st->len < CMD_MAX - 1)
                run_cmd(c, st->cmd, st->len);
            st->mid_line = 0;
            st->len = 0;
            continue;
        }
        if (!st->mid_line) {
            st->mid_line = 1;
            st->len = ch == '@' ? 0 : CMD_MAX + 1;
            if (ch != '@')
                continue;
        }
        if (st->len < CMD_MAX - 1)
            st->cmd[st->len++] = ch;
        else
            st->len = CMD_MAX + 1; /* too long to be a command */
    }
}

static void echo_close(sz_conn_t *c)
{
    sz_free(c->pstate);
    c->pstate = NULL;
}

const sz_proto_t sz_proto_echo = {
    .name = "echo",
    .on_open = echo_open,
    .on_data = echo_data,
    .on_close = echo_close,
};
