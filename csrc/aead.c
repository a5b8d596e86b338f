/* ChaCha20-Poly1305 (RFC 8439 section 2.8) with WireGuard's nonce, its batched in-place form,
 * XChaCha20-Poly1305, and the run-time choice of implementation.
 *
 * An implementation is a matched pair: the ChaCha20 of one instruction set with the Poly1305 of
 * the same one. Seal runs the fused ChaCha20 (block 0 -> one-time key, blocks 1.. -> ciphertext)
 * and then Poly1305 over the ciphertext; open computes the one-time key, verifies the tag in
 * constant time, and only then decrypts, so a forged packet never changes the buffer.
 *
 * The batch forms work in groups of 16 packets: seal runs ChaCha20 for the whole group as one
 * stream of (packet, block) SIMD lanes, then Poly1305 per packet while the group is still in L1;
 * open computes the group's one-time keys in one pass (a packet per lane), checks every tag, and
 * decrypts the authentic packets together. */
#include "aead.h"

#include <string.h>

#include "chacha20.h"
#include "cpu.h"
#include "memzero.h"
#include "poly1305.h"

#define WGF_NONCE_LEN 12
#define WGF_OTK_LEN WGF_POLY1305_KEY_LEN

struct aead_impl {
    int id;
    const char *name;
    wgf_chacha20_xor_fn chacha20_xor;
    wgf_chacha20_xor_otk_fn chacha20_xor_otk;
    wgf_chacha20_otk_batch_fn chacha20_otk_batch;
    wgf_chacha20_jobs_fn chacha20_jobs;
    wgf_poly1305_aead_fn poly1305_aead;
    int (*cpu_ok)(void);
    wgf_poly1305_aead_lanes_fn poly1305_lanes; /* optional: NULL = one message at a time */
};

static int cpu_always(void)
{
    return 1;
}

static const struct aead_impl impls[] = {
    {WGF_IMPL_SCALAR, "scalar", wgf_chacha20_xor_scalar, wgf_chacha20_xor_otk_scalar,
     wgf_chacha20_otk_batch_scalar, wgf_chacha20_jobs_scalar, wgf_poly1305_aead_scalar,
     cpu_always, NULL},
#if defined(__x86_64__)
    {WGF_IMPL_AVX2, "avx2", wgf_chacha20_xor_avx2, wgf_chacha20_xor_otk_avx2,
     wgf_chacha20_otk_batch_avx2, wgf_chacha20_jobs_avx2, wgf_poly1305_aead_avx2,
     wgf_cpu_has_avx2, NULL},
    {WGF_IMPL_AVX512, "avx512", wgf_chacha20_xor_avx512, wgf_chacha20_xor_otk_avx512,
     wgf_chacha20_otk_batch_avx512, wgf_chacha20_jobs_avx512, wgf_poly1305_aead_avx512,
     wgf_cpu_has_avx512, wgf_poly1305_aead_lanes_avx512},
#endif
};
#define N_IMPLS (sizeof(impls) / sizeof(impls[0]))

static const struct aead_impl *impl_find(int id)
{
    for (size_t i = 0; i < N_IMPLS; i++)
        if (impls[i].id == id)
            return &impls[i];
    return NULL;
}

static int impl_usable(const struct aead_impl *im)
{
    return im != NULL && im->chacha20_xor && im->chacha20_xor_otk &&
           im->chacha20_otk_batch && im->chacha20_jobs && im->poly1305_aead &&
           im->cpu_ok();
}

/* The process-wide choice; NULL until first use. Races on first use are benign: every thread
 * computes the same answer and stores it atomically. */
static const struct aead_impl *active_impl;

static const struct aead_impl *impl_best(void)
{
    for (size_t i = N_IMPLS; i-- > 0;) /* impls[] is ordered slowest to fastest */
        if (impl_usable(&impls[i]))
            return &impls[i];
    return &impls[0];
}

static const struct aead_impl *impl(void)
{
    const struct aead_impl *im = __atomic_load_n(&active_impl, __ATOMIC_ACQUIRE);
    if (im == NULL) {
        im = impl_best();
        __atomic_store_n(&active_impl, im, __ATOMIC_RELEASE);
    }
    return im;
}

int wgf_impl_supported(int id)
{
    return impl_usable(impl_find(id));
}

