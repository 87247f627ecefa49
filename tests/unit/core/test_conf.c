/*
 * Unit tests of core/conf.c: defaults, both YAML styles, the shipped
 * configs, one test per error class (asserting file, line and key), file
 * loading, reload, and a mutation sweep that must neither crash nor leak
 * (this binary runs under ASan/LSan).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/conf.h"
#include "core/log.h"
#include "sz_test.h"

static char err[512];

static sz_conf_t *parse(const char *text)
{
    sz_conf_t *c = (sz_conf_t *)1;
    int rc = sz_conf_parse("t.yaml", text, strlen(text), &c, err, sizeof(err));
    if (rc != 0) {
        printf("# unexpected error: %s\n", err);
        SZ_CHECK(c == NULL);
        return NULL;
    }
    return c;
}

/* Parses <text>, expects failure with "t.yaml:<line>: <key>: ..." whose
 * message contains <sub>, on one line. */
static bool err_is(const char *text, int line, const char *key, const char *sub)
{
    sz_conf_t *c = (sz_conf_t *)1;
    int rc = sz_conf_parse("t.yaml", text, strlen(text), &c, err, sizeof(err));
    if (rc != -EINVAL || c != NULL) {
        printf("# expected an error, got rc=%d\n", rc);
        sz_conf_free(c == (sz_conf_t *)1 ? NULL : c);
        return false;
    }
    char want[256];
    snprintf(want, sizeof(want), "t.yaml:%d: %s: ", line, key);
    bool ok = strncmp(err, want, strlen(want)) == 0 && strstr(err + strlen(want), sub) &&
              !strchr(err, '\n');
    if (!ok)
        printf("# got \"%s\", expected \"%s...%s...\"\n", err, want, sub);
    return ok;
}

#define ERR_IS(text, line, key, sub) SZ_CHECK(err_is((text), (line), (key), (sub)))

/* The smallest valid config: one listener that needs no host. */
#define ADMIN "listen:\n  - { kind: admin, address: 127.0.0.1, port: 5280 }\n"

SZ_TEST(defaults)
{
    sz_conf_t *c = parse(ADMIN);
    SZ_CHECK(c != NULL);
    if (!c)
        return;
    SZ_CHECK_STR(c->path, "t.yaml");
    SZ_CHECK_INT(c->node.reactors, 0);
    SZ_CHECK_INT(c->node.log_level, SZ_LOG_INFO);
    SZ_CHECK(c->node.log_file == NULL);
    SZ_CHECK_INT(c->node.max_conns_per_reactor, 0);
    SZ_CHECK_INT(c->node.recv_buffers, 512);
    SZ_CHECK_INT(c->node.recv_buffer_bytes, 4096);
    SZ_CHECK_INT(c->node.queue_entries, 4096);
    SZ_CHECK_INT(c->node.batch_wait_us, 2000);
    SZ_CHECK_INT(c->limits.max_unacked_stanzas, 500);
    SZ_CHECK_INT(c->limits.sm_resume_timeout_s, 300);
    SZ_CHECK_INT(c->limits.idle_timeout_ms, 600000);
    SZ_CHECK_INT(c->limits.ping_timeout_ms, 60000);
    SZ_CHECK(!c->node.pin_threads);
    SZ_CHECK_INT(c->node.handoff, SZ_HANDOFF_INSTALL);
    SZ_CHECK_INT(c->nhosts, 0);
    SZ_CHECK(c->hosts == NULL);
    SZ_CHECK_INT(c->nlistens, 1);
    SZ_CHECK_INT(c->listens[0].kind, SZ_LISTEN_ADMIN);
    SZ_CHECK_STR(c->listens[0].address, "127.0.0.1");
    SZ_CHECK_INT(c->listens[0].port, 5280);
    SZ_CHECK_INT(c->listens[0].line, 2);
    SZ_CHECK(!c->listens[0].plain_without_tls);
    SZ_CHECK_STR(c->storage.backend, "sqlite");
    SZ_CHECK_STR(c->storage.path, "var/data/stanzad.db");
    SZ_CHECK_INT(c->limits.max_stanza_bytes, 262144);
    SZ_CHECK_INT(c->limits.max_depth, 64);
    SZ_CHECK_INT(c->limits.max_attrs, 64);
    SZ_CHECK_INT(c->limits.max_output_bytes, 1048576);
    SZ_CHECK_INT(c->limits.admin_timeout_ms, 10000);
    /* Per-source limits shaped for carrier-grade NAT: a high backstop, a
     * rate with a burst for 1,000 logins, short deadline before the
     * stream header. */
    SZ_CHECK_INT(c->limits.max_unauth_per_source, 2000);
    SZ_CHECK_INT(c->limits.source_rate_per_sec, 100);
    SZ_CHECK_INT(c->limits.source_burst, 1000);
    SZ_CHECK_INT(c->limits.handshake_timeout_ms, 10000);
    SZ_CHECK_INT(c->limits.preauth_timeout_ms, 60000);
    SZ_CHECK(c->tls.unique_on_tls13);
    SZ_CHECK(!c->tls.scram_sha1_plus);
    sz_conf_free(c);
    sz_conf_free(NULL);
}

