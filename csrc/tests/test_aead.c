/* ChaCha20-Poly1305 and XChaCha20-Poly1305: RFC 8439 and draft-irtf-cfrg-xchacha-03 vectors,
 * every implementation against scalar, batched in-place seal/open, and forgeries rejected with the
 * buffer left untouched. */
#include <stdint.h>
#include <stdlib.h>

#include "aead.h"
#include "chacha20.h"
#include "check.h"
#include "memzero.h"
#include "poly1305.h"

static const int all_impls[] = {WGF_IMPL_SCALAR, WGF_IMPL_AVX2, WGF_IMPL_AVX512};
#define N_ALL_IMPLS (sizeof(all_impls) / sizeof(all_impls[0]))

static const char sunscreen[] =
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the "
    "future, sunscreen would be it.";

static const char rfc8439_2_8_2_ct[] =
    "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
    "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
    "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
    "3ff4def08e4b7a9de576d26586cec64b6116"
    "1ae10b594f09e26a7e902ecbd0600691";

/* RFC 8439 2.8.2. Its nonce (07000000 4041...47) is not WireGuard-shaped, so this drives each
 * implementation's ChaCha20 (fused one-time key) and Poly1305 halves directly, the way aead.c
 * composes them. */
WGF_TEST(aead_rfc8439_2_8_2_components)
{
    static const struct {
        int id;
        wgf_chacha20_xor_otk_fn chacha;
        wgf_poly1305_aead_fn poly;
    } parts[] = {
        {WGF_IMPL_SCALAR, wgf_chacha20_xor_otk_scalar, wgf_poly1305_aead_scalar},
#if defined(__x86_64__)
        {WGF_IMPL_AVX2, wgf_chacha20_xor_otk_avx2, wgf_poly1305_aead_avx2},
        {WGF_IMPL_AVX512, wgf_chacha20_xor_otk_avx512, wgf_poly1305_aead_avx512},
#endif
    };
    uint8_t key[32], nonce[12], ad[12], want[130], got[130], otk[32];
    const size_t len = sizeof(sunscreen) - 1;
    wgf_test_hex(key, 32, "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    wgf_test_hex(nonce, 12, "070000004041424344454647");
    wgf_test_hex(ad, 12, "50515253c0c1c2c3c4c5c6c7");
    CHECK(wgf_test_hex(want, sizeof(want), rfc8439_2_8_2_ct) == len + 16);
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        if (!wgf_impl_supported(parts[i].id))
            continue;
        memset(got, 0, sizeof(got));
        parts[i].chacha(otk, got, (const uint8_t *)sunscreen, len, key, nonce);
        parts[i].poly(got + len, otk, ad, sizeof(ad), got, len);
        CHECK_MEM(got, want, len + 16);
    }
}

static const char rfc8439_a5_ct[] =
    "64a0861575861af460f062c79be643bd5e805cfd345cf389f108670ac76c8cb2"
    "4c6cfc18755d43eea09ee94e382d26b0bdb7b73c321b0100d4f03b7f355894cf"
    "332f830e710b97ce98c8a84abd0b948114ad176e008d33bd60f982b1ff37c855"
    "9797a06ef4f0ef61c186324e2b3506383606907b6a7c02b0f9f6157b53c867e4"
    "b9166c767b804d46a59b5216cde7a4e99040c5a40433225ee282a1b0a06c523e"
    "af4534d7f83fa1155b0047718cbc546a0d072b04b3564eea1b422273f548271a"
    "0bb2316053fa76991955ebd63159434ecebb4e466dae5a1073a6727627097a10"
    "49e617d91d361094fa68f0ff77987130305beaba2eda04df997b714d6c6f2c29"
    "a6ad5cb4022b02709b"
    "eead9d67890cbb22392336fea1851f38";

static const char rfc8439_a5_pt[] =
    "Internet-Drafts are draft documents valid for a maximum of six months and may be "
    "updated, replaced, or obsoleted by other documents at any time. It is inappropriate to "
    "use Internet-Drafts as reference material or to cite them other than as "
    "/\xe2\x80\x9cwork in progress./\xe2\x80\x9d";