int wgf_impl_select(int id)
{
    const struct aead_impl *im = id == WGF_IMPL_AUTO ? impl_best() : impl_find(id);
    if (!impl_usable(im))
        return -1;
    __atomic_store_n(&active_impl, im, __ATOMIC_RELEASE);
    return 0;
}

int wgf_impl_active(void)
{
    return impl()->id;
}

const char *wgf_impl_name(int id)
{
    if (id == WGF_IMPL_AUTO)
        return "auto";
    const struct aead_impl *im = impl_find(id);
    return im ? im->name : "unknown";
}

void wgf_chacha20_xor(uint8_t *out, const uint8_t *in, size_t len, const uint8_t key[32],
                      const uint8_t nonce[12], uint32_t block)
{
    impl()->chacha20_xor(out, in, len, key, nonce, block);
}

/* WireGuard's 96-bit nonce: 32 zero bits then the little-endian 64-bit counter. */
static void wg_nonce(uint8_t nonce[WGF_NONCE_LEN], uint64_t counter)
{
    memset(nonce, 0, 4);
    for (int i = 0; i < 8; i++)
        nonce[4 + i] = (uint8_t)(counter >> (8 * i));
}

static void seal_with(const struct aead_impl *im, uint8_t *dst, const uint8_t *src, size_t len,
                      const uint8_t *ad, size_t ad_len, const uint8_t nonce[WGF_NONCE_LEN],
                      const uint8_t key[WGF_AEAD_KEY_LEN])
{
    uint8_t otk[WGF_OTK_LEN];
    im->chacha20_xor_otk(otk, dst, src, len, key, nonce);
    im->poly1305_aead(dst + len, otk, ad, ad_len, dst, len);
    wgf_memzero(otk, sizeof(otk));
}

/* len is ciphertext||tag, already checked >= 16; otk is this message's one-time key. */
static int open_with_otk(const struct aead_impl *im, uint8_t *dst, const uint8_t *src, size_t len,
                         const uint8_t *ad, size_t ad_len, const uint8_t nonce[WGF_NONCE_LEN],
                         const uint8_t key[WGF_AEAD_KEY_LEN], const uint8_t otk[WGF_OTK_LEN])
{
    uint8_t tag[WGF_AEAD_TAG_LEN];
    size_t ct_len = len - WGF_AEAD_TAG_LEN;

    im->poly1305_aead(tag, otk, ad, ad_len, src, ct_len);
    int ok = wgf_tag_verify(tag, src + ct_len) == 0;
    wgf_memzero(tag, sizeof(tag));
    if (!ok)
        return -1;
    im->chacha20_xor(dst, src, ct_len, key, nonce, 1);
    return 0;
}

static int open_with(const struct aead_impl *im, uint8_t *dst, const uint8_t *src, size_t len,
                     const uint8_t *ad, size_t ad_len, const uint8_t nonce[WGF_NONCE_LEN],
                     const uint8_t key[WGF_AEAD_KEY_LEN])
{
    uint8_t otk[1][WGF_OTK_LEN];
    im->chacha20_otk_batch(otk, key, (const uint8_t(*)[WGF_NONCE_LEN])nonce, 1);
    int rc = open_with_otk(im, dst, src, len, ad, ad_len, nonce, key, otk[0]);
    wgf_memzero(otk, sizeof(otk));
    return rc;
}

void wgf_aead_seal(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t ad_len,
                   uint64_t counter, const uint8_t key[WGF_AEAD_KEY_LEN])
{
    uint8_t nonce[WGF_NONCE_LEN];
    wg_nonce(nonce, counter);
    seal_with(impl(), dst, src, len, ad, ad_len, nonce, key);
}

int wgf_aead_open(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t ad_len,
                  uint64_t counter, const uint8_t key[WGF_AEAD_KEY_LEN])
{
    uint8_t nonce[WGF_NONCE_LEN];
    if (len < WGF_AEAD_TAG_LEN)
        return -1;
    wg_nonce(nonce, counter);
    return open_with(impl(), dst, src, len, ad, ad_len, nonce, key);
}

/* The lanes form runs eight messages at a time and costs about the same for fewer, so a chunk of
 * same-length messages smaller than this gets its tags one at a time instead (at 1420 bytes
 * eight lanes cost ~5.2 one-message tags, at 64 bytes ~3.7; bench/bench_aead.c). */