SZ_TEST(tls_section)
{
    sz_conf_t *c = parse(ADMIN "tls:\n  unique_on_tls13: false\n  scram_sha1_plus: true\n"
                               "limits:\n  source_rate_per_sec: 0\n  source_burst: 1\n"
                               "  handshake_timeout_ms: 1000\n");
    SZ_CHECK(c != NULL);
    if (!c)
        return;
    SZ_CHECK(!c->tls.unique_on_tls13);
    SZ_CHECK(c->tls.scram_sha1_plus);
    SZ_CHECK_INT(c->limits.source_rate_per_sec, 0);
    SZ_CHECK_INT(c->limits.source_burst, 1);
    SZ_CHECK_INT(c->limits.handshake_timeout_ms, 1000);
    sz_conf_free(c);
    ERR_IS(ADMIN "tls:\n  unique_on_tls13: maybe\n", 4, "tls.unique_on_tls13",
           "must be true, false, yes or no");
    ERR_IS(ADMIN "tls:\n  unique: true\n", 4, "tls.unique", "unknown key");
    ERR_IS(ADMIN "limits:\n  source_burst: 0\n", 4, "limits.source_burst", "between 1 and");
    ERR_IS(ADMIN "limits:\n  handshake_timeout_ms: 999\n", 4, "limits.handshake_timeout_ms",
           "between 1000 and 600000");
}

SZ_TEST(block_and_flow)
{
    sz_conf_t *c = parse("node:\n"
                         "  reactors: 4\n"
                         "  log_level: debug\n"
                         "  log_file: var/log/stanzad.log\n"
                         "  max_conns_per_reactor: 20000\n"
                         "  recv_buffers: 1024\n"
                         "  recv_buffer_bytes: 2000\n"
                         "  queue_entries: 16\n"
                         "  batch_wait_us: 1000\n"
                         "  pin_threads: yes\n"
                         "hosts:\n"
                         "  - domain: Example.ORG\n"
                         "    register: true\n"
                         "  - {domain: b.example, tls_cert: b.pem, tls_key: b.key, register: no}\n"
                         "listen:\n"
                         "  - kind: c2s\n"
                         "    address: ::1\n"
                         "    port: 5222\n"
                         "    tls: none\n"
                         "    plain_without_tls: true\n"
                         "  - {kind: c2s, address: '::', port: 5222, tls: starttls-optional}\n"
                         "  - {kind: echo, address: \"0.0.0.0\", port: 7}\n"
                         "storage: {backend: sqlite, path: /tmp/x.db}\n"
                         "limits: {max_stanza_bytes: 1024, max_depth: 1024, max_attrs: 1,\n"
                         "         max_output_bytes: 1073741824, admin_timeout_ms: 100}\n");
    SZ_CHECK(c != NULL);
    if (!c)
        return;
    SZ_CHECK_INT(c->node.reactors, 4);
    SZ_CHECK_INT(c->node.log_level, SZ_LOG_DEBUG);
    SZ_CHECK_STR(c->node.log_file, "var/log/stanzad.log");
    SZ_CHECK_INT(c->node.max_conns_per_reactor, 20000);
    SZ_CHECK_INT(c->node.recv_buffers, 1024);
    SZ_CHECK_INT(c->node.recv_buffer_bytes, 2000);
    SZ_CHECK_INT(c->node.queue_entries, 16);
    SZ_CHECK_INT(c->node.batch_wait_us, 1000);
    SZ_CHECK(c->node.pin_threads);
    SZ_CHECK_INT(c->nhosts, 2);
    SZ_CHECK_STR(c->hosts[0].domain, "example.org");
    SZ_CHECK(c->hosts[0].tls_cert == NULL && c->hosts[0].tls_key == NULL);
    SZ_CHECK(c->hosts[0].register_enabled);
    SZ_CHECK_INT(c->hosts[0].line, 12);
    SZ_CHECK_STR(c->hosts[1].domain, "b.example");
    SZ_CHECK_STR(c->hosts[1].tls_cert, "b.pem");
    SZ_CHECK_STR(c->hosts[1].tls_key, "b.key");
    SZ_CHECK(!c->hosts[1].register_enabled);
    SZ_CHECK_INT(c->hosts[1].line, 14);
    SZ_CHECK_INT(c->nlistens, 3);
    SZ_CHECK_INT(c->listens[0].kind, SZ_LISTEN_C2S);
    SZ_CHECK_STR(c->listens[0].address, "::1");
    SZ_CHECK_INT(c->listens[0].port, 5222);
    SZ_CHECK_INT(c->listens[0].tls, SZ_TLS_NONE);
    SZ_CHECK(c->listens[0].plain_without_tls);
    SZ_CHECK_INT(c->listens[0].line, 16);
    SZ_CHECK_STR(c->listens[1].address, "::");
    SZ_CHECK_INT(c->listens[1].tls, SZ_TLS_STARTTLS_OPTIONAL);
    SZ_CHECK(!c->listens[1].plain_without_tls);
    SZ_CHECK_INT(c->listens[1].line, 21);
    SZ_CHECK_INT(c->listens[2].kind, SZ_LISTEN_ECHO);
    SZ_CHECK_INT(c->listens[2].port, 7);
    SZ_CHECK_STR(c->storage.path, "/tmp/x.db");
    SZ_CHECK_INT(c->limits.max_stanza_bytes, 1024);
    SZ_CHECK_INT(c->limits.max_depth, 1024);
    SZ_CHECK_INT(c->limits.max_attrs, 1);
    SZ_CHECK_INT(c->limits.max_output_bytes, 1073741824);
    SZ_CHECK_INT(c->limits.admin_timeout_ms, 100);
    sz_conf_free(c);

    /* Empty sections take the defaults; c2s defaults to starttls-required. */
    c = parse("node:\nlimits: ~\nhosts:\n  - domain: a\n"
              "listen:\n  - {kind: c2s, address: 10.0.0.1, port: 1}\n");
    SZ_CHECK(c != NULL);
    if (c) {
        SZ_CHECK_INT(c->listens[0].tls, SZ_TLS_STARTTLS_REQUIRED);
        SZ_CHECK_INT(c->limits.max_depth, 64);
        sz_conf_free(c);
    }
}

