/* Runs every test registered with WGF_TEST and prints a closing "N passed, N failed" line. */
#include "check.h"

#include <stdlib.h>

#define MAX_TESTS 512

static struct {
    const char *name;
    wgf_test_fn fn;
} tests[MAX_TESTS];
static int n_tests;
int wgf_test_failures;

void wgf_test_register(const char *name, wgf_test_fn fn)
{
    if (n_tests == MAX_TESTS) {
        fprintf(stderr, "too many tests\n");
        abort();
    }
    tests[n_tests].name = name;
    tests[n_tests].fn = fn;
    n_tests++;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

size_t wgf_test_hex(unsigned char *out, size_t max, const char *hex)
{
    size_t n = 0;
    while (hex[0] && hex[1] && n < max) {
        int hi = hexval(hex[0]), lo = hexval(hex[1]);
        if (hi < 0 || lo < 0) { /* skip separators such as spaces and colons */
            hex++;
            continue;
        }
        out[n++] = (unsigned char)(hi << 4 | lo);
        hex += 2;
    }
    return n;
}

int main(int argc, char **argv)
{
    int passed = 0, failed = 0;
    for (int i = 0; i < n_tests; i++) {
        if (argc > 1 && strstr(tests[i].name, argv[1]) == NULL)
            continue;
        int before = wgf_test_failures;
        tests[i].fn();
        if (wgf_test_failures == before) {
            passed++;
        } else {
            failed++;
            fprintf(stderr, "FAILED %s\n", tests[i].name);
        }
    }
    printf("c-core: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