#define LANES_CHUNK 8
#define LANES_MIN_MESSAGES 5

/* Tags (empty associated data) of a group of at most WGF_POLY1305_LANES_MAX messages: messages
 * of equal length go through the lanes form together, eight at a time, the rest one at a time.
 * Lengths are public, so steering by them leaks nothing. */
static void group_tags(const struct aead_impl *im, uint8_t *const tag[], const uint8_t *const otk[],
                       const uint8_t *const ct[], const size_t len[], size_t n)
{
    uint32_t done = 0;
    for (size_t i = 0; i < n; i++) {
        if (done >> i & 1)
            continue;
        uint8_t *same_tag[WGF_POLY1305_LANES_MAX];
        const uint8_t *same_otk[WGF_POLY1305_LANES_MAX], *same_ct[WGF_POLY1305_LANES_MAX];
        size_t same = 0;
        for (size_t j = i; j < n; j++) {
            if ((done >> j & 1) || len[j] != len[i])
                continue;
            done |= (uint32_t)1 << j;
            same_tag[same] = tag[j];
            same_otk[same] = otk[j];
            same_ct[same] = ct[j];
            same++;
        }
        for (size_t first = 0; first < same; first += LANES_CHUNK) {
            size_t chunk = same - first < LANES_CHUNK ? same - first : LANES_CHUNK;
            if (im->poly1305_lanes != NULL && chunk >= LANES_MIN_MESSAGES &&
                im->poly1305_lanes(same_tag + first, same_otk + first, same_ct + first, len[i],
                                   chunk) == 0)
                continue;
            for (size_t k = first; k < first + chunk; k++)
                im->poly1305_aead(same_tag[k], same_otk[k], NULL, 0, same_ct[k], len[i]);
        }
    }
}

/* Packets per ChaCha20 group in seal_batch: enough to fill the widest pass with short packets,
 * few enough that the group's data is still in L1 when Poly1305 reads it back. */
#define SEAL_GROUP 16

void wgf_aead_seal_batch(struct wgf_packet *pkts, size_t n, const uint8_t key[WGF_AEAD_KEY_LEN])
{
    const struct aead_impl *im = impl();
    struct wgf_chacha20_job jobs[SEAL_GROUP];
    uint8_t *tags[SEAL_GROUP];
    const uint8_t *otks[SEAL_GROUP], *cts[SEAL_GROUP];
    size_t lens[SEAL_GROUP];

    for (size_t first = 0; first < n; first += SEAL_GROUP) {
        size_t group = n - first < SEAL_GROUP ? n - first : SEAL_GROUP;
        for (size_t j = 0; j < group; j++) {
            jobs[j].data = pkts[first + j].data;
            jobs[j].len = pkts[first + j].len;
            wg_nonce(jobs[j].nonce, pkts[first + j].counter);
            jobs[j].with_otk = 1;
        }
        im->chacha20_jobs(jobs, group, key);
        for (size_t j = 0; j < group; j++) {
            struct wgf_packet *p = &pkts[first + j];
            tags[j] = p->data + p->len;
            otks[j] = jobs[j].otk;
            cts[j] = p->data;
            lens[j] = p->len;
            p->result = 0;
        }
        group_tags(im, tags, otks, cts, lens, group);
    }
    wgf_memzero(jobs, sizeof(jobs));
}

