/*
 * Stream error conditions of RFC 6120 §4.9.3 as values (STYLE §4). The
 * parser reports a rejected stream as -<condition>; the stream layer turns
 * the condition into <stream:error><name xmlns='urn:ietf:params:xml:ns:
 * xmpp-streams'/></stream:error> with sz_stream_err_format(). Static
 * tables and pure functions: any thread.
 */
#ifndef SZ_CORE_XML_ERRORS_H
#define SZ_CORE_XML_ERRORS_H

#include <stddef.h>

/* Namespace of the stream error conditions (RFC 6120 §4.9.3). */
#define SZ_NS_STREAMS "urn:ietf:params:xml:ns:xmpp-streams"

/* Every condition of RFC 6120 §4.9.3, in the RFC's order. 0 is "no error",
 * so a condition can travel as a negative int return value. */
enum sz_stream_err {
    SZ_STREAM_OK = 0,
    SZ_STREAM_BAD_FORMAT,              /* 4.9.3.1 */
    SZ_STREAM_BAD_NAMESPACE_PREFIX,    /* 4.9.3.2 */
    SZ_STREAM_CONFLICT,                /* 4.9.3.3 */
    SZ_STREAM_CONNECTION_TIMEOUT,      /* 4.9.3.4 */
    SZ_STREAM_HOST_GONE,               /* 4.9.3.5 */
    SZ_STREAM_HOST_UNKNOWN,            /* 4.9.3.6 */
    SZ_STREAM_IMPROPER_ADDRESSING,     /* 4.9.3.7 */
    SZ_STREAM_INTERNAL_SERVER_ERROR,   /* 4.9.3.8 */
    SZ_STREAM_INVALID_FROM,            /* 4.9.3.9 */
    SZ_STREAM_INVALID_NAMESPACE,       /* 4.9.3.10 */
    SZ_STREAM_INVALID_XML,             /* 4.9.3.11 */
    SZ_STREAM_NOT_AUTHORIZED,          /* 4.9.3.12 */
    SZ_STREAM_NOT_WELL_FORMED,         /* 4.9.3.13 */
    SZ_STREAM_POLICY_VIOLATION,        /* 4.9.3.14 */
    SZ_STREAM_REMOTE_CONNECTION_FAILED,/* 4.9.3.15 */
    SZ_STREAM_RESET,                   /* 4.9.3.16 */
    SZ_STREAM_RESOURCE_CONSTRAINT,     /* 4.9.3.17 */
    SZ_STREAM_RESTRICTED_XML,          /* 4.9.3.18 */
    SZ_STREAM_SEE_OTHER_HOST,          /* 4.9.3.19 */
    SZ_STREAM_SYSTEM_SHUTDOWN,         /* 4.9.3.20 */
    SZ_STREAM_UNDEFINED_CONDITION,     /* 4.9.3.21 */
    SZ_STREAM_UNSUPPORTED_ENCODING,    /* 4.9.3.22 */
    SZ_STREAM_UNSUPPORTED_FEATURE,     /* 4.9.3.23 */
    SZ_STREAM_UNSUPPORTED_STANZA_TYPE, /* 4.9.3.24 */
    SZ_STREAM_UNSUPPORTED_VERSION,     /* 4.9.3.25 */
    SZ_STREAM_ERR_COUNT
};

/**
 * Any thread. The condition's element name as the RFC spells it
 * ("not-well-formed"), a static string. SZ_STREAM_OK and out-of-range
 * values give "undefined-condition".
 */
const char *sz_stream_err_name(enum sz_stream_err e);

/**
 * Any thread. Inverse of sz_stream_err_name over <len> bytes of <name>;
 * returns the condition or SZ_STREAM_OK when <name> is not one.
 */
enum sz_stream_err sz_stream_err_from_name(const char *name, unsigned len);

/**
 * Any thread. The last bytes of a stream that fails with <e> (RFC 6120
 * §4.9.1): <stream:error><e xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>
 * <app></stream:error></stream:stream>, into <buf> (<cap> bytes, NUL
 * added). <app> is trusted serialized XML (an application-specific
 * condition, §4.9.4) or NULL. <e> is named as sz_stream_err_name() does:
 * SZ_STREAM_OK and out-of-range values are written as undefined-condition,
 * not rejected, since the stream must still end with an error. Returns the
 * length (NUL not counted), or -ENOSPC when it does not fit in <cap>
 * (then <buf> holds nothing usable).
 */
int sz_stream_err_format(char *buf, size_t cap, enum sz_stream_err e, const char *app);

#endif