/* RFC 8439 A.5: its nonce 00000000 0102030405060708 is WireGuard's layout for the counter
 * 0x0807060504030201, so it goes through the public one-shot API, under every implementation. */
WGF_TEST(aead_rfc8439_a5_one_shot)
{
    uint8_t key[32], ad[12], ct[281], buf[281];
    const size_t pt_len = sizeof(rfc8439_a5_pt) - 1;
    const uint64_t counter = 0x0807060504030201u;
    wgf_test_hex(key, 32, "1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0");
    wgf_test_hex(ad, 12, "f33388860000000000004e91");
    CHECK(pt_len == 265);
    CHECK(wgf_test_hex(ct, sizeof(ct), rfc8439_a5_ct) == pt_len + 16);
    for (size_t i = 0; i < N_ALL_IMPLS; i++) {
        if (wgf_impl_select(all_impls[i]) != 0)
            continue;
        memset(buf, 0, sizeof(buf));
        CHECK(wgf_aead_open(buf, ct, sizeof(ct), ad, sizeof(ad), counter, key) == 0);
        CHECK_MEM(buf, rfc8439_a5_pt, pt_len);
        wgf_aead_seal(buf, buf, pt_len, ad, sizeof(ad), counter, key); /* in place */
        CHECK_MEM(buf, ct, sizeof(ct));
        /* Wrong AD, wrong counter: rejected. */
        ad[0] ^= 1;
        CHECK(wgf_aead_open(buf, ct, sizeof(ct), ad, sizeof(ad), counter, key) == -1);
        ad[0] ^= 1;
        CHECK(wgf_aead_open(buf, ct, sizeof(ct), ad, sizeof(ad), counter + 1, key) == -1);
        CHECK(wgf_aead_open(buf, ct, 15, ad, sizeof(ad), counter, key) == -1);
    }
    CHECK(wgf_impl_select(WGF_IMPL_AUTO) == 0);
}

