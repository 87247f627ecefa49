/* Unit tests for bench/stanza_bench/scenario.c: good files fill the run
 * configuration (and keep the defaults of absent keys); each bad file
 * gives exactly one error "<file>:<line>: <key>: <message>" naming the
 * line of the first problem, for every class of error (YAML syntax,
 * unknown key, wrong type, out of range, unknown scenario, missing
 * required key, key of another scenario, duplicate, relations between
 * values); the shipped examples in bench/scenarios/ parse. */
#include "bench/stanza_bench/scenario.c"

#include "sz_test.h"

static sb_conf_t cf;
static unsigned procs;
static char err[512];

static void defaults(void)
{
    memset(&cf, 0, sizeof(cf));
    cf.domain = "localhost";
    cf.users = 100;
    cf.first = 1;
    cf.threads = 1;
    cf.login_rate = 100;
    cf.msg_rate = 100;
    cf.msg_size = 64;
    cf.resources = 1;
    cf.bufs = 256;
    cf.server.sin_port = htons(5222);
    procs = 1;
}

static int parse(const char *text)
{
    defaults();
    return sb_scenario_parse("s.yaml", text, strlen(text), &cf, &procs, err, sizeof(err));
}

/* <text> must fail with exactly <want> as its message. */
static void bad(const char *text, const char *want, int line)
{
    int rc = parse(text);
    if (rc != -EINVAL || strcmp(err, want) != 0)
        printf("# line %d: rc %d, got \"%s\"\n#          want \"%s\"\n", line, rc, err, want);
    SZ_CHECK_INT(rc, -EINVAL);
    SZ_CHECK_STR(err, want);
    SZ_CHECK(strchr(err, '\n') == NULL); /* one line */
}
#define BAD(text, want) bad(text, want, __LINE__)

SZ_TEST(full_one2one_file)
{
    SZ_CHECK_INT(parse("# a comment\n"
                       "scenario: one2one\n"
                       "description: \"pairs\"\n"
                       "server: 10.1.2.3\n"
                       "port: 25222\n"
                       "domain: example.org\n"
                       "tls: none\n"
                       "users: 1000\n"
                       "first: 5\n"
                       "user_pattern: u{N}\n"
                       "pass_pattern: 'p{N}'\n"
                       "resource: r\n"
                       "mechanism: PLAIN\n"
                       "sm: true\n"
                       "login_rate: 250.5\n"
                       "login_timeout: 12\n"
                       "duration: 3.5\n"
                       "msg_rate: 5000\n"
                       "msg_size: 128\n"
                       "loss_timeout: 2\n"
                       "threads: 2\n"
                       "procs: 4\n"
                       "src: 127.0.0.2-127.0.0.9\n"
                       "bufs: 512\n"
                       "buf_size: 8192\n"
                       "tick_us: 1000\n"
                       "lazy_recv: true\n"),
                 0);
    SZ_CHECK_STR(err, "");
    SZ_CHECK_INT(cf.scenario, SB_SC_ONE2ONE);
    SZ_CHECK_INT(ntohl(cf.server.sin_addr.s_addr), 0x0a010203);
    SZ_CHECK_INT(ntohs(cf.server.sin_port), 25222);
    SZ_CHECK_STR(cf.domain, "example.org");
    SZ_CHECK_INT(cf.tls, SB_TLS_NONE);
    SZ_CHECK_INT(cf.users, 1000);
    SZ_CHECK_INT(cf.first, 5);
    SZ_CHECK_STR(cf.user_pattern, "u{N}");
    SZ_CHECK_STR(cf.pass_pattern, "p{N}");
    SZ_CHECK_STR(cf.resource, "r");
    SZ_CHECK_INT(cf.mech, SB_MECH_PLAIN);
    SZ_CHECK(cf.sm);
    SZ_CHECK(cf.lazy_recv);
    SZ_CHECK(cf.login_rate == 250.5);
    SZ_CHECK(cf.login_timeout == 12);
    SZ_CHECK(cf.duration == 3.5);
    SZ_CHECK(cf.msg_rate == 5000);
    SZ_CHECK_INT(cf.msg_size, 128);
    SZ_CHECK(cf.loss_timeout == 2);
    SZ_CHECK_INT(cf.threads, 2);
    SZ_CHECK_INT(procs, 4);
    SZ_CHECK_INT(cf.src_lo, 0x7f000002);
    SZ_CHECK_INT(cf.src_hi, 0x7f000009);
    SZ_CHECK_INT(cf.bufs, 512);
    SZ_CHECK_INT(cf.buf_size, 8192);
    SZ_CHECK_INT(cf.tick_ns, 1000000);
}