static sz_conf_t *load_source(const char *rel)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", SZ_SOURCE_ROOT, rel);
    sz_conf_t *c = NULL;
    int rc = sz_conf_load(path, &c, err, sizeof(err));
    if (rc != 0)
        printf("# %s: %s\n", rel, err);
    SZ_CHECK_INT(rc, 0);
    return c;
}

SZ_TEST(dev_config)
{
    sz_conf_t *c = load_source("deploy/stanzad.dev.yaml");
    if (!c)
        return;
    SZ_CHECK(strstr(c->path, "deploy/stanzad.dev.yaml") != NULL);
    SZ_CHECK_INT(c->node.reactors, 0);
    SZ_CHECK_INT(c->node.log_level, SZ_LOG_INFO);
    SZ_CHECK_INT(c->nhosts, 1);
    SZ_CHECK_STR(c->hosts[0].domain, "localhost");
    SZ_CHECK_STR(c->hosts[0].tls_cert, "var/tls/localhost.pem");
    SZ_CHECK_STR(c->hosts[0].tls_key, "var/tls/localhost.key");
    SZ_CHECK(!c->hosts[0].register_enabled);
    SZ_CHECK_INT(c->nlistens, 3);
    SZ_CHECK_INT(c->listens[0].kind, SZ_LISTEN_C2S);
    SZ_CHECK_INT(c->listens[0].tls, SZ_TLS_STARTTLS_REQUIRED);
    SZ_CHECK_INT(c->listens[0].port, 5222);
    SZ_CHECK_INT(c->listens[1].kind, SZ_LISTEN_C2S_TLS);
    SZ_CHECK_INT(c->listens[1].port, 5223);
    SZ_CHECK_INT(c->listens[2].kind, SZ_LISTEN_ADMIN);
    SZ_CHECK_STR(c->listens[2].address, "127.0.0.1");
    SZ_CHECK_INT(c->listens[2].port, 5280);
    SZ_CHECK_STR(c->storage.backend, "sqlite");
    SZ_CHECK_STR(c->storage.path, "var/data/stanzad.db");
    SZ_CHECK_INT(c->limits.max_stanza_bytes, 262144);
    sz_conf_free(c);
}

SZ_TEST(example_config)
{
    sz_conf_t *c = load_source("deploy/stanzad.example.yaml");
    if (!c)
        return;
    SZ_CHECK_INT(c->node.reactors, 0);
    SZ_CHECK_INT(c->node.log_level, SZ_LOG_INFO);
    SZ_CHECK(c->node.log_file == NULL);
    SZ_CHECK_INT(c->node.max_conns_per_reactor, 0);
    SZ_CHECK_INT(c->node.recv_buffers, 512);
    SZ_CHECK_INT(c->node.recv_buffer_bytes, 4096);
    SZ_CHECK_INT(c->node.queue_entries, 4096);
    SZ_CHECK(!c->node.pin_threads);
    SZ_CHECK_INT(c->nhosts, 2);
    SZ_CHECK_STR(c->hosts[0].domain, "example.org");
    SZ_CHECK(!c->hosts[0].register_enabled);
    SZ_CHECK_STR(c->hosts[1].domain, "chat.example.org");
    SZ_CHECK(c->hosts[1].register_enabled);
    SZ_CHECK(c->hosts[1].tls_key != NULL);
    SZ_CHECK_INT(c->nlistens, 4);
    SZ_CHECK_INT(c->listens[0].kind, SZ_LISTEN_C2S);
    SZ_CHECK_STR(c->listens[0].address, "::");
    SZ_CHECK_INT(c->listens[1].kind, SZ_LISTEN_C2S_TLS);
    SZ_CHECK_INT(c->listens[2].kind, SZ_LISTEN_ADMIN);
    SZ_CHECK_INT(c->listens[3].kind, SZ_LISTEN_ECHO);
    SZ_CHECK_STR(c->storage.path, "/var/lib/stanzad/stanzad.db");
    SZ_CHECK_INT(c->limits.max_stanza_bytes, 262144);
    SZ_CHECK_INT(c->limits.max_depth, 64);
    SZ_CHECK_INT(c->limits.max_attrs, 64);
    SZ_CHECK_INT(c->limits.max_output_bytes, 1048576);
    SZ_CHECK_INT(c->limits.admin_timeout_ms, 10000);
    sz_conf_free(c);
}

