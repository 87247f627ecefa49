/*
 * The protocols a listener kind can speak. Each is defined in its own file
 * under net/ and chosen by node.c from the listener's kind.
 */
#ifndef SZ_NET_PROTO_H
#define SZ_NET_PROTO_H

#include "net/conn.h"

/** admin: HTTP/1.x GET /metrics and /healthz (net/admin.c). */
extern const sz_proto_t sz_proto_admin;

/** echo: diagnostic byte echo with "@move N" handoff lines (net/echo.c). */
extern const sz_proto_t sz_proto_echo;

/** Admin request deadline in ms (limits.admin_timeout_ms); any thread. */
extern uint32_t sz_admin_timeout_ms;

#endif