/* draft-irtf-cfrg-xchacha-03 A.3.1. */
WGF_TEST(xaead_xchacha_draft_a_3_1)
{
    uint8_t key[32], nonce[24], ad[12], want[130], buf[130];
    const size_t len = sizeof(sunscreen) - 1;
    wgf_test_hex(key, 32, "808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
    wgf_test_hex(nonce, 24, "404142434445464748494a4b4c4d4e4f5051525354555657");
    wgf_test_hex(ad, 12, "50515253c0c1c2c3c4c5c6c7");
    CHECK(wgf_test_hex(want, sizeof(want),
                       "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
                       "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
                       "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
                       "21f9664c97637da9768812f615c68b13b52e"
                       "c0875924c1c7987947deafd8780acf49") == len + 16);
    for (size_t i = 0; i < N_ALL_IMPLS; i++) {
        if (wgf_impl_select(all_impls[i]) != 0)
            continue;
        memset(buf, 0, sizeof(buf));
        wgf_xaead_seal(buf, (const uint8_t *)sunscreen, len, ad, sizeof(ad), nonce, key);
        CHECK_MEM(buf, want, len + 16);
        uint8_t pt[114];
        CHECK(wgf_xaead_open(pt, want, len + 16, ad, sizeof(ad), nonce, key) == 0);
        CHECK_MEM(pt, sunscreen, len);
        memcpy(buf, want, len + 16);
        buf[len + 3] ^= 0x10;
        memset(pt, 0x77, sizeof(pt));
        CHECK(wgf_xaead_open(pt, buf, len + 16, ad, sizeof(ad), nonce, key) == -1);
        CHECK(pt[0] == 0x77 && pt[113] == 0x77); /* nothing decrypted on failure */
        CHECK(wgf_xaead_open(pt, buf, 10, ad, sizeof(ad), nonce, key) == -1);
    }
    CHECK(wgf_impl_select(WGF_IMPL_AUTO) == 0);
}

static uint64_t aead_rng_state = 0x0123456789abcdefu;

static uint8_t aead_rand_byte(void)
{
    aead_rng_state ^= aead_rng_state << 13;
    aead_rng_state ^= aead_rng_state >> 7;
    aead_rng_state ^= aead_rng_state << 17;
    return (uint8_t)(aead_rng_state >> 32);
}

/* Every implementation seals exactly like scalar (lengths 0..1600, with and without AD). */
WGF_TEST(aead_impls_match_scalar)
{
    enum { MAXLEN = 1600 };
    uint8_t key[32], ad[40];
    uint8_t *pt = malloc(MAXLEN), *want = malloc(MAXLEN + 16), *got = malloc(MAXLEN + 16),
            *back = malloc(MAXLEN + 1);
    for (int i = 0; i < 32; i++)
        key[i] = aead_rand_byte();
    for (size_t i = 0; i < sizeof(ad); i++)
        ad[i] = aead_rand_byte();
    for (size_t i = 0; i < MAXLEN; i++)
        pt[i] = aead_rand_byte();
    for (size_t len = 0; len <= MAXLEN; len += (len < 300 ? 1 : 7)) {
        size_t ad_len = len % sizeof(ad);
        uint64_t counter = len * 0x9e3779b97f4a7c15u;
        CHECK(wgf_impl_select(WGF_IMPL_SCALAR) == 0);
        wgf_aead_seal(want, pt, len, ad, ad_len, counter, key);
        for (size_t i = 1; i < N_ALL_IMPLS; i++) {
            if (wgf_impl_select(all_impls[i]) != 0)
                continue;
            wgf_aead_seal(got, pt, len, ad, ad_len, counter, key);
            int bad = memcmp(got, want, len + 16) != 0;
            bad |= wgf_aead_open(back, got, len + 16, ad, ad_len, counter, key) != 0;
            bad |= memcmp(back, pt, len) != 0;
            if (bad) {
                fprintf(stderr, "impl %d len %zu ad_len %zu differs from scalar\n",
                        all_impls[i], len, ad_len);
                CHECK(!bad);
                goto out;
            }
        }
    }
out:
    CHECK(wgf_impl_select(WGF_IMPL_AUTO) == 0);
    free(pt);
    free(want);
    free(got);
    free(back);
}

#define BATCH 37
#define BATCH_MAX_LEN 1500

/* In-place batch seal equals the one-shot seal; batch open restores the plaintext; a flipped
 * bit in ciphertext or tag fails only that packet and leaves its buffer as it was. */
WGF_TEST(aead_batch_round_trip_and_forgery)
{
    static const size_t lens[BATCH] = {0,   1,   15,  16,  17,  63,  64,  65,   127,  128,
                                       129, 255, 256, 257, 511, 512, 513, 1023, 1024, 1025,
                                       1280, 1419, 1420, 1421, 1436, 1440, 1500, 0,  32,  48,
                                       100, 200, 300, 400, 700, 960, 961};
    uint8_t key[32];
    struct wgf_packet pkts[BATCH];
    uint8_t *plain[BATCH], *sealed[BATCH];
    for (int i = 0; i < 32; i++)
        key[i] = aead_rand_byte();
    for (size_t p = 0; p < BATCH; p++) {
        plain[p] = malloc(lens[p] + 1);
        sealed[p] = malloc(lens[p] + 16);
        for (size_t i = 0; i < lens[p]; i++)
            plain[p][i] = aead_rand_byte();
        pkts[p].data = malloc(lens[p] + 16);
    }

    for (size_t i = 0; i < N_ALL_IMPLS; i++) {
        if (wgf_impl_select(all_impls[i]) != 0)
            continue;
        for (size_t p = 0; p < BATCH; p++) {
            memcpy(pkts[p].data, plain[p], lens[p]);
            pkts[p].len = lens[p];
            pkts[p].counter = (uint64_t)p * 1000003u + (p == 5 ? UINT64_MAX - 5 : 0);
            pkts[p].result = 99;
            wgf_aead_seal(sealed[p], plain[p], lens[p], NULL, 0, pkts[p].counter, key);
        }
        wgf_aead_seal_batch(pkts, BATCH, key);
        for (size_t p = 0; p < BATCH; p++) {
            CHECK(pkts[p].result == 0);
            CHECK_MEM(pkts[p].data, sealed[p], lens[p] + 16);
            pkts[p].len = lens[p] + 16;
        }

        /* Forge: p % 3 == 1 flips a ciphertext bit (or a tag bit if empty), p % 3 == 2 a tag
         * bit. */
        for (size_t p = 0; p < BATCH; p++) {
            if (p % 3 == 1)
                pkts[p].data[lens[p] ? (p * 7) % lens[p] : 0] ^= (uint8_t)(1u << (p % 8));
            else if (p % 3 == 2)
                pkts[p].data[lens[p] + p % 16] ^= 0x80;
        }
        size_t expect_ok = 0;
        for (size_t p = 0; p < BATCH; p++)
            expect_ok += p % 3 == 0;
        CHECK(wgf_aead_open_batch(pkts, BATCH, key) == expect_ok);
        for (size_t p = 0; p < BATCH; p++) {
            if (p % 3 == 0) {
                CHECK(pkts[p].result == 0);
                CHECK_MEM(pkts[p].data, plain[p], lens[p]);
                CHECK_MEM(pkts[p].data + lens[p], sealed[p] + lens[p], 16); /* tag untouched */
            } else {
                CHECK(pkts[p].result == -1);
                /* Unchanged: still the forged ciphertext, i.e. sealed with one bit flipped. */
                size_t diff = 0;
                for (size_t b = 0; b < lens[p] + 16; b++)
                    diff += pkts[p].data[b] != sealed[p][b];
                CHECK(diff == 1);
            }
        }
    }

    /* Packets shorter than a tag are rejected, not read. */
    pkts[0].len = 15;
    CHECK(wgf_aead_open_batch(pkts, 1, key) == 0);
    CHECK(pkts[0].result == -1);
    CHECK(wgf_aead_open_batch(pkts, 0, key) == 0);
    wgf_aead_seal_batch(pkts, 0, key);

    CHECK(wgf_impl_select(WGF_IMPL_AUTO) == 0);
    for (size_t p = 0; p < BATCH; p++) {
        free(plain[p]);
        free(sealed[p]);
        free(pkts[p].data);
    }
}

WGF_TEST(aead_impl_selection)
{
    CHECK(wgf_impl_supported(WGF_IMPL_SCALAR) == 1);
    CHECK(wgf_impl_supported(42) == 0);
    CHECK(wgf_impl_supported(WGF_IMPL_AUTO) == 0); /* AUTO is a request, not an impl */
    int before = wgf_impl_active();
    CHECK(wgf_impl_select(42) == -1);
    CHECK(wgf_impl_active() == before);
    CHECK(wgf_impl_select(WGF_IMPL_AUTO) == 0);
    int best = wgf_impl_active();
    CHECK(best != WGF_IMPL_AUTO);
    for (size_t i = 0; i < N_ALL_IMPLS; i++)
        if (wgf_impl_supported(all_impls[i]))
            CHECK(best >= all_impls[i]); /* auto picks the fastest supported */
    CHECK(strcmp(wgf_impl_name(WGF_IMPL_SCALAR), "scalar") == 0);
    CHECK(strcmp(wgf_impl_name(WGF_IMPL_AVX512), "avx512") == 0);
    CHECK(strcmp(wgf_impl_name(-3), "unknown") == 0);
}

WGF_TEST(memzero_zeroes)
{
    uint8_t buf[37];
    memset(buf, 0xff, sizeof(buf));
    wgf_memzero(buf + 1, 35);
    CHECK(buf[0] == 0xff && buf[36] == 0xff);
    for (int i = 1; i < 36; i++)
        CHECK(buf[i] == 0);
}