SZ_TEST(minimal_files_keep_defaults)
{
    SZ_CHECK_INT(parse("scenario: connect\nusers: 10\nduration: 0\n"), 0);
    SZ_CHECK_INT(cf.scenario, SB_SC_CONNECT);
    SZ_CHECK_INT(cf.users, 10);
    SZ_CHECK_STR(cf.domain, "localhost");
    SZ_CHECK_INT(ntohs(cf.server.sin_port), 5222);
    SZ_CHECK(cf.login_rate == 100);
    SZ_CHECK_INT(procs, 1);
    SZ_CHECK(!cf.sm);
    /* roster-presence: presence_rate is the rate of the message phase */
    SZ_CHECK_INT(parse("scenario: roster-presence\nusers: 50\nduration: 1\ncontacts: 49\n"
                       "presence_rate: 7\ntls: starttls\nsrc: 127.0.0.5\n"),
                 0);
    SZ_CHECK_INT(cf.scenario, SB_SC_ROSTER);
    SZ_CHECK_INT(cf.contacts, 49);
    SZ_CHECK(cf.msg_rate == 7);
    SZ_CHECK_INT(cf.tls, SB_TLS_STARTTLS);
    SZ_CHECK_INT(cf.src_lo, 0x7f000005);
    SZ_CHECK_INT(cf.src_hi, 0x7f000005);
    SZ_CHECK(!cf.broadcast); /* directed presence unless asked */
    /* broadcast: roster-presence's fan-out by the server */
    SZ_CHECK_INT(parse("scenario: roster-presence\nusers: 50\nduration: 1\ncontacts: 20\n"
                       "presence_rate: 7\nbroadcast: true\n"),
                 0);
    SZ_CHECK(cf.broadcast);
    SZ_CHECK_INT(cf.contacts, 20);
    /* sm: the words of core/conf.c's booleans; false over an earlier true */
    SZ_CHECK_INT(parse("scenario: connect\nusers: 2\nduration: 1\nsm: yes\n"), 0);
    SZ_CHECK(cf.sm);
    const char *off = "scenario: connect\nusers: 2\nduration: 1\nsm: no\n";
    cf.sm = true;
    SZ_CHECK_INT(sb_scenario_parse("s.yaml", off, strlen(off), &cf, &procs, err, sizeof(err)), 0);
    SZ_CHECK(!cf.sm);
    /* flow style is YAML too */
    SZ_CHECK_INT(parse("{scenario: one2one, users: 2, duration: 1, msg_rate: 1}"), 0);
}

SZ_TEST(yaml_syntax)
{
    BAD("scenario: connect\nusers: 10: 5\nduration: 5\n",
        "s.yaml:2: yaml: mapping values are not allowed in this context");
    BAD("{scenario: connect, users: 10,\nduration: 5\n",
        "s.yaml:3: yaml: did not find expected ',' or '}' (while parsing a flow mapping started "
        "on line 1)");
    BAD("scenario: connect\nusers: \"10\nduration: 5\n",
        "s.yaml:4: yaml: found unexpected end of stream (while scanning a quoted scalar started on "
        "line 2)");
    BAD("scenario: connect\nusers: 10\nduration: 5\n\tthreads: 2\n",
        "s.yaml:4: yaml: found a tab character that violates indentation (while scanning a plain "
        "scalar started on line 3)");
    BAD("scenario: connect\nusers: &n 10\nduration: *n\n", "s.yaml:3: yaml: aliases are not supported");
    BAD("scenario: connect\nusers: 10\nduration: 5\n---\nusers: 3\n",
        "s.yaml:4: yaml: only one document is allowed");
    BAD("", "s.yaml:1: yaml: file is empty");
    BAD("# only a comment\n", "s.yaml:1: yaml: file is empty");
    BAD("\n\n- scenario: connect\n",
        "s.yaml:3: yaml: the file must be a mapping of keys to values, not a list");
    BAD("connect\n", "s.yaml:1: yaml: the file must be a mapping of keys to values, not a single value");
    BAD("scenario: connect\n? [users]\n: 10\n", "s.yaml:2: yaml: keys must be plain words, not a list");
    BAD("scenario: connect\nusers: 10\nduration: \xff\n",
        "s.yaml:3: yaml: invalid leading UTF-8 octet");
}

