/* Poly1305 with one message per SIMD lane (wgf_poly1305_aead_lanes_avx512) and the batch paths
 * that use it: every length 0..2100 against scalar, extreme limbs (all-ones keys and data),
 * mixed-length batches that split into same-length subsets, and forgeries among them. */
#include <stdint.h>
#include <stdlib.h>

#include "aead.h"
#include "check.h"
#include "poly1305.h"

static const int lanes_impls[] = {WGF_IMPL_SCALAR, WGF_IMPL_AVX2, WGF_IMPL_AVX512};
#define N_LANES_IMPLS (sizeof(lanes_impls) / sizeof(lanes_impls[0]))

static uint64_t lanes_rng = 0x243f6a8885a308d3u;

static uint8_t lanes_byte(void)
{
    lanes_rng ^= lanes_rng << 13;
    lanes_rng ^= lanes_rng >> 7;
    lanes_rng ^= lanes_rng << 17;
    return (uint8_t)(lanes_rng >> 32);
}

#define LANES_MAX_LEN 2100

/* Lane n of every call sees a different key and message; odd lanes of every third length are
 * all 0xff (largest clamped r, largest blocks) to push the limbs to their bounds. */
WGF_TEST(poly1305_lanes_match_scalar)
{
#if defined(__x86_64__)
    if (!wgf_impl_supported(WGF_IMPL_AVX512) || !wgf_poly1305_avx512_usable())
        return;
    uint8_t *msg[WGF_POLY1305_LANES_MAX], otk[WGF_POLY1305_LANES_MAX][32];
    uint8_t got[WGF_POLY1305_LANES_MAX][16], want[16];
    uint8_t *tag[WGF_POLY1305_LANES_MAX];
    const uint8_t *otk_p[WGF_POLY1305_LANES_MAX], *msg_p[WGF_POLY1305_LANES_MAX];
    for (size_t j = 0; j < WGF_POLY1305_LANES_MAX; j++) {
        msg[j] = malloc(LANES_MAX_LEN);
        tag[j] = got[j];
        otk_p[j] = otk[j];
        msg_p[j] = msg[j];
    }
    int failures = 0;
    for (size_t len = 0; len <= LANES_MAX_LEN && failures < 5; len++) {
        size_t n = 1 + len % WGF_POLY1305_LANES_MAX;
        int extreme = len % 3 == 0;
        for (size_t j = 0; j < n; j++) {
            int ones = extreme && (j & 1);
            for (int i = 0; i < 32; i++)
                otk[j][i] = ones ? 0xff : lanes_byte();
            for (size_t i = 0; i < len; i++)
                msg[j][i] = ones ? 0xff : lanes_byte();
        }
        memset(got, 0xaa, sizeof(got));
        CHECK(wgf_poly1305_aead_lanes_avx512(tag, otk_p, msg_p, len, n) == 0);
        for (size_t j = 0; j < WGF_POLY1305_LANES_MAX; j++) {
            if (j >= n) {
                CHECK(got[j][0] == 0xaa && got[j][15] == 0xaa); /* unused lanes write nothing */
                continue;
            }
            wgf_poly1305_aead_scalar(want, otk[j], NULL, 0, msg[j], len);
            if (memcmp(got[j], want, 16) != 0) {
                fprintf(stderr, "lanes: len %zu n %zu lane %zu differs from scalar\n", len, n, j);
                failures++;
            }
        }
    }
    CHECK(failures == 0);
    CHECK(wgf_poly1305_aead_lanes_avx512(tag, otk_p, msg_p, 16, 0) == -1);
    CHECK(wgf_poly1305_aead_lanes_avx512(tag, otk_p, msg_p, 16, 17) == -1);
    for (size_t j = 0; j < WGF_POLY1305_LANES_MAX; j++)
        free(msg[j]);
#endif
}

/* Seals and opens a batch in place under every implementation and checks it against scalar
 * one-shot seals: same-length batches of n packets for every length 0..2100. */
