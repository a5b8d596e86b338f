/* Micro-benchmark of the Poly1305 AEAD tag variants: fresh one-time key per message (as per
 * WireGuard packet), empty AD, lengths 64/512/1420/8192 plus the small sizes that decide the
 * scalar/SIMD crossover. Prints TSC cycles per byte, ns per message and GB/s.
 *   make -C csrc bench-poly */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include "poly1305.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static void bench(const char *name, wgf_poly1305_aead_fn fn, const uint8_t *msg, size_t len)
{
    uint8_t key[32], tag[16] = {0};
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(i * 29 + 7);
    size_t iters = (size_t)(20e6 / (len + 64)) + 200;
    double best_cyc = 1e30, best_ns = 1e30;
    for (int rep = 0; rep < 25; rep++) { /* best of 25 short runs: the host is shared */
        double t0 = now_ns();
        uint64_t c0 = __rdtsc();
        for (size_t i = 0; i < iters; i++) {
            /* A new key each message (the call is opaque, so nothing is hoisted); messages are
             * independent, as in a batch of packets, so this measures throughput. */
            key[i & 31] ^= (uint8_t)(i + 1);
            fn(tag, key, NULL, 0, msg, len);
            __asm__ volatile("" : : "r"(tag) : "memory");
        }
        uint64_t c1 = __rdtsc();
        double t1 = now_ns();
        double cyc = (double)(c1 - c0) / iters, ns = (t1 - t0) / iters;
        if (cyc < best_cyc)
            best_cyc = cyc, best_ns = ns;
    }
    printf("%-7s %6zu B  %7.1f cyc/msg  %5.3f cyc/B  %8.1f ns/msg  %6.2f GB/s\n", name, len,
           best_cyc, best_cyc / len, best_ns, len / best_ns);
}

int main(int argc, char **argv)
{
    static const size_t default_lens[] = {16, 32, 48, 64, 96, 128, 192, 256, 512, 1420, 8192};
    size_t lens[32], n_lens = 0;
    for (int i = 1; i < argc && n_lens < 32; i++)
        lens[n_lens++] = strtoul(argv[i], NULL, 0);
    if (!n_lens) {
        n_lens = sizeof(default_lens) / sizeof(default_lens[0]);
        memcpy(lens, default_lens, sizeof(default_lens));
    }
    uint8_t *msg = malloc(8192 * 4);
    for (size_t i = 0; i < 8192 * 4; i++)
        msg[i] = (uint8_t)(i * 131 + 17);
    __builtin_cpu_init();
    printf("cycles are TSC ticks; avx512 variant usable here: %d\n", wgf_poly1305_avx512_usable());
    for (size_t l = 0; l < n_lens; l++) {
        if (lens[l] > 8192 * 4)
            continue;
        bench("scalar", wgf_poly1305_aead_scalar, msg, lens[l]);
        if (__builtin_cpu_supports("avx2"))
            bench("avx2", wgf_poly1305_aead_avx2, msg, lens[l]);
        if (__builtin_cpu_supports("avx2"))
            bench("avx512", wgf_poly1305_aead_avx512, msg, lens[l]);
    }
    free(msg);
    return 0;
}