SZ_TEST(unknown_and_duplicate_keys)
{
    BAD("scenario: connect\nusers: 10\nduration: 5\nthread: 2\n", "s.yaml:4: thread: unknown key");
    BAD("scenario: connect\nusers: 10\n\nusers: 20\nduration: 5\n",
        "s.yaml:4: users: duplicate key (first on line 2)");
}

SZ_TEST(wrong_types)
{
    BAD("scenario: connect\nusers: ten\nduration: 5\n",
        "s.yaml:2: users: must be a whole number between 1 and 10000000, not \"ten\"");
    BAD("scenario: connect\nusers: 10\nduration: [5]\n",
        "s.yaml:3: duration: must be a single value, not a list");
    BAD("scenario: connect\nusers:\n  n: 10\nduration: 5\n",
        "s.yaml:3: users: must be a single value, not a mapping");
    BAD("scenario: connect\nusers: 10.5\nduration: 5\n",
        "s.yaml:2: users: must be a whole number between 1 and 10000000, not \"10.5\"");
    BAD("scenario: connect\nusers: 0x10\nduration: 5\n",
        "s.yaml:2: users: must be a whole number between 1 and 10000000, not \"0x10\"");
    BAD("scenario: connect\nusers: 10\nduration: inf\n",
        "s.yaml:3: duration: must be a number between 0 and 86400, not \"inf\"");
    BAD("scenario: connect\nusers: 10\nduration: 5\nserver: localhost\n",
        "s.yaml:4: server: \"localhost\" is not an IPv4 address");
    BAD("scenario: connect\nusers: 10\nduration: 5\nsrc: 127.0.0.2-127.0.0\n",
        "s.yaml:4: src: \"127.0.0.2-127.0.0\" is not an IPv4 address or range A-B");
    BAD("scenario: connect\nusers: 10\nduration: 5\nsrc: 127.0.0.9-127.0.0.2\n",
        "s.yaml:4: src: the range \"127.0.0.9-127.0.0.2\" is reversed");
    BAD("scenario: connect\nusers: 10\nduration: 5\nmechanism: DIGEST-MD5\n",
        "s.yaml:4: mechanism: unknown mechanism \"DIGEST-MD5\" (expected PLAIN, SCRAM-SHA-1, "
        "SCRAM-SHA-256 or their -PLUS)");
    BAD("scenario: connect\nusers: 10\nduration: 5\ntls: yes\n",
        "s.yaml:4: tls: unknown mode \"yes\" (expected none, starttls or direct)");
    BAD("scenario: connect\nusers: 10\nduration: 5\ndomain: ''\n", "s.yaml:4: domain: must not be empty");
    BAD("scenario: one2one\nusers: 10\nduration: 5\nmsg_rate: 10\nsm: enabled\n",
        "s.yaml:5: sm: must be true, false, yes or no, not \"enabled\"");
    BAD("scenario: connect\nusers: 10\nduration: 5\nsm: 1\n",
        "s.yaml:4: sm: must be true, false, yes or no, not \"1\"");
    BAD("scenario: connect\nusers: 10\nduration: 5\nsm: [true]\n",
        "s.yaml:4: sm: must be a single value, not a list");
}

