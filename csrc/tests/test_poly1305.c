/* Poly1305: RFC 8439 section 2.5.2 and Appendix A.3 vectors, the AEAD tag of section 2.8.2, the
 * tag comparison, and every SIMD variant against scalar over lengths 0..2100 and AD 0..40. */
#include "check.h"

#include <stdint.h>
#include <stdlib.h>

#include "poly1305.h"

static void check_mac_hex(const char *key_hex, const uint8_t *msg, size_t len, const char *tag_hex)
{
    uint8_t key[32], want[16], got[16];
    CHECK(wgf_test_hex(key, sizeof(key), key_hex) == 32);
    CHECK(wgf_test_hex(want, sizeof(want), tag_hex) == 16);
    wgf_poly1305_mac(got, key, msg, len);
    CHECK_MEM(got, want, 16);
}

static void check_mac_vector(const char *key_hex, const char *msg_hex, const char *tag_hex)
{
    uint8_t msg[128];
    size_t len = wgf_test_hex(msg, sizeof(msg), msg_hex);
    check_mac_hex(key_hex, msg, len, tag_hex);
}

WGF_TEST(poly1305_rfc8439_2_5_2)
{
    static const char msg[] = "Cryptographic Forum Research Group";
    check_mac_hex("85d6be7857556d337f4452fe42d506a80103808afb0db2fd4abff6af4149f51b",
                  (const uint8_t *)msg, sizeof(msg) - 1, "a8061dc1305136c6c22b8baf0c0127a9");
}

WGF_TEST(poly1305_rfc8439_a3_text)
{
    static const char ietf[] =
        "Any submission to the IETF intended by the Contributor for publication as all or part of "
        "an IETF Internet-Draft or RFC and any statement made within the context of an IETF "
        "activity is considered an \"IETF Contribution\". Such statements include oral "
        "statements in IETF sessions, as well as written and electronic communications made at "
        "any time or place, which are addressed to";
    static const char jabberwocky[] = "'Twas brillig, and the slithy toves\nDid gyre and gimble "
                                      "in the wabe:\nAll mimsy were the borogoves,\nAnd the mome "
                                      "raths outgrabe.";
    static const uint8_t zeros[64];

    CHECK(sizeof(ietf) - 1 == 375);
    CHECK(sizeof(jabberwocky) - 1 == 127);
    /* #1: all-zero key and message. */
    check_mac_hex("0000000000000000000000000000000000000000000000000000000000000000", zeros, 64,
                  "00000000000000000000000000000000");
    /* #2: r = 0, so the tag is s. */
    check_mac_hex("0000000000000000000000000000000036e5f6b5c5e06070f0efca96227a863e",
                  (const uint8_t *)ietf, 375, "36e5f6b5c5e06070f0efca96227a863e");
    /* #3: s = 0. */
    check_mac_hex("36e5f6b5c5e06070f0efca96227a863e00000000000000000000000000000000",
                  (const uint8_t *)ietf, 375, "f3477e7cd95417af89a6b8794c310cf0");
    /* #4 */
    check_mac_hex("1c9240a5eb55d38af333888604f6b5f0473917c1402b80099dca5cbc207075c0",
                  (const uint8_t *)jabberwocky, 127, "4541669a7eaaee61e708dc7cbcc5eb62");
}

