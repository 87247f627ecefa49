/*
 * libFuzzer target for the SASL server (net/sasl.c): the input is split
 * into a mechanism choice, flags, and up to four client messages (separated
 * by 0xff bytes). Each exchange runs against fixed stored credentials (or
 * "no such user"), like c2s drives it. Checks only memory safety and that
 * every result is one of the documented outcomes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "net/sasl.h"
#include "net/scram.h"

static sz_scram_creds_t creds;
static int ready;

static void setup(void)
{
    if (ready)
        return;
    /* Few iterations: the fuzzer explores parsing, not PBKDF2. */
    for (int h = 0; h < SZ_HASH_COUNT; h++) {
        static const uint8_t salt[] = "fuzzsaltfuzzsalt";
        sz_scram_derive((enum sz_hash)h, "pencil", 6, salt, 16, 2, &creds.h[h]);
    }
    ready = 1;
}

static const char *const mechs[] = {"PLAIN",          "SCRAM-SHA-1",      "SCRAM-SHA-256",
                                    "SCRAM-SHA-512",  "SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS",
                                    "SCRAM-SHA-512-PLUS", "X-UNKNOWN"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    if (size < 2)
        return 0;
    unsigned mech = data[0] % (sizeof(mechs) / sizeof(mechs[0]));
    unsigned flags = data[1] & 0x7f; /* every SZ_SASL_F_* */
    bool missing_user = data[1] & 0x80;
    data += 2;
    size -= 2;
    static const uint8_t cb_exp[32] = {1, 2, 3};
    static const uint8_t cb_ep[32] = {4, 5, 6};
    static const uint8_t cb_un[12] = {7, 8, 9};
    sz_sasl_opts_t o = {.flags = flags, .domain = "localhost", .domain_len = 9,
                        .cb_exporter = cb_exp, .cb_endpoint = cb_ep, .cb_endpoint_len = 32,
                        .cb_unique = cb_un, .cb_unique_len = 12,
                        .secret = (const uint8_t *)"fuzz", .secret_len = 4, .fake_iterations = 2};
    sz_sasl_t *s = sz_sasl_new(&o);
    sz_sasl_out_t out;
    /* Messages are separated by 0xff (never valid in SASL text). */
    const uint8_t *msg = data, *end = data + size;
    const uint8_t *sep = memchr(msg, 0xff, size);
    size_t len = sep ? (size_t)(sep - msg) : size;
    enum sz_sasl_result r = sz_sasl_start(s, mechs[mech], strlen(mechs[mech]), msg, len, &out);
    for (int step = 0; step < 6; step++) {
        if (r == SZ_SASL_SUCCESS || r == SZ_SASL_FAILURE)
            break;
        if (r == SZ_SASL_NEED_CREDS) {
            r = sz_sasl_creds(s, missing_user ? SZ_SASL_CREDS_NOT_FOUND : SZ_SASL_CREDS_FOUND,
                              missing_user ? NULL : &creds, &out);
            continue;
        }
        if (r != SZ_SASL_CONTINUE)
            abort(); /* not a documented result */
        if (!sep)
            break;
        msg = sep + 1;
        sep = memchr(msg, 0xff, (size_t)(end - msg));
        len = sep ? (size_t)(sep - msg) : (size_t)(end - msg);
        r = sz_sasl_step(s, msg, len, &out);
    }
    if (r == SZ_SASL_FAILURE && out.err == SZ_SASL_ERR_NONE)
        abort(); /* a failure always names its condition */
    sz_sasl_free(s);
    return 0;
}