SZ_TEST(err_yaml_syntax)
{
    /* Events are checked as they come, so the first problem in the file is
     * reported, whether of syntax or of content. */
    ERR_IS(ADMIN "node:\n  reactors: 1\n log_level: info\n", 5, "yaml", "");
    ERR_IS("listen:\n  - {kind: admin, address: 127.0.0.1, port: 1]\n", 2, "yaml",
           "while parsing a flow mapping started on line 2");
    ERR_IS(ADMIN "node:\n  log_file: \"abc\n", 5, "yaml",
           "(while scanning a quoted scalar started on line 4)");
    ERR_IS(ADMIN "node:\n  reactors: [1, 2\n", 4, "node.reactors", "not a list");
    ERR_IS("node:\n\treactors: 1\n", 2, "yaml", "");
    /* Invalid UTF-8: the reader reports a byte offset, turned into a line. */
    ERR_IS("node:\n  log_file: a\n  log_level: \xff\n", 3, "yaml", "");
    ERR_IS(ADMIN "---\nnode:\n", 3, "yaml", "only one document");
    ERR_IS("node: &n {reactors: 1}\nlimits: *n\n", 2, "yaml", "aliases");
}

SZ_TEST(err_top_level)
{
    ERR_IS("", 1, "yaml", "empty");
    ERR_IS("# only a comment\n\n", 1, "yaml", "empty");
    ERR_IS("---\n", 1, "yaml", "empty");
    ERR_IS("\n\n- a\n- b\n", 3, "yaml", "mapping");
    ERR_IS("hello\n", 1, "yaml", "mapping");
    ERR_IS(ADMIN "nodes:\n  reactors: 1\n", 3, "nodes", "unknown section");
    ERR_IS(ADMIN "? [a]\n: 1\n", 3, "yaml", "keys must be");
    ERR_IS(ADMIN "node: {}\nnode: {}\n", 4, "node", "duplicate key");
}

SZ_TEST(err_keys)
{
    ERR_IS(ADMIN "node:\n  reactors: 2\n  reactor: 2\n", 5, "node.reactor", "unknown key");
    ERR_IS(ADMIN "limits:\n  max_depth: 8\n  max_depth: 9\n", 5, "limits.max_depth",
           "duplicate key");
    ERR_IS("listen:\n  - kind: admin\n    address: 127.0.0.1\n    port: 1\n    color: red\n", 5,
           "listen[0].color", "unknown key");
    ERR_IS(ADMIN "hosts:\n  - {domain: a}\n  - {domain: b, regster: true}\n", 5, "hosts[1].regster",
           "unknown key");
    ERR_IS("listen:\n  - {kind: admin, address: 127.0.0.1, port: 1, port: 2}\n", 2,
           "listen[0].port", "duplicate key");
    /* Quoted keys may hold control characters: the message stays one line. */
    ERR_IS(ADMIN "node:\n  \"a\\nb\": 1\n", 4, "node.a?b", "unknown key");
    ERR_IS(ADMIN "node:\n  \"reactors\\0\": 1\n", 4, "node.reactors", "unknown key");
}

SZ_TEST(err_types)
{
    ERR_IS(ADMIN "node:\n  reactors:\n    a: 1\n", 5, "node.reactors", "not a mapping");
    ERR_IS(ADMIN "node:\n  reactors: [1]\n", 4, "node.reactors", "not a list");
    ERR_IS(ADMIN "node: 5\n", 3, "node", "must be a mapping");
    ERR_IS(ADMIN "limits: [1]\n", 3, "limits", "must be a mapping");
    ERR_IS("listen: 127.0.0.1\n", 1, "listen", "must be a list");
    ERR_IS(ADMIN "hosts:\n  domain: a\n", 4, "hosts", "must be a list");
    ERR_IS("listen:\n  - admin\n", 2, "listen[0]", "must be a mapping");
    ERR_IS(ADMIN "hosts:\n  - {domain: a}\n  - [b]\n", 5, "hosts[1]", "must be a mapping");
    ERR_IS(ADMIN "storage:\n  path: {a: b}\n", 4, "storage.path", "not a mapping");
}

