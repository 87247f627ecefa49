/*
 * Unit tests for core/xml/errors.c: the RFC 6120 §4.9.3 stream error names
 * and sz_stream_err_format(), the one writer of <stream:error>. The RFC's
 * names are written out here rather than taken from errors.c.
 */
#include "core/xml/errors.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sz_test.h"

static const struct {
    enum sz_stream_err e;
    const char *name;
} rfc[] = {
    {SZ_STREAM_BAD_FORMAT, "bad-format"},
    {SZ_STREAM_BAD_NAMESPACE_PREFIX, "bad-namespace-prefix"},
    {SZ_STREAM_CONFLICT, "conflict"},
    {SZ_STREAM_CONNECTION_TIMEOUT, "connection-timeout"},
    {SZ_STREAM_HOST_GONE, "host-gone"},
    {SZ_STREAM_HOST_UNKNOWN, "host-unknown"},
    {SZ_STREAM_IMPROPER_ADDRESSING, "improper-addressing"},
    {SZ_STREAM_INTERNAL_SERVER_ERROR, "internal-server-error"},
    {SZ_STREAM_INVALID_FROM, "invalid-from"},
    {SZ_STREAM_INVALID_NAMESPACE, "invalid-namespace"},
    {SZ_STREAM_INVALID_XML, "invalid-xml"},
    {SZ_STREAM_NOT_AUTHORIZED, "not-authorized"},
    {SZ_STREAM_NOT_WELL_FORMED, "not-well-formed"},
    {SZ_STREAM_POLICY_VIOLATION, "policy-violation"},
    {SZ_STREAM_REMOTE_CONNECTION_FAILED, "remote-connection-failed"},
    {SZ_STREAM_RESET, "reset"},
    {SZ_STREAM_RESOURCE_CONSTRAINT, "resource-constraint"},
    {SZ_STREAM_RESTRICTED_XML, "restricted-xml"},
    {SZ_STREAM_SEE_OTHER_HOST, "see-other-host"},
    {SZ_STREAM_SYSTEM_SHUTDOWN, "system-shutdown"},
    {SZ_STREAM_UNDEFINED_CONDITION, "undefined-condition"},
    {SZ_STREAM_UNSUPPORTED_ENCODING, "unsupported-encoding"},
    {SZ_STREAM_UNSUPPORTED_FEATURE, "unsupported-feature"},
    {SZ_STREAM_UNSUPPORTED_STANZA_TYPE, "unsupported-stanza-type"},
    {SZ_STREAM_UNSUPPORTED_VERSION, "unsupported-version"},
};

/* Formats <e> with <app> and compares with the bytes RFC 6120 §4.9.1
 * gives for condition <name>. */
static void check_format(enum sz_stream_err e, const char *app, const char *name)
{
    char got[512], want[512];
    int n = sz_stream_err_format(got, sizeof(got), e, app);
    snprintf(want, sizeof(want),
             "<stream:error><%s xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>%s"
             "</stream:error></stream:stream>",
             name, app ? app : "");
    SZ_CHECK_INT(n, strlen(want));
    SZ_CHECK_STR(n > 0 ? got : NULL, want);
}

/* Every condition: its RFC name, both ways, and its element in the
 * streams namespace. */
SZ_TEST(every_condition)
{
    size_t n = sizeof(rfc) / sizeof(rfc[0]);
    SZ_CHECK_INT(n, SZ_STREAM_ERR_COUNT - 1);
    for (size_t i = 0; i < n; i++) {
        SZ_CHECK_STR(sz_stream_err_name(rfc[i].e), rfc[i].name);
        SZ_CHECK_INT(sz_stream_err_from_name(rfc[i].name, (unsigned)strlen(rfc[i].name)),
                     rfc[i].e);
        check_format(rfc[i].e, NULL, rfc[i].name);
    }
}

/* An application-specific condition (§4.9.4) follows the defined one. */
SZ_TEST(app_condition)
{
    static const char app[] = "<handled-count-too-high xmlns='urn:xmpp:sm:3' h='10' "
                              "send-count='8'/>";
    check_format(SZ_STREAM_UNDEFINED_CONDITION, app, "undefined-condition");
    check_format(SZ_STREAM_POLICY_VIOLATION, "", "policy-violation");
}

/* Values that are no condition are written as undefined-condition, not
 * rejected: a stream that fails must still end with an error. */
SZ_TEST(out_of_range)
{
    check_format(SZ_STREAM_OK, NULL, "undefined-condition");
    check_format(SZ_STREAM_ERR_COUNT, NULL, "undefined-condition");
    check_format((enum sz_stream_err)1000, NULL, "undefined-condition");
    check_format((enum sz_stream_err)-1, NULL, "undefined-condition");
    SZ_CHECK_INT(sz_stream_err_from_name("no-such-thing", 13), SZ_STREAM_OK);
}

/* A buffer one byte short is -ENOSPC; an exact fit (NUL included) is not. */
SZ_TEST(buffer_size)
{
    char buf[256];
    int n = sz_stream_err_format(buf, sizeof(buf), SZ_STREAM_CONFLICT, NULL);
    SZ_CHECK(n > 0);
    SZ_CHECK_INT(sz_stream_err_format(buf, (size_t)n + 1, SZ_STREAM_CONFLICT, NULL), n);
    SZ_CHECK_INT(sz_stream_err_format(buf, (size_t)n, SZ_STREAM_CONFLICT, NULL), -ENOSPC);
    SZ_CHECK_INT(sz_stream_err_format(buf, 0, SZ_STREAM_CONFLICT, NULL), -ENOSPC);
}

int main(void)
{
    SZ_RUN(every_condition);
    SZ_RUN(app_condition);
    SZ_RUN(out_of_range);
    SZ_RUN(buffer_size);
    return sz_test_done();
}
