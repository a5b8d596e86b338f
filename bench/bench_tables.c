/* Speed of the data plane's lookup tables (a benchmark, not a test: it asserts nothing).
 *
 *   cc -O2 -std=gnu11 -Icsrc -o bench/bench_tables bench/bench_tables.c \
 *       csrc/allowedips.c csrc/index_table.c csrc/replay.c -lpthread && bench/bench_tables
 *
 * Reports: 100,000 random IPv4 and IPv6 prefixes inserted (the target is under 1 s); single and
 * batched longest-prefix lookups over that table (target under 1 us each); receiver-index
 * lookups; replay-window updates. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "allowedips.h"
#include "index_table.h"
#include "replay.h"

#define PREFIXES 100000
#define LOOKUPS 2000000
#define BATCH 128

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 0x853c49e6748fea9bu;
static uint64_t rnd(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return rng;
}

static void bench_family(int family)
{
    const unsigned bytes = family == WGF_IP4 ? 4 : 16, bits = 8 * bytes;
    uint8_t *addrs = malloc((size_t)LOOKUPS * 16);
    uint8_t *families = malloc(BATCH);
    const uint8_t **ptrs = malloc(BATCH * sizeof(*ptrs));
    uint32_t peers[BATCH];
    struct wgf_allowedips *t = wgf_allowedips_new();
    if (!addrs || !families || !ptrs || !t) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    /* Prefix lengths as routing tables have them: mostly long, some short. */
    static uint8_t stored[PREFIXES][16];
    for (uint32_t i = 0; i < PREFIXES; i++)
        for (unsigned j = 0; j < 16; j++)
            stored[i][j] = (uint8_t)rnd();
    double t0 = now();
    for (uint32_t i = 0; i < PREFIXES; i++) {
        const uint8_t *a = stored[i];
        unsigned cidr = bits / 2 + (unsigned)(rnd() % (bits / 2 + 1));
        wgf_allowedips_insert(t, family, a, (uint8_t)cidr, 1 + i % 1000);
    }
    double insert_s = now() - t0;
    /* Every other query is a stored prefix's address with its host bits (beyond /half) random:
     * those walk to the bottom of the trie. The rest are random addresses. */
    for (size_t i = 0; i < (size_t)LOOKUPS * 16; i++)
        addrs[i] = (uint8_t)rnd();
    for (size_t i = 0; i < LOOKUPS; i += 2)
        memcpy(addrs + 16 * i, stored[rnd() % PREFIXES], bytes / 2);
    unsigned long hits = 0;
    t0 = now();
    for (size_t i = 0; i < LOOKUPS; i++)
        hits += wgf_allowedips_lookup(t, family, addrs + 16 * i) != 0;
    double single_ns = (now() - t0) / LOOKUPS * 1e9;
    for (int i = 0; i < BATCH; i++)
        families[i] = (uint8_t)family;
    t0 = now();
    for (size_t i = 0; i + BATCH <= LOOKUPS; i += BATCH) {
        for (int k = 0; k < BATCH; k++)
            ptrs[k] = addrs + 16 * (i + (size_t)k);
        wgf_allowedips_lookup_batch(t, families, ptrs, peers, BATCH);
        hits += peers[0] != 0;
    }
    double batch_ns = (now() - t0) / LOOKUPS * 1e9;
    printf("allowedips v%d: %d prefixes (%zu nodes) inserted in %.3f s; lookup %.0f ns single, "
           "%.0f ns each in batches of %d (%lu hits)\n",
           family, PREFIXES, wgf_allowedips_node_count(t), insert_s, single_ns, batch_ns, BATCH,
           hits);
    t0 = now();
    size_t removed = 0;
    for (uint32_t p = 1; p <= 1000; p++)
        removed += wgf_allowedips_remove_by_peer(t, p);
    printf("allowedips v%d: remove_by_peer over 1000 peers removed %zu in %.3f s\n", family,
           removed, now() - t0);
    wgf_allowedips_free(t);
    free(addrs);
    free(families);
    free(ptrs);
}

static void bench_index(void)
{
    struct wgf_index_table *t = wgf_index_table_new();
    uint32_t *idx = malloc(10000 * sizeof(*idx));
    if (!t || !idx)
        exit(1);
    for (int i = 0; i < 10000; i++) {
        idx[i] = (uint32_t)rnd();
        wgf_index_table_insert(t, idx[i], 1 + (uint32_t)i, (uint32_t)i);
    }
    struct wgf_index_entry e, out[BATCH];
    unsigned long hits = 0;
    double t0 = now();
    for (int i = 0; i < LOOKUPS; i++)
        hits += wgf_index_table_lookup(t, idx[i % 10000], &e) == 0;
    double single_ns = (now() - t0) / LOOKUPS * 1e9;
    uint32_t batch[BATCH];
    t0 = now();
    for (int i = 0; i + BATCH <= LOOKUPS; i += BATCH) {
        for (int k = 0; k < BATCH; k++)
            batch[k] = idx[(i + k) % 10000];
        hits += wgf_index_table_lookup_batch(t, batch, out, BATCH);
    }
    double batch_ns = (now() - t0) / LOOKUPS * 1e9;
    printf("index table: 10000 entries; lookup %.0f ns single, %.0f ns each in batches of %d "
           "(%lu hits)\n", single_ns, batch_ns, BATCH, hits);
    wgf_index_table_free(t);
    free(idx);
}

static void bench_replay(void)
{
    static struct wgf_replay r;
    wgf_replay_init(&r);
    unsigned long accepted = 0;
    double t0 = now();
    /* Mostly in order with some local reordering, as a multi-queue path delivers. */
    for (uint64_t c = 0; c < (uint64_t)LOOKUPS * 5; c++)
        accepted += wgf_replay_update(&r, c ^ (rnd() & 7)) == 0;
    double ns = (now() - t0) / ((double)LOOKUPS * 5) * 1e9;
    printf("replay window: update %.1f ns (%lu accepted)\n", ns, accepted);
}

int main(void)
{
    bench_family(WGF_IP4);
    bench_family(WGF_IP6);
    bench_index();
    bench_replay();
    return 0;
}
