/*
 * Minimal TAP producer for C unit tests (meson `protocol: 'tap'`).
 * Usage: SZ_TEST(name) { ... SZ_CHECK(cond); ... } and in main():
 *   SZ_RUN(name); ... return sz_test_done();
 * A failed check prints a diagnostic with file:line and marks the current
 * test failed; the test keeps running so one run shows every failure.
 */
#ifndef SZ_TESTS_SZ_TEST_H
#define SZ_TESTS_SZ_TEST_H

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int sz_t_count, sz_t_failed_total, sz_t_cur_failed;

#define SZ_TEST(name) static void test_##name(void)

#define SZ_CHECK(cond)                                                                           \
    do {                                                                                         \
        if (!(cond)) {                                                                           \
            printf("# %s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                   \
            sz_t_cur_failed = 1;                                                                 \
        }                                                                                        \
    } while (0)

#define SZ_CHECK_INT(a, b)                                                                       \
    do {                                                                                         \
        long long sz_a_ = (long long)(a), sz_b_ = (long long)(b);                                \
        if (sz_a_ != sz_b_) {                                                                    \
            printf("# %s:%d: %s == %lld, expected %s == %lld\n", __FILE__, __LINE__, #a, sz_a_,  \
                   #b, sz_b_);                                                                   \
            sz_t_cur_failed = 1;                                                                 \
        }                                                                                        \
    } while (0)

#define SZ_CHECK_STR(a, b)                                                                       \
    do {                                                                                         \
        const char *sz_a_ = (a), *sz_b_ = (b);                                                   \
        if (!sz_a_ || !sz_b_ || strcmp(sz_a_, sz_b_) != 0) {                                     \
            printf("# %s:%d: %s == \"%s\", expected \"%s\"\n", __FILE__, __LINE__, #a,           \
                   sz_a_ ? sz_a_ : "(null)", sz_b_ ? sz_b_ : "(null)");                          \
            sz_t_cur_failed = 1;                                                                 \
        }                                                                                        \
    } while (0)

#define SZ_RUN(name)                                                                             \
    do {                                                                                         \
        sz_t_cur_failed = 0;                                                                     \
        test_##name();                                                                           \
        sz_t_count++;                                                                            \
        printf("%s %d - %s\n", sz_t_cur_failed ? "not ok" : "ok", sz_t_count, #name);            \
        fflush(stdout);                                                                          \
        sz_t_failed_total += sz_t_cur_failed;                                                    \
    } while (0)

static inline int sz_test_done(void)
{
    printf("1..%d\n", sz_t_count);
    return sz_t_failed_total ? 1 : 0;
}

/* Exit code meson reads as "skipped" (the uring suite uses it when the
 * kernel lacks a feature). */
#define SZ_TEST_SKIP 77

#endif