SZ_TEST(err_numbers)
{
    ERR_IS(ADMIN "node:\n  reactors: four\n", 4, "node.reactors", "auto or a number");
    ERR_IS(ADMIN "node:\n  recv_buffer_bytes: 0x1000\n", 4, "node.recv_buffer_bytes",
           "must be a number between 512 and 65536");
    ERR_IS(ADMIN "node:\n  recv_buffer_bytes: -1\n", 4, "node.recv_buffer_bytes", "number");
    ERR_IS(ADMIN "node:\n  recv_buffer_bytes:\n", 4, "node.recv_buffer_bytes", "number");
    ERR_IS(ADMIN "node:\n  recv_buffer_bytes: 4e3\n", 4, "node.recv_buffer_bytes", "number");
    ERR_IS(ADMIN "node:\n  reactors: 0\n", 4, "node.reactors", "between 1 and 1024");
    ERR_IS(ADMIN "node:\n  reactors: 1025\n", 4, "node.reactors", "between 1 and 1024");
    ERR_IS(ADMIN "limits:\n\n  max_depth: 3\n", 5, "limits.max_depth", "between 4 and 1024");
    ERR_IS(ADMIN "limits:\n  max_output_bytes: 99999999999999999999999\n", 4,
           "limits.max_output_bytes", "between 4096 and 1073741824");
    ERR_IS("listen:\n  - kind: admin\n    address: 127.0.0.1\n    port: 65536\n", 4,
           "listen[0].port", "must be between 1 and 65535");
    ERR_IS("listen:\n  - {kind: admin, address: 127.0.0.1, port: 0}\n", 2, "listen[0].port",
           "must be between 1 and 65535");
    ERR_IS(ADMIN "node:\n  max_conns_per_reactor: 15\n", 4, "node.max_conns_per_reactor",
           "between 16");
    ERR_IS(ADMIN "limits:\n  idle_timeout_ms: 86400001\n", 4, "limits.idle_timeout_ms",
           "between 0 and 86400000");
    ERR_IS(ADMIN "limits:\n  ping_timeout_ms: 999\n", 4, "limits.ping_timeout_ms",
           "between 1000 and 600000");
    /* "auto" only where the row allows it. */
    ERR_IS(ADMIN "node:\n  queue_entries: auto\n", 4, "node.queue_entries", "number");
}

SZ_TEST(err_pow2)
{
    ERR_IS(ADMIN "node:\n  recv_buffers: 1000\n", 4, "node.recv_buffers", "power of two");
    ERR_IS(ADMIN "node:\n  queue_entries: 4097\n", 4, "node.queue_entries", "power of two");
    /* The range is checked before the power of two. */
    ERR_IS(ADMIN "node:\n  queue_entries: 8\n", 4, "node.queue_entries", "between 16");
    ERR_IS(ADMIN "node:\n  batch_wait_us: 100001\n", 4, "node.batch_wait_us", "between 0");
    sz_conf_t *c = parse(ADMIN "node:\n  recv_buffers: 32768\n  queue_entries: 1048576\n");
    SZ_CHECK(c && c->node.recv_buffers == 32768 && c->node.queue_entries == 1048576);
    sz_conf_free(c);
}

SZ_TEST(err_bool_enum)
{
    ERR_IS(ADMIN "node:\n  pin_threads: on\n", 4, "node.pin_threads",
           "must be true, false, yes or no");
    ERR_IS(ADMIN "node:\n  pin_threads: True\n", 4, "node.pin_threads", "true, false");
    ERR_IS(ADMIN "node:\n  handoff: sendfd\n", 4, "node.handoff", "install or send_fd");
    sz_conf_t *c = parse(ADMIN "node:\n  handoff: send_fd\n");
    SZ_CHECK(c && c->node.handoff == SZ_HANDOFF_SEND_FD);
    sz_conf_free(c);
    ERR_IS(ADMIN "hosts:\n  - {domain: a, register: 1}\n", 4, "hosts[0].register", "true");
    ERR_IS(ADMIN "node:\n  log_level: verbose\n", 4, "node.log_level",
           "unknown value \"verbose\" (expected debug, info, warn or error)");
    ERR_IS("listen:\n  - {kind: s2s, address: 127.0.0.1, port: 5269}\n", 2, "listen[0].kind",
           "unknown value \"s2s\"");
    ERR_IS("hosts: [{domain: a}]\nlisten:\n  - kind: c2s\n    address: 127.0.0.1\n"
           "    port: 5222\n    tls: required\n",
           6, "listen[0].tls", "unknown value \"required\"");
    ERR_IS(ADMIN "storage:\n  backend: redis\n", 4, "storage.backend", "expected sqlite");
}

SZ_TEST(err_required)
{
    ERR_IS("listen:\n  - kind: admin\n    address: 127.0.0.1\n", 2, "listen[0].port",
           "required key is missing");
    ERR_IS(ADMIN "listen2: 1\n", 3, "listen2", "unknown section");
    ERR_IS("listen:\n  - {kind: admin, address: 127.0.0.1, port: 1}\n\n  - {port: 2}\n", 4,
           "listen[1].kind", "required");
    ERR_IS("listen:\n  - {kind: echo, port: 2}\n", 2, "listen[0].address", "required");
    ERR_IS(ADMIN "hosts:\n  - register: true\n", 4, "hosts[0].domain", "required");
    ERR_IS(ADMIN "storage:\n  path: \"\"\n", 4, "storage.path", "must not be empty");
    ERR_IS(ADMIN "storage:\n  path:\n", 4, "storage.path", "must not be empty");
}

/* Served domains are stored prepared (RFC 7622 §3.2), as the router
 * compares them, up to the longest domainpart. */
SZ_TEST(domain_prepared)
{
    sz_conf_t *c = parse(ADMIN "hosts:\n  - domain: \"Chat.Example.ORG.\"\n");
    SZ_CHECK(c != NULL);
    if (c)
        SZ_CHECK_STR(c->hosts[0].domain, "chat.example.org");
    sz_conf_free(c);
    char text[2048], label[64];
    memset(label, 'a', 63);
    label[63] = '\0';
    int n = snprintf(text, sizeof(text), ADMIN "hosts:\n  - domain: ");
    for (int i = 0; i < 15; i++)
        n += snprintf(text + n, sizeof(text) - (size_t)n, "%s%s", i ? "." : "", label);
    snprintf(text + n, sizeof(text) - (size_t)n, "\n");
    c = parse(text);
    SZ_CHECK(c != NULL);
    if (c)
        SZ_CHECK_INT(strlen(c->hosts[0].domain), 15 * 64 - 1);
    sz_conf_free(c);
}

