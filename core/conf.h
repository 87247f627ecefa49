/*
 * Node configuration, parsed from YAML (libyaml). Every scalar key is one
 * row of a table in conf.c (name, type, min, max, default, reloadable), so
 * validation happens in one place. The parsed result is immutable: a reload
 * parses a new sz_conf_t and the caller copies the reloadable fields.
 *
 * Errors are one line: "<file>:<line>: <key>: <what is wrong>", e.g.
 *   var/stanzad.yaml:7: listen[1].port: must be between 1 and 65535
 * where <key> is the dotted path of the offending key (list items indexed).
 * <line> is that of the key for unknown or duplicate keys, of the value for
 * bad values, and of the list item for a missing required key or a clash
 * between items. Errors of the YAML syntax itself use the key "yaml". Errors
 * about the file as a whole (cannot open or read it, too large) carry no line
 * and no key: "<file>: <what is wrong>", e.g.
 *   var/stanzad.yaml: cannot open: No such file or directory
 */
#ifndef SZ_CORE_CONF_H
#define SZ_CORE_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Larger config files are refused before parsing. */
#define SZ_CONF_MAX_BYTES (1u << 20)

enum sz_listen_kind {
    SZ_LISTEN_C2S,     /* "c2s": XMPP client streams, STARTTLS per <tls> */
    SZ_LISTEN_C2S_TLS, /* "c2s-tls": XEP-0368 Direct TLS */
    SZ_LISTEN_ADMIN,   /* "admin": HTTP /metrics and /healthz */
    SZ_LISTEN_ECHO,    /* "echo": diagnostic byte echo for runtime tests and benchmarks */
};

enum sz_tls_mode {
    SZ_TLS_STARTTLS_REQUIRED, /* "starttls-required" (default for c2s) */
    SZ_TLS_STARTTLS_OPTIONAL, /* "starttls-optional" */
    SZ_TLS_NONE,              /* "none" */
};

typedef struct sz_conf_host {
    char *domain;   /* required, lowercased */
    char *tls_cert; /* PEM path, may be NULL */
    char *tls_key;  /* PEM path, may be NULL */
    bool register_enabled; /* "register: true|false", XEP-0077, default false */
    int line;
} sz_conf_host_t;

typedef struct sz_conf_listen {
    enum sz_listen_kind kind; /* required */
    char *address;            /* required: IPv4 or IPv6 literal */
    uint16_t port;            /* required: 1..65535 */
    enum sz_tls_mode tls;     /* c2s only; default starttls-required */
    bool plain_without_tls;   /* default false */
    int line;                 /* line of the list item, for later error messages */
} sz_conf_listen_t;

/* How a connection moves to another reactor (node.handoff). */
enum sz_conf_handoff {
    SZ_HANDOFF_INSTALL, /* descriptor install + MSG_RING data (Linux 6.8), else SEND_FD */
    SZ_HANDOFF_SEND_FD, /* always MSG_RING SEND_FD (Linux 6.0) */
};