SZ_TEST(out_of_range)
{
    BAD("scenario: connect\nusers: 0\nduration: 5\n",
        "s.yaml:2: users: must be between 1 and 10000000, not 0");
    BAD("scenario: connect\nusers: 10\nduration: -1\n",
        "s.yaml:3: duration: must be between 0 and 86400, not -1");
    BAD("scenario: connect\nusers: 10\nduration: 5\nport: 70000\n",
        "s.yaml:4: port: must be between 1 and 65535, not 70000");
    BAD("scenario: connect\nusers: 10\nduration: 5\nlogin_rate: 0\n",
        "s.yaml:4: login_rate: must be between 0.001 and 10000000, not 0");
    BAD("scenario: connect\nusers: 10\nduration: 5\nthreads: 99999999999999999999\n",
        "s.yaml:4: threads: must be between 1 and 256, not 99999999999999999999");
    BAD("scenario: connect\nusers: 10\nduration: 5\nbufs: 300\n",
        "s.yaml:4: bufs: must be a power of two, not 300");
    BAD("scenario: connect\nusers: 10\nduration: 5\nprocs: 65\n",
        "s.yaml:4: procs: must be between 1 and 64, not 65");
    BAD("scenario: one2one\nusers: 10\nduration: 5\nmsg_rate: 1\nresources: 17\n",
        "s.yaml:5: resources: must be between 1 and 16, not 17");
    BAD("scenario: one2one\nusers: 10\nduration: 5\nmsg_rate: 1\nresources: 0\n",
        "s.yaml:5: resources: must be between 1 and 16, not 0");
}

SZ_TEST(resources_and_carbons)
{
    defaults();
    SZ_CHECK_INT(cf.resources, 1);
    SZ_CHECK(!cf.carbons);
    SZ_CHECK_INT(parse("scenario: one2one\nusers: 10\nduration: 5\nmsg_rate: 1\nresources: 2\n"
                       "carbons: true\n"),
                 0);
    SZ_CHECK_INT(cf.resources, 2);
    SZ_CHECK(cf.carbons);
    SZ_CHECK_INT(sb_sessions(&cf), 20);
}

SZ_TEST(unknown_scenario)
{
    BAD("users: 10\nscenario: muc\nduration: 5\n",
        "s.yaml:2: scenario: unknown scenario \"muc\" (expected connect, one2one or "
        "roster-presence)");
}

SZ_TEST(missing_required_keys)
{
    BAD("users: 10\nduration: 5\n", "s.yaml:1: scenario: required key is missing");
    BAD("# users: 10\n\nscenario: connect\nduration: 5\n", "s.yaml:3: users: required key is missing");
    BAD("scenario: connect\nusers: 10\n", "s.yaml:1: duration: required key is missing");
    BAD("users: 10\nduration: 5\nscenario: one2one\n",
        "s.yaml:3: msg_rate: required key is missing for scenario one2one");
    BAD("scenario: roster-presence\nusers: 10\nduration: 5\npresence_rate: 1\n",
        "s.yaml:1: contacts: required key is missing for scenario roster-presence");
    BAD("scenario: roster-presence\nusers: 10\nduration: 5\ncontacts: 3\n",
        "s.yaml:1: presence_rate: required key is missing for scenario roster-presence");
}

SZ_TEST(keys_of_another_scenario)
{
    BAD("scenario: connect\nusers: 10\nduration: 5\nmsg_rate: 100\n",
        "s.yaml:4: msg_rate: not a key of scenario connect (line 1)");
    BAD("msg_size: 10\nscenario: roster-presence\nusers: 10\nduration: 5\ncontacts: 2\n"
        "presence_rate: 1\n",
        "s.yaml:1: msg_size: not a key of scenario roster-presence (line 2)");
    BAD("scenario: one2one\nusers: 10\nduration: 5\nmsg_rate: 1\ncontacts: 2\n",
        "s.yaml:5: contacts: not a key of scenario one2one (line 1)");
    BAD("scenario: one2one\nusers: 10\nduration: 5\nmsg_rate: 1\nbroadcast: true\n",
        "s.yaml:5: broadcast: not a key of scenario one2one (line 1)");
    BAD("scenario: connect\nusers: 10\nduration: 5\ncarbons: true\n",
        "s.yaml:4: carbons: not a key of scenario connect (line 1)");
    BAD("scenario: roster-presence\nusers: 10\nduration: 5\ncontacts: 2\npresence_rate: 1\n"
        "resources: 2\n",
        "s.yaml:6: resources: not a key of scenario roster-presence (line 1)");
}