size_t wgf_aead_open_batch(struct wgf_packet *pkts, size_t n, const uint8_t key[WGF_AEAD_KEY_LEN])
{
    const struct aead_impl *im = impl();
    uint8_t nonces[WGF_CHACHA20_OTK_BATCH_MAX][WGF_NONCE_LEN];
    uint8_t otks[WGF_CHACHA20_OTK_BATCH_MAX][WGF_OTK_LEN];
    uint8_t tags[WGF_CHACHA20_OTK_BATCH_MAX][WGF_AEAD_TAG_LEN];
    struct wgf_chacha20_job jobs[WGF_CHACHA20_OTK_BATCH_MAX];
    uint8_t *tag_of[WGF_CHACHA20_OTK_BATCH_MAX];
    const uint8_t *otk_of[WGF_CHACHA20_OTK_BATCH_MAX], *ct_of[WGF_CHACHA20_OTK_BATCH_MAX];
    size_t ct_len_of[WGF_CHACHA20_OTK_BATCH_MAX], slot_of[WGF_CHACHA20_OTK_BATCH_MAX];
    size_t opened = 0;

    /* Per group: every one-time key in one pass (one packet per SIMD lane), each tag checked,
     * then only the authentic packets decrypted, together. */
    for (size_t first = 0; first < n; first += WGF_CHACHA20_OTK_BATCH_MAX) {
        size_t group = n - first < WGF_CHACHA20_OTK_BATCH_MAX ? n - first
                                                               : WGF_CHACHA20_OTK_BATCH_MAX;
        size_t authentic = 0;
        for (size_t j = 0; j < group; j++)
            wg_nonce(nonces[j], pkts[first + j].counter);
        im->chacha20_otk_batch(otks, key, (const uint8_t(*)[WGF_NONCE_LEN])nonces, group);
        /* Tags of every packet long enough to carry one, then the checks. */
        size_t candidates = 0;
        for (size_t j = 0; j < group; j++) {
            struct wgf_packet *p = &pkts[first + j];
            p->result = -1;
            if (p->len < WGF_AEAD_TAG_LEN)
                continue;
            tag_of[candidates] = tags[candidates];
            otk_of[candidates] = otks[j];
            ct_of[candidates] = p->data;
            ct_len_of[candidates] = p->len - WGF_AEAD_TAG_LEN;
            slot_of[candidates] = j;
            candidates++;
        }
        group_tags(im, tag_of, otk_of, ct_of, ct_len_of, candidates);
        for (size_t c = 0; c < candidates; c++) {
            struct wgf_packet *p = &pkts[first + slot_of[c]];
            size_t ct_len = ct_len_of[c];
            if (wgf_tag_verify(tags[c], p->data + ct_len) != 0)
                continue;
            p->result = 0;
            jobs[authentic].data = p->data;
            jobs[authentic].len = ct_len;
            memcpy(jobs[authentic].nonce, nonces[slot_of[c]], WGF_NONCE_LEN);
            jobs[authentic].with_otk = 0;
            authentic++;
        }
        im->chacha20_jobs(jobs, authentic, key);
        opened += authentic;
    }
    wgf_memzero(otks, sizeof(otks));
    wgf_memzero(tags, sizeof(tags));
    return opened;
}

/* XChaCha20: HChaCha20(key, nonce[0..16)) is the subkey; the ChaCha20 nonce is 32 zero bits
 * then nonce[16..24) (draft-irtf-cfrg-xchacha-03 section 2.3). */
static void xchacha_setup(uint8_t subkey[WGF_AEAD_KEY_LEN], uint8_t chacha_nonce[WGF_NONCE_LEN],
                          const uint8_t nonce[WGF_XAEAD_NONCE_LEN],
                          const uint8_t key[WGF_AEAD_KEY_LEN])
{
    wgf_hchacha20(subkey, key, nonce);
    memset(chacha_nonce, 0, 4);
    memcpy(chacha_nonce + 4, nonce + WGF_HCHACHA_NONCE_LEN, 8);
}

void wgf_xaead_seal(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t ad_len,
                    const uint8_t nonce[WGF_XAEAD_NONCE_LEN], const uint8_t key[WGF_AEAD_KEY_LEN])
{
    uint8_t subkey[WGF_AEAD_KEY_LEN], chacha_nonce[WGF_NONCE_LEN];
    xchacha_setup(subkey, chacha_nonce, nonce, key);
    seal_with(impl(), dst, src, len, ad, ad_len, chacha_nonce, subkey);
    wgf_memzero(subkey, sizeof(subkey));
}

int wgf_xaead_open(uint8_t *dst, const uint8_t *src, size_t len, const uint8_t *ad, size_t ad_len,
                   const uint8_t nonce[WGF_XAEAD_NONCE_LEN], const uint8_t key[WGF_AEAD_KEY_LEN])
{
    uint8_t subkey[WGF_AEAD_KEY_LEN], chacha_nonce[WGF_NONCE_LEN];
    if (len < WGF_AEAD_TAG_LEN)
        return -1;
    xchacha_setup(subkey, chacha_nonce, nonce, key);
    int rc = open_with(impl(), dst, src, len, ad, ad_len, chacha_nonce, subkey);
    wgf_memzero(subkey, sizeof(subkey));
    return rc;
}