WGF_TEST(poly1305_rfc8439_a3_reduction_edges)
{
    /* #5: h ends just at or above p: the final conditional subtraction must fire. */
    check_mac_vector("0200000000000000000000000000000000000000000000000000000000000000",
                     "ffffffffffffffffffffffffffffffff", "03000000000000000000000000000000");
    /* #6: adding s overflows 2^128 and must wrap. */
    check_mac_vector("02000000000000000000000000000000ffffffffffffffffffffffffffffffff",
                     "02000000000000000000000000000000", "03000000000000000000000000000000");
    /* #7: carries ripple through every limb. */
    check_mac_vector("0100000000000000000000000000000000000000000000000000000000000000",
                     "ffffffffffffffffffffffffffffffff"
                     "f0ffffffffffffffffffffffffffffff"
                     "11000000000000000000000000000000",
                     "05000000000000000000000000000000");
    /* #8: h reduces to exactly p, i.e. to zero. */
    check_mac_vector("0100000000000000000000000000000000000000000000000000000000000000",
                     "ffffffffffffffffffffffffffffffff"
                     "fbfefefefefefefefefefefefefefefe"
                     "01010101010101010101010101010101",
                     "00000000000000000000000000000000");
    /* #9: h = p - 1 + ... just below p after the multiply. */
    check_mac_vector("0200000000000000000000000000000000000000000000000000000000000000",
                     "fdffffffffffffffffffffffffffffff", "faffffffffffffffffffffffffffffff");
    /* #10 and #11: the 2^130 fold in the multiply produces a carry into the top limb. */
    check_mac_vector("0100000000000000040000000000000000000000000000000000000000000000",
                     "e33594d7505e43b900000000000000003394d7505e4379cd0100000000000000"
                     "0000000000000000000000000000000001000000000000000000000000000000",
                     "14000000000000005500000000000000");
    check_mac_vector("0100000000000000040000000000000000000000000000000000000000000000",
                     "e33594d7505e43b900000000000000003394d7505e4379cd0100000000000000"
                     "00000000000000000000000000000000",
                     "13000000000000000000000000000000");
}

static const struct {
    const char *name;
    wgf_poly1305_aead_fn fn;
} variants[] = {
    {"scalar", wgf_poly1305_aead_scalar},
    {"avx2", wgf_poly1305_aead_avx2},
    {"avx512", wgf_poly1305_aead_avx512},
};

static int variant_runs_here(size_t i)
{
    __builtin_cpu_init();
    if (i == 1)
        return __builtin_cpu_supports("avx2");
    if (i == 2)
        return __builtin_cpu_supports("avx2"); /* falls back to AVX2 without AVX-512 IFMA */
    return 1;
}

WGF_TEST(poly1305_aead_rfc8439_2_8_2)
{
    uint8_t otk[32], ad[12], ct[114], want[16], got[16];
    CHECK(wgf_test_hex(otk, 32, "7bac2b252db447af09b67a55a4e955840ae1d6731075d9eb2a9375783ed553ff") ==
          32);
    CHECK(wgf_test_hex(ad, 12, "50515253c0c1c2c3c4c5c6c7") == 12);
    CHECK(wgf_test_hex(ct, 114,
                       "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6"
                       "3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b36"
                       "92ddbd7f2d778b8c9803aee328091b58fab324e4fad675945585808b4831d7bc"
                       "3ff4def08e4b7a9de576d26586cec64b6116") == 114);
    CHECK(wgf_test_hex(want, 16, "1ae10b594f09e26a7e902ecbd0600691") == 16);
    for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++) {
        if (!variant_runs_here(v))
            continue;
        variants[v].fn(got, otk, ad, sizeof(ad), ct, sizeof(ct));
        if (memcmp(got, want, 16) != 0)
            fprintf(stderr, "variant %s\n", variants[v].name);
        CHECK_MEM(got, want, 16);
    }
}

/* xorshift64*: reproducible pseudo-random test data. */
static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545F4914F6CDD1DULL;
}

static void rng_fill(uint64_t *s, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rng_next(s) >> 56);
}

#define MAX_CT 2100
#define MAX_AD 40