SZ_TEST(relations_between_values)
{
    BAD("scenario: one2one\nusers: 1\nduration: 5\nmsg_rate: 1\n",
        "s.yaml:2: users: one2one needs at least 2 users");
    BAD("scenario: roster-presence\nusers: 10\nduration: 5\ncontacts: 10\npresence_rate: 1\n",
        "s.yaml:4: contacts: must be less than users (10): a user's contacts are other users");
    BAD("scenario: roster-presence\nusers: 10\nduration: 5\ncontacts: 2\npresence_rate: 1\n"
        "broadcast: maybe\n",
        "s.yaml:6: broadcast: must be true, false, yes or no, not \"maybe\"");
    BAD("scenario: roster-presence\nbroadcast: yes\nusers: 10\nduration: 5\ncontacts: 2\n"
        "presence_rate: 1\nprocs: 2\n",
        "s.yaml:2: broadcast: needs procs 1 (line 7): the server's fan-out would cross processes");
}

SZ_TEST(first_problem_wins)
{
    /* an unknown key before a syntax error: the key is reported */
    BAD("scenario: connect\nbogus: 1\nusers: [1\n", "s.yaml:2: bogus: unknown key");
    /* control bytes in a key are shown as '?', so the error is one line */
    BAD("scenario: connect\n\"a\\tb\": 1\n", "s.yaml:2: a?b: unknown key");
}

SZ_TEST(shipped_examples_and_files)
{
    static const char *const files[] = {"connect-10k.yaml", "one2one-5k.yaml",
                                        "roster-presence.yaml", "one2one-carbons-5k.yaml"};
    static const int want[] = {SB_SC_CONNECT, SB_SC_ONE2ONE, SB_SC_ROSTER, SB_SC_ONE2ONE};
    for (unsigned i = 0; i < 4; i++) {
        char path[1024];
        snprintf(path, sizeof(path), "%s/bench/scenarios/%s", SZ_SOURCE_ROOT, files[i]);
        defaults();
        int rc = sb_scenario_load(path, &cf, &procs, err, sizeof(err));
        if (rc)
            printf("# %s\n", err);
        SZ_CHECK_INT(rc, 0);
        SZ_CHECK_INT(cf.scenario, want[i]);
    }
    defaults();
    SZ_CHECK_INT(sb_scenario_load("/nonexistent/x.yaml", &cf, &procs, err, sizeof(err)), -ENOENT);
    SZ_CHECK_STR(err, "/nonexistent/x.yaml: cannot open: No such file or directory");
    /* a file past the size cap is refused before parsing */
    size_t n = SB_SCENARIO_MAX_BYTES + 10;
    char *big = malloc(n);
    memset(big, '#', n);
    defaults();
    SZ_CHECK_INT(sb_scenario_parse("big.yaml", big, n, &cf, &procs, err, sizeof(err)), -EINVAL);
    SZ_CHECK_STR(err, "big.yaml:1: yaml: larger than 65536 bytes, the limit for a scenario file");
    free(big);
}

int main(void)
{
    SZ_RUN(full_one2one_file);
    SZ_RUN(minimal_files_keep_defaults);
    SZ_RUN(yaml_syntax);
    SZ_RUN(unknown_and_duplicate_keys);
    SZ_RUN(wrong_types);
    SZ_RUN(out_of_range);
    SZ_RUN(resources_and_carbons);
    SZ_RUN(unknown_scenario);
    SZ_RUN(missing_required_keys);
    SZ_RUN(keys_of_another_scenario);
    SZ_RUN(relations_between_values);
    SZ_RUN(first_problem_wins);
    SZ_RUN(shipped_examples_and_files);
    return sz_test_done();
}
