/* ChaCha20 and HChaCha20: RFC 8439 / draft-irtf-cfrg-xchacha-03 vectors, and every SIMD
 * implementation the CPU supports checked byte for byte against the scalar one. */
#include <stdint.h>
#include <stdlib.h>

#include "aead.h"
#include "chacha20.h"
#include "check.h"

struct chacha_impl {
    int id;
    wgf_chacha20_xor_fn xor_fn;
    wgf_chacha20_xor_otk_fn xor_otk_fn;
};

static const struct chacha_impl chacha_impls[] = {
    {WGF_IMPL_SCALAR, wgf_chacha20_xor_scalar, wgf_chacha20_xor_otk_scalar},
#if defined(__x86_64__)
    {WGF_IMPL_AVX2, wgf_chacha20_xor_avx2, wgf_chacha20_xor_otk_avx2},
    {WGF_IMPL_AVX512, wgf_chacha20_xor_avx512, wgf_chacha20_xor_otk_avx512},
#endif
};
#define N_CHACHA_IMPLS (sizeof(chacha_impls) / sizeof(chacha_impls[0]))

static const char sunscreen[] =
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
    "future, sunscreen would be it.";

/* RFC 8439 2.3.2: key 00..1f, nonce 000000090000004a00000000, block counter 1. */
WGF_TEST(chacha20_block_rfc8439_2_3_2)
{
    uint8_t key[32], nonce[12], want[64], got[64];
    wgf_test_hex(key, 32, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    wgf_test_hex(nonce, 12, "000000090000004a00000000");
    wgf_test_hex(want, 64,
                 "10f1e7e4d13b5915500fdd1fa32071c4c7d1f4c733c068030422aa9ac3d46c4e"
                 "d2826446079faa0914c2d705d98b02a2b5129cd1de164eb9cbd083e8a2503c4e");
    wgf_chacha20_block(got, key, nonce, 1);
    CHECK_MEM(got, want, 64);
}

/* RFC 8439 A.1 test vectors #1 and #2: all-zero key and nonce, block counters 0 and 1. */
WGF_TEST(chacha20_block_rfc8439_a1)
{
    uint8_t key[32] = {0}, nonce[12] = {0}, want[64], got[64];
    wgf_test_hex(want, 64,
                 "76b8e0ada0f13d90405d6ae55386bd28bdd219b8a08ded1aa836efcc8b770dc7"
                 "da41597c5157488d7724e03fb8d84a376a43b8f41518a11cc387b669b2ee6586");
    wgf_chacha20_block(got, key, nonce, 0);
    CHECK_MEM(got, want, 64);
    wgf_test_hex(want, 64,
                 "9f07e7be5551387a98ba977c732d080dcb0f29a048e3656912c6533e32ee7aed"
                 "29b721769ce64e43d57133b074d839d531ed1f28510afb45ace10a1f4b794d6f");
    wgf_chacha20_block(got, key, nonce, 1);
    CHECK_MEM(got, want, 64);
}

/* RFC 8439 2.4.2, through every supported implementation, out of place and in place. */
WGF_TEST(chacha20_encrypt_rfc8439_2_4_2)
{
    uint8_t key[32], nonce[12], want[114], got[114];
    const size_t len = sizeof(sunscreen) - 1;
    CHECK(len == 114);
    wgf_test_hex(key, 32, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    wgf_test_hex(nonce, 12, "000000000000004a00000000");
    wgf_test_hex(want, 114,
                 "6e2e359a2568f98041ba0728dd0d6981e97e7aec1d4360c20a27afccfd9fae0b"
                 "f91b65c5524733ab8f593dabcd62b3571639d624e65152ab8f530c359f0861d8"
                 "07ca0dbf500d6a6156a38e088a22b65e52bc514d16ccf806818ce91ab7793736"
                 "5af90bbf74a35be6b40b8eedf2785e42874d");
    for (size_t i = 0; i < N_CHACHA_IMPLS; i++) {
        if (!wgf_impl_supported(chacha_impls[i].id))
            continue;
        memset(got, 0, sizeof(got));
        chacha_impls[i].xor_fn(got, (const uint8_t *)sunscreen, len, key, nonce, 1);
        CHECK_MEM(got, want, len);
        memcpy(got, sunscreen, len);
        chacha_impls[i].xor_fn(got, got, len, key, nonce, 1);
        CHECK_MEM(got, want, len);
        chacha_impls[i].xor_fn(got, got, len, key, nonce, 1); /* and back */
        CHECK_MEM(got, sunscreen, len);
    }
}

/* RFC 8439 2.6.2 Poly1305 key generation: the fused form's one-time key is block 0's first half,
 * whatever the data length. */
WGF_TEST(chacha20_otk_rfc8439_2_6_2)
{
    uint8_t key[32], nonce[12], want[32], otk[32], data[300] = {0}, block1[64];
    wgf_test_hex(key, 32, "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    wgf_test_hex(nonce, 12, "000000000001020304050607");
    wgf_test_hex(want, 32, "8ad5a08b905f81cc815040274ab29471a833b637e3fd0da508dbb8e2fdd1a646");
    wgf_chacha20_block(block1, key, nonce, 1);
    for (size_t i = 0; i < N_CHACHA_IMPLS; i++) {
        if (!wgf_impl_supported(chacha_impls[i].id))
            continue;
        static const size_t lens[] = {0, 1, 64, 300};
        for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
            memset(otk, 0, sizeof(otk));
            memset(data, 0, sizeof(data));
            chacha_impls[i].xor_otk_fn(otk, data, data, lens[j], key, nonce);
            CHECK_MEM(otk, want, 32);
            /* The data starts at block 1. */
            size_t n = lens[j] < 64 ? lens[j] : 64;
            CHECK_MEM(data, block1, n);
        }
    }
}

/* draft-irtf-cfrg-xchacha-03 2.2.1. */
WGF_TEST(hchacha20_xchacha_draft_2_2_1)
{
    uint8_t key[32], nonce[16], want[32], got[32];
    wgf_test_hex(key, 32, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f");
    wgf_test_hex(nonce, 16, "000000090000004a0000000031415927");
    wgf_test_hex(want, 32, "82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc");
    wgf_hchacha20(got, key, nonce);
    CHECK_MEM(got, want, 32);
}

/* RFC 8439 defines the block counter as one 32-bit word: after 0xffffffff comes 0, with the
 * nonce unchanged. */
WGF_TEST(chacha20_counter_wraps_32_bits)
{
    uint8_t key[32], nonce[12], got[128], want[128];
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(7 * i + 1);
    for (int i = 0; i < 12; i++)
        nonce[i] = (uint8_t)(0xf0 - i);
    wgf_chacha20_block(want, key, nonce, 0xffffffffu);
    wgf_chacha20_block(want + 64, key, nonce, 0);
    memset(got, 0, sizeof(got));
    wgf_chacha20_xor_scalar(got, got, sizeof(got), key, nonce, 0xffffffffu);
    CHECK_MEM(got, want, sizeof(want));
}

static uint64_t test_rng_state = 0x9e3779b97f4a7c15u;

static uint8_t test_rand_byte(void)
{
    test_rng_state ^= test_rng_state << 13;
    test_rng_state ^= test_rng_state >> 7;
    test_rng_state ^= test_rng_state << 17;
    return (uint8_t)(test_rng_state >> 24);
}

#define MAX_LEN 2100
#define GUARD 64

/* Every supported implementation equals scalar for every length 0..2100, in and out of place,
 * for counters including ones that wrap mid-message; nothing past len is written. */
WGF_TEST(chacha20_simd_matches_scalar)
{
    static const uint32_t counters[] = {0, 1, 0x12345678u, 0xfffffff0u, 0xffffffffu};
    uint8_t key[32], nonce[12];
    uint8_t *in = malloc(MAX_LEN), *want = malloc(MAX_LEN + GUARD),
            *got = malloc(MAX_LEN + GUARD), *inplace = malloc(MAX_LEN + GUARD);
    for (int i = 0; i < 32; i++)
        key[i] = test_rand_byte();
    for (int i = 0; i < 12; i++)
        nonce[i] = test_rand_byte();
    for (size_t i = 0; i < MAX_LEN; i++)
        in[i] = test_rand_byte();

    for (size_t c = 0; c < sizeof(counters) / sizeof(counters[0]); c++) {
        for (size_t len = 0; len <= MAX_LEN; len++) {
            wgf_chacha20_xor_scalar(want, in, len, key, nonce, counters[c]);
            for (size_t i = 1; i < N_CHACHA_IMPLS; i++) {
                if (!wgf_impl_supported(chacha_impls[i].id))
                    continue;
                memset(got, 0xa5, MAX_LEN + GUARD);
                chacha_impls[i].xor_fn(got, in, len, key, nonce, counters[c]);
                memcpy(inplace, in, len);
                memset(inplace + len, 0x5a, GUARD);
                chacha_impls[i].xor_fn(inplace, inplace, len, key, nonce, counters[c]);
                int bad = memcmp(got, want, len) != 0 || memcmp(inplace, want, len) != 0;
                for (size_t g = 0; g < GUARD; g++)
                    bad |= got[len + g] != 0xa5 || inplace[len + g] != 0x5a;
                if (bad) {
                    fprintf(stderr, "impl %d len %zu counter %#x differs from scalar\n",
                            chacha_impls[i].id, len, counters[c]);
                    CHECK(!bad);
                    goto out;
                }
            }
        }
    }
out:
    free(in);
    free(want);
    free(got);
    free(inplace);
}

/* The fused one-time-key form equals block 0 + the plain stream from block 1, for every impl. */
WGF_TEST(chacha20_otk_matches_separate_block)
{
    uint8_t key[32], nonce[12], block0[64], otk[32];
    uint8_t *in = malloc(MAX_LEN), *want = malloc(MAX_LEN), *got = malloc(MAX_LEN + GUARD);
    for (int i = 0; i < 32; i++)
        key[i] = test_rand_byte();
    for (int i = 0; i < 12; i++)
        nonce[i] = test_rand_byte();
    for (size_t i = 0; i < MAX_LEN; i++)
        in[i] = test_rand_byte();
    wgf_chacha20_block(block0, key, nonce, 0);

    for (size_t len = 0; len <= MAX_LEN; len++) {
        wgf_chacha20_xor_scalar(want, in, len, key, nonce, 1);
        for (size_t i = 0; i < N_CHACHA_IMPLS; i++) {
            if (!wgf_impl_supported(chacha_impls[i].id))
                continue;
            memset(got, 0xa5, MAX_LEN + GUARD);
            memset(otk, 0, sizeof(otk));
            chacha_impls[i].xor_otk_fn(otk, got, in, len, key, nonce);
            int bad = memcmp(otk, block0, 32) != 0 || memcmp(got, want, len) != 0;
            for (size_t g = 0; g < GUARD; g++)
                bad |= got[len + g] != 0xa5;
            if (bad) {
                fprintf(stderr, "impl %d len %zu: fused otk form differs\n", chacha_impls[i].id,
                        len);
                CHECK(!bad);
                goto out;
            }
        }
    }
out:
    free(in);
    free(want);
    free(got);
}

/* The dispatched wgf_chacha20_xor follows wgf_impl_select. */
WGF_TEST(chacha20_dispatch_follows_selection)
{
    uint8_t key[32] = {1}, nonce[12] = {2}, want[200], got[200];
    memset(want, 0, sizeof(want));
    wgf_chacha20_xor_scalar(want, want, sizeof(want), key, nonce, 3);
    for (size_t i = 0; i < N_CHACHA_IMPLS; i++) {
        if (!wgf_impl_supported(chacha_impls[i].id))
            continue;
        CHECK(wgf_impl_select(chacha_impls[i].id) == 0);
        CHECK(wgf_impl_active() == chacha_impls[i].id);
        memset(got, 0, sizeof(got));
        wgf_chacha20_xor(got, got, sizeof(got), key, nonce, 3);
        CHECK_MEM(got, want, sizeof(want));
    }
    CHECK(wgf_impl_select(WGF_IMPL_AUTO) == 0);
}

/* The batched one-time keys equal block 0 of each (key, nonce[i]), for every group size, and
 * sizes 0 and above the maximum write nothing. */
WGF_TEST(chacha20_otk_batch_matches_block0)
{
    static const struct {
        int id;
        wgf_chacha20_otk_batch_fn fn;
    } batch_impls[] = {
        {WGF_IMPL_SCALAR, wgf_chacha20_otk_batch_scalar},
#if defined(__x86_64__)
        {WGF_IMPL_AVX2, wgf_chacha20_otk_batch_avx2},
        {WGF_IMPL_AVX512, wgf_chacha20_otk_batch_avx512},
#endif
    };
    enum { MAXN = WGF_CHACHA20_OTK_BATCH_MAX };
    uint8_t key[32], nonces[MAXN + 1][12], want[MAXN + 1][64], otk[MAXN + 1][32];
    for (int i = 0; i < 32; i++)
        key[i] = test_rand_byte();
    for (int j = 0; j <= MAXN; j++) {
        for (int i = 0; i < 12; i++)
            nonces[j][i] = test_rand_byte();
        wgf_chacha20_block(want[j], key, nonces[j], 0);
    }
    for (size_t k = 0; k < sizeof(batch_impls) / sizeof(batch_impls[0]); k++) {
        if (!wgf_impl_supported(batch_impls[k].id))
            continue;
        for (size_t n = 0; n <= MAXN + 1; n++) {
            memset(otk, 0xcc, sizeof(otk));
            batch_impls[k].fn(otk, key, (const uint8_t(*)[12])nonces, n);
            size_t written = n <= MAXN ? n : 0;
            for (size_t j = 0; j <= MAXN; j++) {
                if (j < written) {
                    CHECK_MEM(otk[j], want[j], 32);
                } else {
                    CHECK(otk[j][0] == 0xcc && otk[j][31] == 0xcc);
                }
            }
        }
    }
}

/* The grouped in-place form equals the one-message forms for every job (fused with the one-time
 * key, or decrypt-only from block 1), whatever mix of lengths shares a pass (lanes of one pass
 * come from several messages). */
WGF_TEST(chacha20_jobs_match_single_messages)
{
    static const struct {
        int id;
        wgf_chacha20_jobs_fn fn;
    } jobs_impls[] = {
        {WGF_IMPL_SCALAR, wgf_chacha20_jobs_scalar},
#if defined(__x86_64__)
        {WGF_IMPL_AVX2, wgf_chacha20_jobs_avx2},
        {WGF_IMPL_AVX512, wgf_chacha20_jobs_avx512},
#endif
    };
    enum { NJOBS = 23, MAXJ = 1500 };
    static const size_t lens[NJOBS] = {0,  1,   64,  65,  1420, 15,  16,   0,   127, 128, 129, 1500,
                                       31, 200, 513, 640, 0,    700, 1023, 960, 961, 3,   1436};
    uint8_t key[32];
    struct wgf_chacha20_job jobs[NJOBS];
    uint8_t *want[NJOBS], want_otk[NJOBS][32];
    for (int i = 0; i < 32; i++)
        key[i] = test_rand_byte();
    for (size_t j = 0; j < NJOBS; j++) {
        jobs[j].data = malloc(MAXJ + GUARD);
        want[j] = malloc(MAXJ + GUARD);
        for (size_t i = 0; i < MAXJ + GUARD; i++)
            want[j][i] = test_rand_byte();
        for (int i = 0; i < 12; i++)
            jobs[j].nonce[i] = test_rand_byte();
        jobs[j].len = lens[j];
        jobs[j].with_otk = j % 3 != 2; /* some jobs decrypt only, as open does */
    }
    for (size_t k = 0; k < sizeof(jobs_impls) / sizeof(jobs_impls[0]); k++) {
        if (!wgf_impl_supported(jobs_impls[k].id))
            continue;
        /* Every prefix of the job list, so passes end at every possible lane. */
        for (size_t n = 0; n <= NJOBS; n++) {
            for (size_t j = 0; j < NJOBS; j++) {
                memcpy(jobs[j].data, want[j], MAXJ + GUARD);
                memset(jobs[j].otk, 0, 32);
            }
            jobs_impls[k].fn(jobs, n, key);
            for (size_t j = 0; j < NJOBS; j++) {
                uint8_t *expect = malloc(MAXJ + GUARD);
                memcpy(expect, want[j], MAXJ + GUARD);
                memset(want_otk[j], 0, 32);
                if (j < n && jobs[j].with_otk)
                    wgf_chacha20_xor_otk_scalar(want_otk[j], expect, expect, lens[j], key,
                                                jobs[j].nonce);
                else if (j < n)
                    wgf_chacha20_xor_scalar(expect, expect, lens[j], key, jobs[j].nonce, 1);
                int bad = memcmp(jobs[j].data, expect, MAXJ + GUARD) != 0 ||
                          memcmp(jobs[j].otk, want_otk[j], 32) != 0;
                free(expect);
                if (bad) {
                    fprintf(stderr, "impl %d: job %zu of %zu differs\n", jobs_impls[k].id, j, n);
                    CHECK(!bad);
                    goto out;
                }
            }
        }
    }
out:
    for (size_t j = 0; j < NJOBS; j++) {
        free(jobs[j].data);
        free(want[j]);
    }
}