/* The AEAD tag must equal the plain MAC of the explicitly built RFC 8439 section 2.8 input. */
WGF_TEST(poly1305_aead_matches_mac_of_padded_input)
{
    uint64_t seed = 0x5eed0001;
    uint8_t *buf = malloc(MAX_AD + 16 + 600 + 16 + 16);
    uint8_t ad[MAX_AD], ct[600], key[32], want[16], got[16];
    CHECK(buf != NULL);
    if (!buf)
        return;
    for (size_t ct_len = 0; ct_len < sizeof(ct); ct_len += 7) {
        size_t ad_len = ct_len % (MAX_AD + 1);
        rng_fill(&seed, key, 32);
        rng_fill(&seed, ad, ad_len);
        rng_fill(&seed, ct, ct_len);
        size_t n = 0;
        memcpy(buf, ad, ad_len);
        n += ad_len;
        while (n % 16)
            buf[n++] = 0;
        memcpy(buf + n, ct, ct_len);
        n += ct_len;
        while (n % 16)
            buf[n++] = 0;
        for (int i = 0; i < 8; i++)
            buf[n++] = (uint8_t)((uint64_t)ad_len >> (8 * i));
        for (int i = 0; i < 8; i++)
            buf[n++] = (uint8_t)((uint64_t)ct_len >> (8 * i));
        wgf_poly1305_mac(want, key, buf, n);
        wgf_poly1305_aead_scalar(got, key, ad, ad_len, ct, ct_len);
        CHECK_MEM(got, want, 16);
    }
    free(buf);
}

/* Every SIMD variant against scalar: every ct length 0..2100 and AD length 0..40, keys and data
 * pseudo-random, every fourth key with r and s at their maximum (all high bits set) and data all
 * 0xff so every carry path runs. */
WGF_TEST(poly1305_simd_variants_match_scalar)
{
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    uint8_t *ct = malloc(MAX_CT);
    uint8_t ad[MAX_AD], key[32], want[16], got[16];
    unsigned mismatches = 0;

    CHECK(ct != NULL);
    if (!ct)
        return;
    for (size_t ct_len = 0; ct_len <= MAX_CT; ct_len++) {
        for (size_t ad_len = 0; ad_len <= MAX_AD; ad_len++) {
            int saturated = ((ct_len + ad_len) & 3) == 0;
            if (saturated) {
                memset(key, 0xff, 32);
                memset(ad, 0xff, ad_len);
                memset(ct, 0xff, ct_len);
            } else {
                rng_fill(&seed, key, 32);
                rng_fill(&seed, ad, ad_len);
                /* Refill only a window: full refills would dominate the run time. */
                rng_fill(&seed, ct + (ct_len ? ct_len - 1 : 0) / 2, ct_len - ct_len / 2);
                if (ad_len == 0)
                    rng_fill(&seed, ct, ct_len);
            }
            wgf_poly1305_aead_scalar(want, key, ad, ad_len, ct, ct_len);
            for (size_t v = 1; v < sizeof(variants) / sizeof(variants[0]); v++) {
                if (!variant_runs_here(v))
                    continue;
                variants[v].fn(got, key, ad, ad_len, ct, ct_len);
                if (memcmp(got, want, 16) != 0 && mismatches++ < 5)
                    fprintf(stderr, "%s differs from scalar: ct_len %zu ad_len %zu\n",
                            variants[v].name, ct_len, ad_len);
            }
        }
    }
    CHECK(mismatches == 0);
    free(ct);
}

WGF_TEST(poly1305_tag_verify)
{
    uint8_t a[16], b[16];
    for (int i = 0; i < 16; i++)
        a[i] = b[i] = (uint8_t)(i * 37 + 11);
    CHECK(wgf_tag_verify(a, b) == 0);
    for (int i = 0; i < 16; i++) {
        for (int bit = 0; bit < 8; bit++) {
            b[i] ^= (uint8_t)(1u << bit);
            CHECK(wgf_tag_verify(a, b) == -1);
            b[i] ^= (uint8_t)(1u << bit);
        }
    }
    memset(b, 0, 16);
    CHECK(wgf_tag_verify(a, b) == -1);
    memset(a, 0, 16);
    CHECK(wgf_tag_verify(a, b) == 0);
}
