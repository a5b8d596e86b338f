/* A tiny self-registering test harness for the standalone C test program (no Python, so it runs
 * under ASan/UBSan/valgrind as is). A suite file writes:
 *     WGF_TEST(chacha20_block_vector) { ... CHECK(x == y); CHECK_MEM(a, b, n); ... }
 * and main.c runs every registered test, printing "N passed, N failed". */
#ifndef WGF_TEST_CHECK_H
#define WGF_TEST_CHECK_H

#include <stdio.h>
#include <string.h>

typedef void (*wgf_test_fn)(void);
void wgf_test_register(const char *name, wgf_test_fn fn);
extern int wgf_test_failures;

#define WGF_TEST(name)                                                          \
    static void test_##name(void);                                              \
    __attribute__((constructor)) static void register_##name(void)              \
    {                                                                           \
        wgf_test_register(#name, test_##name);                                  \
    }                                                                           \
    static void test_##name(void)

#define CHECK(cond)                                                             \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__,    \
                    #cond);                                                     \
            wgf_test_failures++;                                                \
        }                                                                       \
    } while (0)

#define CHECK_MEM(a, b, n)                                                      \
    do {                                                                        \
        if (memcmp((a), (b), (n)) != 0) {                                       \
            fprintf(stderr, "%s:%d: CHECK_MEM failed: %s != %s (%zu bytes)\n",  \
                    __FILE__, __LINE__, #a, #b, (size_t)(n));                   \
            wgf_test_failures++;                                                \
        }                                                                       \
    } while (0)

/* Parses a hex string into out (at most max bytes); returns the byte count. */
size_t wgf_test_hex(unsigned char *out, size_t max, const char *hex);

#endif