SZ_TEST(err_address)
{
    ERR_IS("listen:\n  - {kind: admin, address: localhost, port: 1}\n", 2, "listen[0].address",
           "not an IPv4 or IPv6 address");
    ERR_IS("listen:\n  - {kind: admin, address: 127.0.0.256, port: 1}\n", 2, "listen[0].address",
           "IPv4 or IPv6");
    ERR_IS("listen:\n  - {kind: admin, address: \"[::1]\", port: 1}\n", 2, "listen[0].address",
           "IPv4 or IPv6");
    ERR_IS("listen:\n  - {kind: admin, address: \"1::2::3\", port: 1}\n", 2, "listen[0].address",
           "IPv4 or IPv6");
    ERR_IS(ADMIN "hosts:\n  - domain: a@b\n", 4, "hosts[0].domain", "not a valid domain");
    ERR_IS(ADMIN "hosts:\n  - domain: \"a..b\"\n", 4, "hosts[0].domain", "not a valid domain");
    /* Served domains go verbatim into XML: only real domainparts. */
    ERR_IS(ADMIN "hosts:\n  - domain: \"a'b.example\"\n", 4, "hosts[0].domain",
           "not a valid domain");
    ERR_IS(ADMIN "hosts:\n  - domain: \"a<b.example\"\n", 4, "hosts[0].domain",
           "not a valid domain");
    ERR_IS(ADMIN "hosts:\n  - domain: \"a&amp;b\"\n", 4, "hosts[0].domain", "not a valid domain");
}

SZ_TEST(err_listeners)
{
    ERR_IS("listen: []\n", 1, "listen", "at least one listener");
    ERR_IS("node: {}\nlisten:\n", 2, "listen", "at least one listener");
    ERR_IS("node:\n  reactors: 2\n", 1, "listen", "at least one listener");
    ERR_IS("listen:\n  - {kind: admin, address: 127.0.0.1, port: 1}\n"
           "  - {kind: echo, address: 127.0.0.1, port: 2}\n"
           "  - {kind: echo, address: 127.0.0.1, port: 1}\n",
           4, "listen[2]", "same address and port as listen[0] (line 2)");
    /* Same address written two ways. */
    ERR_IS("listen:\n  - {kind: admin, address: \"::1\", port: 1}\n"
           "  - {kind: echo, address: \"0:0:0:0:0:0:0:1\", port: 1}\n",
           3, "listen[1]", "listen[0]");
    /* tls and plain_without_tls are c2s settings. */
    ERR_IS("listen:\n  - kind: admin\n    address: 127.0.0.1\n    port: 1\n    tls: none\n", 5,
           "listen[0].tls", "only for c2s listeners");
    ERR_IS("listen:\n  - {tls: none, kind: echo, address: 127.0.0.1, port: 1}\n", 2,
           "listen[0].tls", "only for c2s listeners");
    ERR_IS("hosts: [{domain: a, tls_cert: c, tls_key: k}]\n"
           "listen:\n  - kind: c2s-tls\n    address: 127.0.0.1\n    port: 1\n"
           "    plain_without_tls: true\n",
           6, "listen[0].plain_without_tls", "only for c2s listeners");
    sz_conf_t *c = parse("listen:\n  - {kind: admin, address: 127.0.0.1, port: 1}\n"
                         "  - {kind: echo, address: 127.0.0.2, port: 1}\n"
                         "  - {kind: echo, address: \"::1\", port: 1}\n");
    SZ_CHECK(c && c->nlistens == 3);
    sz_conf_free(c);
}

SZ_TEST(err_hosts)
{
    ERR_IS("listen:\n  - {kind: admin, address: 127.0.0.1, port: 1}\n"
           "  - {kind: c2s, address: 127.0.0.1, port: 2}\n",
           3, "hosts", "at least one host is required by the c2s listener listen[1]");
    ERR_IS("hosts: []\nlisten:\n  - {kind: c2s-tls, address: 127.0.0.1, port: 2}\n", 1, "hosts",
           "c2s-tls listener listen[0]");
    ERR_IS("hosts:\n  - domain: a\n    tls_cert: a.pem\n    tls_key: a.key\n  - domain: b\n"
           "listen:\n  - {kind: c2s-tls, address: 127.0.0.1, port: 5223}\n",
           5, "hosts[1]", "tls_cert and tls_key are required by the c2s-tls listener listen[0]");
    ERR_IS("hosts:\n  - domain: a\n    tls_cert: a.pem\n"
           "listen:\n  - {kind: admin, address: 127.0.0.1, port: 1}\n",
           2, "hosts[0]", "given together");
    ERR_IS("hosts:\n  - domain: example.org\n  - domain: EXAMPLE.org\n"
           "listen:\n  - {kind: admin, address: 127.0.0.1, port: 1}\n",
           3, "hosts[1].domain", "same domain as hosts[0]");
    /* Without c2s-tls a host may lack a certificate. */
    sz_conf_t *c = parse("hosts: [{domain: a}, {domain: b, tls_cert: ~, tls_key: null}]\n"
                         "listen:\n  - {kind: c2s, address: 127.0.0.1, port: 2}\n");
    SZ_CHECK(c && c->nhosts == 2 && !c->hosts[1].tls_cert && !c->hosts[1].tls_key);
    sz_conf_free(c);
}

