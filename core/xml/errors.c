/*
 * Names of the RFC 6120 §4.9.3 stream error conditions, and the one place
 * a <stream:error> is written. Static tables only; any thread.
 */
#include "core/xml/errors.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *const names[SZ_STREAM_ERR_COUNT] = {
    [SZ_STREAM_OK] = "undefined-condition",
    [SZ_STREAM_BAD_FORMAT] = "bad-format",
    [SZ_STREAM_BAD_NAMESPACE_PREFIX] = "bad-namespace-prefix",
    [SZ_STREAM_CONFLICT] = "conflict",
    [SZ_STREAM_CONNECTION_TIMEOUT] = "connection-timeout",
    [SZ_STREAM_HOST_GONE] = "host-gone",
    [SZ_STREAM_HOST_UNKNOWN] = "host-unknown",
    [SZ_STREAM_IMPROPER_ADDRESSING] = "improper-addressing",
    [SZ_STREAM_INTERNAL_SERVER_ERROR] = "internal-server-error",
    [SZ_STREAM_INVALID_FROM] = "invalid-from",
    [SZ_STREAM_INVALID_NAMESPACE] = "invalid-namespace",
    [SZ_STREAM_INVALID_XML] = "invalid-xml",
    [SZ_STREAM_NOT_AUTHORIZED] = "not-authorized",
    [SZ_STREAM_NOT_WELL_FORMED] = "not-well-formed",
    [SZ_STREAM_POLICY_VIOLATION] = "policy-violation",
    [SZ_STREAM_REMOTE_CONNECTION_FAILED] = "remote-connection-failed",
    [SZ_STREAM_RESET] = "reset",
    [SZ_STREAM_RESOURCE_CONSTRAINT] = "resource-constraint",
    [SZ_STREAM_RESTRICTED_XML] = "restricted-xml",
    [SZ_STREAM_SEE_OTHER_HOST] = "see-other-host",
    [SZ_STREAM_SYSTEM_SHUTDOWN] = "system-shutdown",
    [SZ_STREAM_UNDEFINED_CONDITION] = "undefined-condition",
    [SZ_STREAM_UNSUPPORTED_ENCODING] = "unsupported-encoding",
    [SZ_STREAM_UNSUPPORTED_FEATURE] = "unsupported-feature",
    [SZ_STREAM_UNSUPPORTED_STANZA_TYPE] = "unsupported-stanza-type",
    [SZ_STREAM_UNSUPPORTED_VERSION] = "unsupported-version",
};

const char *sz_stream_err_name(enum sz_stream_err e)
{
    if ((unsigned)e >= SZ_STREAM_ERR_COUNT)
        return names[SZ_STREAM_UNDEFINED_CONDITION];
    return names[e];
}

enum sz_stream_err sz_stream_err_from_name(const char *name, unsigned len)
{
    /* Starts at 1: index 0 shares its name with undefined-condition. */
    for (int e = 1; e < SZ_STREAM_ERR_COUNT; e++)
        if (strlen(names[e]) == len && memcmp(names[e], name, len) == 0)
            return (enum sz_stream_err)e;
    return SZ_STREAM_OK;
}

int sz_stream_err_format(char *buf, size_t cap, enum sz_stream_err e, const char *app)
{
    int n = snprintf(buf, cap,
                     "<stream:error><%s xmlns='" SZ_NS_STREAMS "'/>%s</stream:error>"
                     "</stream:stream>",
                     sz_stream_err_name(e), app ? app : "");
    return n >= 0 && (size_t)n < cap ? n : -ENOSPC;
}
