/* Throughput of the AEAD core per implementation: batched in-place seal and open of 64 packets
 * (WireGuard's shape), and the two halves separately (ChaCha20 with the one-time keys, grouped
 * as seal_batch groups it, and Poly1305 over the ciphertext) so the cost split is visible.
 *
 *   make -C csrc bench            all sizes and impls
 *   bench/bench_aead 1420         one size
 *
 * Reports GB/s of payload (1e9 bytes/s) and cycles/byte from the TSC (reference cycles at the
 * nominal clock, not the boosted core clock), from the fastest of many timed calls. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include "aead.h"
#include "chacha20.h"
#include "poly1305.h"

#define BATCH 64
#define MIN_SECONDS 0.25

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct result {
    double gbps;
    double cpb;
};

typedef void (*bench_fn)(void *ctx);

static double tsc_hz;

/* TSC ticks per second, from a short calibration against CLOCK_MONOTONIC. */
static void calibrate_tsc(void)
{
    double t0 = now();
    uint64_t c0 = __rdtsc();
    while (now() - t0 < 0.05) {
    }
    tsc_hz = (double)(__rdtsc() - c0) / (now() - t0);
}

/* The machine is shared, so wall-clock averages mostly measure the neighbours. Instead every
 * call is timed on its own and the fastest counts: a ~100 us call is rarely preempted. prep (if
 * set) runs untimed before each call. bytes is the payload per call. */
static struct result measure(bench_fn prep, bench_fn fn, void *ctx, size_t bytes)
{
    uint64_t best = UINT64_MAX;
    double t0 = now();
    int calls = 0;
    while (calls < 20 || now() - t0 < MIN_SECONDS) {
        if (prep)
            prep(ctx);
        uint64_t c0 = __rdtsc();
        fn(ctx);
        uint64_t c = __rdtsc() - c0;
        if (c < best)
            best = c;
        calls++;
    }
    struct result r = {(double)bytes / ((double)best / tsc_hz) / 1e9, (double)best / bytes};
    return r;
}

struct batch_ctx {
    struct wgf_packet pkts[BATCH];
    uint8_t key[32];
    size_t len;
};

static void prep_seal(void *p)
{
    struct batch_ctx *b = p;
    for (int i = 0; i < BATCH; i++) {
        b->pkts[i].len = b->len;
        b->pkts[i].counter++;
    }
}

static void run_seal(void *p)
{
    struct batch_ctx *b = p;
    wgf_aead_seal_batch(b->pkts, BATCH, b->key);
}

/* Open decrypts in place, so every timed open gets freshly sealed packets. */
static void prep_open(void *p)
{
    struct batch_ctx *b = p;
    prep_seal(b);
    run_seal(b);
    for (int i = 0; i < BATCH; i++)
        b->pkts[i].len = b->len + 16;
}

static void run_open(void *p)
{
    struct batch_ctx *b = p;
    if (wgf_aead_open_batch(b->pkts, BATCH, b->key) != BATCH) {
        fprintf(stderr, "open failed\n");
        exit(1);
    }
}

struct half_ctx {
    uint8_t *bufs[BATCH];
    uint8_t key[32], otk[32], tag[16];
    struct wgf_chacha20_job jobs[BATCH];
    size_t len;
    wgf_chacha20_jobs_fn chacha;
    wgf_poly1305_aead_fn poly;
};

/* The ChaCha20 half as seal_batch runs it: groups of 16 packets through the jobs form. */
static void run_chacha(void *p)
{
    struct half_ctx *h = p;
    for (int i = 0; i < BATCH; i++) {
        h->jobs[i].data = h->bufs[i];
        h->jobs[i].len = h->len;
        h->jobs[i].nonce[4] = (uint8_t)i;
        h->jobs[i].with_otk = 1;
    }
    for (int i = 0; i < BATCH; i += 16)
        h->chacha(h->jobs + i, 16, h->key);
}

static void run_poly(void *p)
{
    struct half_ctx *h = p;
    for (int i = 0; i < BATCH; i++) {
        h->otk[0] = (uint8_t)i;
        h->poly(h->tag, h->otk, NULL, 0, h->bufs[i], h->len);
    }
}

static const struct {
    int id;
    wgf_chacha20_jobs_fn chacha;
    wgf_poly1305_aead_fn poly;
} impls[] = {
    {WGF_IMPL_SCALAR, wgf_chacha20_jobs_scalar, wgf_poly1305_aead_scalar},
    {WGF_IMPL_AVX2, wgf_chacha20_jobs_avx2, wgf_poly1305_aead_avx2},
    {WGF_IMPL_AVX512, wgf_chacha20_jobs_avx512, wgf_poly1305_aead_avx512},
};

static void bench_size(size_t len)
{
    struct batch_ctx *b = calloc(1, sizeof(*b));
    struct half_ctx *h = calloc(1, sizeof(*h));
    for (int i = 0; i < 32; i++)
        b->key[i] = h->key[i] = (uint8_t)(i * 13 + 5);
    b->len = h->len = len;
    for (int i = 0; i < BATCH; i++) {
        /* 64-byte aligned, as a packet buffer pool would hand them out. */
        if (posix_memalign((void **)&b->pkts[i].data, 64, len + 16 + 64) != 0)
            abort();
        memset(b->pkts[i].data, i, len + 16);
        h->bufs[i] = b->pkts[i].data;
    }
    for (size_t k = 0; k < sizeof(impls) / sizeof(impls[0]); k++) {
        if (wgf_impl_select(impls[k].id) != 0)
            continue;
        struct result seal = measure(prep_seal, run_seal, b, BATCH * len);
        struct result open = measure(prep_open, run_open, b, BATCH * len);
        h->chacha = impls[k].chacha;
        h->poly = impls[k].poly;
        struct result chacha = measure(NULL, run_chacha, h, BATCH * len);
        struct result poly = measure(NULL, run_poly, h, BATCH * len);
        printf("%-6s %5zu B  seal %5.2f GB/s (%5.2f c/B)  open %5.2f GB/s (%5.2f c/B)  "
               "| chacha20+otk %5.2f GB/s (%5.2f c/B)  poly1305 %5.2f GB/s (%5.2f c/B)\n",
               wgf_impl_name(impls[k].id), len, seal.gbps, seal.cpb, open.gbps, open.cpb,
               chacha.gbps, chacha.cpb, poly.gbps, poly.cpb);
        fflush(stdout);
    }
    for (int i = 0; i < BATCH; i++)
        free(b->pkts[i].data);
    free(b);
    free(h);
    wgf_impl_select(WGF_IMPL_AUTO);
}

int main(int argc, char **argv)
{
    static const size_t sizes[] = {64, 512, 1420, 8192};
    calibrate_tsc();
    printf("batch of %d packets, one core; GB/s = 1e9 payload bytes/s, c/B = TSC cycles/byte\n",
           BATCH);
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            bench_size((size_t)strtoul(argv[i], NULL, 10));
        return 0;
    }
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        bench_size(sizes[i]);
    return 0;
}