WGF_TEST(aead_batch_every_length_matches_scalar)
{
    enum { N = 19 }; /* a full group of 16 and a short one of 3 */
    uint8_t key[32];
    struct wgf_packet pkts[N];
    uint8_t *plain[N], *want[N];
    for (int i = 0; i < 32; i++)
        key[i] = lanes_byte();
    for (size_t p = 0; p < N; p++) {
        plain[p] = malloc(LANES_MAX_LEN);
        want[p] = malloc(LANES_MAX_LEN + 16);
        pkts[p].data = malloc(LANES_MAX_LEN + 16);
        for (size_t i = 0; i < LANES_MAX_LEN; i++)
            plain[p][i] = lanes_byte();
    }
    int failures = 0;
    for (size_t len = 0; len <= LANES_MAX_LEN && failures < 5; len++) {
        CHECK(wgf_impl_select(WGF_IMPL_SCALAR) == 0);
        for (size_t p = 0; p < N; p++)
            wgf_aead_seal(want[p], plain[p], len, NULL, 0, len * 64 + p, key);
        for (size_t i = 1; i < N_LANES_IMPLS; i++) {
            if (wgf_impl_select(lanes_impls[i]) != 0)
                continue;
            for (size_t p = 0; p < N; p++) {
                memcpy(pkts[p].data, plain[p], len);
                pkts[p].len = len;
                pkts[p].counter = len * 64 + p;
            }
            wgf_aead_seal_batch(pkts, N, key);
            int bad = 0;
            for (size_t p = 0; p < N; p++) {
                bad |= memcmp(pkts[p].data, want[p], len + 16) != 0;
                pkts[p].len = len + 16;
            }
            bad |= wgf_aead_open_batch(pkts, N, key) != N;
            for (size_t p = 0; p < N; p++)
                bad |= pkts[p].result != 0 || memcmp(pkts[p].data, plain[p], len) != 0;
            if (bad) {
                fprintf(stderr, "impl %d len %zu: batch differs from scalar\n", lanes_impls[i],
                        len);
                failures++;
            }
        }
    }
    CHECK(failures == 0);
    CHECK(wgf_impl_select(WGF_IMPL_AUTO) == 0);
    for (size_t p = 0; p < N; p++) {
        free(plain[p]);
        free(want[p]);
        free(pkts[p].data);
    }
}

/* 64 packets whose lengths repeat in uneven subsets (1, 2, ... 16 of a length, spread across a
 * group), some forged in ciphertext or tag and some too short to hold a tag: exactly the
 * authentic ones open, every other buffer is left as it was. */
WGF_TEST(aead_batch_mixed_lengths_and_forgeries)
{
    enum { N = 64 };
    static const size_t pool[] = {0, 1, 15, 16, 17, 64, 100, 127, 128, 129, 1420, 1421, 2048};
    uint8_t key[32];
    struct wgf_packet pkts[N];
    size_t len[N];
    uint8_t *plain[N], *want[N];
    for (int i = 0; i < 32; i++)
        key[i] = lanes_byte();
    for (int round = 0; round < 40; round++) {
        /* Few distinct lengths early (large same-length subsets), more later. */
        size_t distinct = 1 + (size_t)round % (sizeof(pool) / sizeof(pool[0]));
        for (size_t p = 0; p < N; p++) {
            len[p] = pool[lanes_byte() % distinct];
            plain[p] = malloc(len[p] + 1);
            want[p] = malloc(len[p] + 16);
            pkts[p].data = malloc(len[p] + 16);
            for (size_t i = 0; i < len[p]; i++)
                plain[p][i] = lanes_byte();
            CHECK(wgf_impl_select(WGF_IMPL_SCALAR) == 0);
            wgf_aead_seal(want[p], plain[p], len[p], NULL, 0, (uint64_t)round << 32 | p, key);
        }
        for (size_t i = 1; i < N_LANES_IMPLS; i++) {
            if (wgf_impl_select(lanes_impls[i]) != 0)
                continue;
            for (size_t p = 0; p < N; p++) {
                memcpy(pkts[p].data, plain[p], len[p]);
                pkts[p].len = len[p];
                pkts[p].counter = (uint64_t)round << 32 | p;
                pkts[p].result = 99;
            }
            wgf_aead_seal_batch(pkts, N, key);
            for (size_t p = 0; p < N; p++) {
                CHECK(pkts[p].result == 0);
                CHECK_MEM(pkts[p].data, want[p], len[p] + 16);
                pkts[p].len = len[p] + 16;
            }
            /* kind 1: ciphertext bit (tag bit if empty), 2: tag bit, 3: truncated below a
             * tag, 4: wrong counter; else authentic. */
            size_t expect_ok = 0;
            int kind[N];
            for (size_t p = 0; p < N; p++) {
                kind[p] = lanes_byte() % 8;
                if (kind[p] == 1)
                    pkts[p].data[len[p] ? lanes_byte() % len[p] : 3] ^= 0x01;
                else if (kind[p] == 2)
                    pkts[p].data[len[p] + lanes_byte() % 16] ^= 0x40;
                else if (kind[p] == 3)
                    pkts[p].len = lanes_byte() % 16;
                else if (kind[p] == 4)
                    pkts[p].counter ^= 1;
                else
                    expect_ok++;
            }
            CHECK(wgf_aead_open_batch(pkts, N, key) == expect_ok);
            for (size_t p = 0; p < N; p++) {
                if (kind[p] < 1 || kind[p] > 4) {
                    CHECK(pkts[p].result == 0);
                    CHECK_MEM(pkts[p].data, plain[p], len[p]);
                    continue;
                }
                CHECK(pkts[p].result == -1);
                size_t diff = 0;
                for (size_t b = 0; b < len[p] + 16; b++)
                    diff += pkts[p].data[b] != want[p][b];
                CHECK(diff == (kind[p] == 1 || kind[p] == 2 ? 1u : 0u));
            }
        }
        for (size_t p = 0; p < N; p++) {
            free(plain[p]);
            free(want[p]);
            free(pkts[p].data);
        }
    }
    CHECK(wgf_impl_select(WGF_IMPL_AUTO) == 0);
}