static char tmpdir[256];

static void write_file(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "w");
    SZ_CHECK(f != NULL);
    if (!f)
        return;
    SZ_CHECK(fwrite(text, 1, len, f) == len);
    fclose(f);
}

SZ_TEST(load_files)
{
    char path[512];
    sz_conf_t *c = (sz_conf_t *)1;

    snprintf(path, sizeof(path), "%s/ok.yaml", tmpdir);
    write_file(path, ADMIN, strlen(ADMIN));
    SZ_CHECK_INT(sz_conf_load(path, &c, err, sizeof(err)), 0);
    SZ_CHECK(c && c->nlistens == 1 && !strcmp(c->path, path));
    sz_conf_free(c);

    /* Errors in a file name the file. */
    snprintf(path, sizeof(path), "%s/bad.yaml", tmpdir);
    write_file(path, ADMIN "node:\n  reactors: x\n", strlen(ADMIN "node:\n  reactors: x\n"));
    SZ_CHECK_INT(sz_conf_load(path, &c, err, sizeof(err)), -EINVAL);
    SZ_CHECK(c == NULL);
    char want[600];
    snprintf(want, sizeof(want), "%s:4: node.reactors: ", path);
    SZ_CHECK(strncmp(err, want, strlen(want)) == 0);

    /* Missing file: "<file>: <message>" with strerror, and -errno. */
    snprintf(path, sizeof(path), "%s/missing.yaml", tmpdir);
    c = (sz_conf_t *)1;
    SZ_CHECK_INT(sz_conf_load(path, &c, err, sizeof(err)), -ENOENT);
    SZ_CHECK(c == NULL);
    snprintf(want, sizeof(want), "%s: cannot open: No such file or directory", path);
    SZ_CHECK_STR(err, want);

    /* A directory opens but cannot be read. */
    SZ_CHECK_INT(sz_conf_load(tmpdir, &c, err, sizeof(err)), -EISDIR);
    SZ_CHECK(strstr(err, "cannot read") != NULL);

    /* Exactly at the cap is parsed; one byte more is refused unread. */
    size_t big = SZ_CONF_MAX_BYTES;
    char *text = malloc(big + 1);
    memset(text, ' ', big + 1);
    memcpy(text, ADMIN, strlen(ADMIN));
    text[big - 1] = '\n';
    snprintf(path, sizeof(path), "%s/big.yaml", tmpdir);
    write_file(path, text, big);
    SZ_CHECK_INT(sz_conf_load(path, &c, err, sizeof(err)), 0);
    sz_conf_free(c);
    write_file(path, text, big + 1);
    SZ_CHECK_INT(sz_conf_load(path, &c, err, sizeof(err)), -EINVAL);
    SZ_CHECK(c == NULL);
    snprintf(want, sizeof(want), "%s: larger than 1048576 bytes", path);
    SZ_CHECK(strncmp(err, want, strlen(want)) == 0);
    SZ_CHECK_INT(sz_conf_parse("m", text, big + 1, &c, err, sizeof(err)), -EINVAL);
    SZ_CHECK(strncmp(err, "m: larger than", 14) == 0);
    free(text);

    /* A truncated error buffer is still NUL-terminated. */
    char small[8];
    SZ_CHECK_INT(sz_conf_parse("t.yaml", "x: 1\n", 5, &c, small, sizeof(small)), -EINVAL);
    SZ_CHECK_STR(small, "t.yaml:");
    SZ_CHECK_INT(sz_conf_parse("t.yaml", "x: 1\n", 5, &c, NULL, 0), -EINVAL);
}

SZ_TEST(reload)
{
    sz_conf_t *cur = parse(ADMIN "node:\n  reactors: 2\n  log_level: info\n");
    sz_conf_t *next = parse(ADMIN "node:\n  reactors: 3\n  log_level: debug\n"
                                  "  log_file: var/log/x.log\n  pin_threads: true\n"
                                  "limits:\n  max_depth: 8\n");
    SZ_CHECK(cur && next);
    if (!cur || !next) {
        sz_conf_free(cur);
        sz_conf_free(next);
        return;
    }
    char note[128];
    SZ_CHECK_INT(sz_conf_apply_reload(cur, next, note, sizeof(note)), 2);
    SZ_CHECK_STR(note, "node.reactors, node.pin_threads");
    SZ_CHECK_INT(cur->node.log_level, SZ_LOG_DEBUG);
    SZ_CHECK_STR(cur->node.log_file, "var/log/x.log");
    SZ_CHECK_INT(cur->limits.max_depth, 8);
    SZ_CHECK_INT(cur->node.reactors, 2);
    SZ_CHECK(!cur->node.pin_threads);
    SZ_CHECK(next->node.log_file == NULL);
    sz_conf_free(next);
    /* Nothing differs the second time. */
    next = parse(ADMIN "node:\n  reactors: 2\n  log_level: debug\n"
                       "  log_file: var/log/x.log\nlimits:\n  max_depth: 8\n");
    SZ_CHECK_INT(sz_conf_apply_reload(cur, next, NULL, 0), 0);
    sz_conf_free(next);
    sz_conf_free(cur);
}