typedef struct sz_conf {
    char *path; /* file it was read from */

    struct {
        uint32_t reactors;              /* "auto" gives 0: one per online CPU */
        int log_level;                  /* enum sz_log_level; reloadable */
        char *log_file;                 /* NULL = stderr; reopened on SIGHUP */
        uint32_t max_conns_per_reactor; /* "auto" gives 0: RLIMIT_NOFILE - reserve */
        uint32_t recv_buffers;          /* provided buffers per reactor, power of 2, 16..32768, default 512 */
        uint32_t recv_buffer_bytes;     /* bytes per provided buffer, 512..65536, default 4096 */
        uint32_t queue_entries;         /* cross-reactor ring slots per pair, power of 2, 16..1048576, default 4096 */
        uint32_t batch_wait_us;         /* reactor wake-up batching window, 0..100000 µs, default 2000 */
        bool pin_threads;               /* pin reactor i to CPU i, default false */
        int handoff;                    /* enum sz_conf_handoff, default SZ_HANDOFF_INSTALL */
        char *secret;                   /* keys SCRAM answers for unknown users; NULL: random per process */
    } node;

    sz_conf_host_t *hosts; /* at least one unless only admin/echo listeners */
    size_t nhosts;

    sz_conf_listen_t *listens; /* at least one */
    size_t nlistens;

    struct {
        char *backend; /* "sqlite" (only value for now), default "sqlite" */
        char *path;    /* default "var/data/stanzad.db" */
    } storage;

    struct {                         /* all reloadable */
        uint32_t max_stanza_bytes;   /* 1024..16777216, default 262144 */
        uint32_t max_depth;          /* 4..1024, default 64 */
        uint32_t max_attrs;          /* 1..1024, default 64 */
        uint32_t max_output_bytes;   /* per connection, 4096..1073741824, default 1048576 */
        uint32_t admin_timeout_ms;   /* admin HTTP request deadline, 100..600000, default 10000 */
        uint32_t max_unauth_per_source; /* unauthenticated c2s connections per source address (a backstop), default 2000 */
        uint32_t source_rate_per_sec; /* new c2s connections and failed logins per source and second, 0 = no limit, default 100 */
        uint32_t source_burst;       /* ... of which this many at once (token bucket size), default 1000 */
        uint32_t handshake_timeout_ms; /* connect or STARTTLS to stream header answered, 1000..600000, default 10000 */
        uint32_t register_per_source_per_hour; /* XEP-0077 registrations per source address, default 5 */
        uint32_t preauth_timeout_ms; /* connect to resource bound, 1000..600000, default 60000 */
        uint32_t max_unacked_stanzas; /* XEP-0198 queue per stream, 8..1000000, default 500 */
        uint32_t sm_resume_timeout_s; /* XEP-0198 §5: a broken resumable stream's session waits
                                       * this long for <resume/>, 0..86400 (0: no resumption),
                                       * default 300 */
        uint32_t max_roster_items;   /* roster items per account, 1..100000, default 1000 */
        uint32_t max_blocklist_items; /* XEP-0191 blocked JIDs per account, 1..100000, default 1000 */
        uint32_t max_vcard_bytes;    /* XEP-0054 vCard of an account, serialized, default 65536 */
        uint32_t max_private_bytes;  /* XEP-0049 private XML of an account, all namespaces, default 262144 */
        uint32_t max_offline_messages; /* XEP-0160 messages stored per account, 0 = store none, default 1000 */
        uint32_t idle_timeout_ms;    /* bound stream without input, then a ping; 0 = never, default 600000 */
        uint32_t ping_timeout_ms;    /* answer to that ping, 1000..600000, default 60000 */
        uint32_t csi_max_held;       /* XEP-0352: presences held per inactive session, 1..100000, default 256 */
        uint32_t scram_iterations;   /* PBKDF2 iterations of new credentials, default 4096 (not reloadable) */
    } limits;

    struct {
        /* Accept SCRAM tls-unique on TLS 1.3 as OpenSSL-based peers compute
         * it (the client's Finished), though RFC 9266 leaves it undefined
         * there; default true. Not reloadable. */
        bool unique_on_tls13;
        /* Offer SCRAM-SHA-1-PLUS. Off by default: then the SHA-1 family has
         * no channel binding, so a client that limits itself to
         * SCRAM-SHA-1 while able to bind (gs2 flag "y") is accepted, as
         * RFC 5802 §6 allows when the -PLUS variant is not offered.
         * SHA-256 and SHA-512 keep their -PLUS variants and the downgrade
         * check. Not reloadable. */
        bool scram_sha1_plus;
    } tls;
} sz_conf_t;

/**
 * Any thread. Parses <path>. On success returns 0 and stores a new config
 * in *<out> (caller owns it; free with sz_conf_free). On failure returns
 * -EINVAL (or -errno when the file cannot be read) and writes the one-line
 * error into <err> (NUL-terminated, truncated to <errlen>).
 */
int sz_conf_load(const char *path, sz_conf_t **out, char *err, size_t errlen);

/** Same as sz_conf_load, from a memory buffer; <name> is used in messages. */
int sz_conf_parse(const char *name, const char *text, size_t len, sz_conf_t **out, char *err,
                  size_t errlen);

/** Frees <c> and everything it owns. NULL is fine. */
void sz_conf_free(sz_conf_t *c);

/**
 * Main thread, on SIGHUP, after a successful sz_conf_load of the new file
 * into <next>. Moves the reloadable scalar values (node.log_level,
 * node.log_file, limits.*) from <next> into <cur>, which the running node
 * keeps using; <next> receives the replaced values, so free it afterwards as
 * usual. Returns how many non-reloadable scalar keys differ (they keep their
 * current value until restart) and writes their dotted names, comma
 * separated, into <note> when it is not NULL. hosts and listen are not
 * compared: changing them always needs a restart.
 */
int sz_conf_apply_reload(sz_conf_t *cur, sz_conf_t *next, char *note, size_t notelen);

/** Any thread: a reloadable limit of a running config, read atomically
 *  (SIGHUP stores them with atomic stores). */
#define SZ_CONF_LIMIT(c, field) __atomic_load_n(&(c)->limits.field, __ATOMIC_RELAXED)

/** Name of a listener kind as written in YAML ("c2s", "admin", ...). */
const char *sz_conf_kind_name(enum sz_listen_kind k);

/** Any thread. A YAML boolean as this project spells it: true/yes or
 *  false/no. Returns 0 and sets <out>, or -1 for anything else. */
int sz_conf_parse_bool(const char *s, bool *out);

#endif