SZ_TEST(kind_names)
{
    SZ_CHECK_STR(sz_conf_kind_name(SZ_LISTEN_C2S), "c2s");
    SZ_CHECK_STR(sz_conf_kind_name(SZ_LISTEN_C2S_TLS), "c2s-tls");
    SZ_CHECK_STR(sz_conf_kind_name(SZ_LISTEN_ADMIN), "admin");
    SZ_CHECK_STR(sz_conf_kind_name(SZ_LISTEN_ECHO), "echo");
    SZ_CHECK_STR(sz_conf_kind_name((enum sz_listen_kind)99), "unknown");
}

/* A result must be a config or one error line naming the input. */
static void parse_any(const char *text, size_t len, const char *what)
{
    sz_conf_t *c = NULL;
    err[0] = '\0';
    int rc = sz_conf_parse("f.yaml", text, len, &c, err, sizeof(err));
    bool ok = rc == 0
                  ? c != NULL
                  : rc == -EINVAL && c == NULL && !strncmp(err, "f.yaml:", 7) && !strchr(err, '\n');
    if (!ok) {
        printf("# %s: rc=%d err=\"%s\"\n", what, rc, err);
        sz_t_cur_failed = 1;
    }
    sz_conf_free(c);
}

static char *read_source(const char *rel, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", SZ_SOURCE_ROOT, rel);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 16);
    *len = fread(buf, 1, (1 << 16) - 1, f);
    fclose(f);
    return buf;
}

SZ_TEST(hostile_inputs)
{
    /* Deep nesting stops at the first level that cannot be a config. */
    size_t n = 200000;
    char *deep = malloc(n + 16);
    memcpy(deep, "node: ", 6);
    memset(deep + 6, '[', n);
    parse_any(deep, n + 6, "deep flow");
    for (size_t i = 0; i < n; i++)
        deep[i] = (i % 2) ? ' ' : '-';
    parse_any(deep, n, "deep block");
    free(deep);

    const char *odd[] = {
        "\xef\xbb\xbf" ADMIN,
        "%YAML 1.1\n---\n" ADMIN "...\n",
        "!!map {listen: [{kind: admin, address: 127.0.0.1, port: !!int 1}]}\n",
        "{",
        "\"",
        "? \n",
        ":\n",
        "- - -\n",
        "listen: [{}]\n",
        "listen: [[]]\n",
        "listen: [~]\n",
        "hosts: [[{}]]\n",
        "node: {reactors: {a: [1]}}\n",
        "listen: &a [ *a ]\n",
        "&x node: 1\n",
        "node: |\n  text\n",
        "\x01\x02\x03",
        "\xff\xfe"
        "a\0b\0",
    };
    for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++)
        parse_any(odd[i], strlen(odd[i]), odd[i]);
    parse_any("a\0b: 1\n", 7, "NUL in input");
    parse_any(NULL, 0, "NULL text");

    /* Every prefix of a real config, then random byte edits of it. */
    size_t len = 0;
    char *text = read_source("deploy/stanzad.example.yaml", &len);
    SZ_CHECK(text != NULL);
    if (!text)
        return;
    for (size_t i = 0; i <= len; i += 7)
        parse_any(text, i, "prefix");
    static const char alphabet[] = "-:[]{}#&*!|>'\"%@`,?\n \t0a\xc3\xff";
    uint32_t seed = 12345;
    char *copy = malloc(len);
    for (int round = 0; round < 1500; round++) {
        memcpy(copy, text, len);
        for (int edits = 0; edits < 1 + round % 4; edits++) {
            seed = seed * 1103515245u + 12345u;
            size_t at = (seed >> 8) % len;
            seed = seed * 1103515245u + 12345u;
            copy[at] = alphabet[(seed >> 8) % (sizeof(alphabet) - 1)];
        }
        parse_any(copy, len, "mutation");
        if (sz_t_cur_failed)
            break;
    }
    free(copy);
    free(text);
}

int main(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/sz-test-conf-XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    SZ_RUN(defaults);
    SZ_RUN(tls_section);
    SZ_RUN(block_and_flow);
    SZ_RUN(dev_config);
    SZ_RUN(example_config);
    SZ_RUN(err_yaml_syntax);
    SZ_RUN(err_top_level);
    SZ_RUN(err_keys);
    SZ_RUN(err_types);
    SZ_RUN(err_numbers);
    SZ_RUN(err_pow2);
    SZ_RUN(err_bool_enum);
    SZ_RUN(err_required);
    SZ_RUN(domain_prepared);
    SZ_RUN(err_address);
    SZ_RUN(err_listeners);
    SZ_RUN(err_hosts);
    SZ_RUN(load_files);
    SZ_RUN(reload);
    SZ_RUN(kind_names);
    SZ_RUN(hostile_inputs);

    const char *names[] = {"ok.yaml", "bad.yaml", "big.yaml"};
    for (size_t i = 0; i < 3; i++) {
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", tmpdir, names[i]);
        unlink(path);
    }
    rmdir(tmpdir);
    return sz_test_done();
}
