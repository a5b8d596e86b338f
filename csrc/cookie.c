/* mac1/mac2 checks and cookie replies; see cookie.h for the formulas. */
#include <string.h>
#include <sys/random.h>

#include "aead.h"
#include "blake2s.h"
#include "byteorder.h"
#include "cookie.h"
#include "memzero.h"

#define MSG_TYPE_COOKIE_REPLY 3

static void hash_label(uint8_t out[WGF_KEY_LEN], const char *label, const uint8_t *public_key)
{
    struct wgf_blake2s s;
    wgf_blake2s_init(&s, WGF_BLAKE2S_HASH_LEN, NULL, 0);
    wgf_blake2s_update(&s, (const uint8_t *)label, 8);
    wgf_blake2s_update(&s, public_key, WGF_KEY_LEN);
    wgf_blake2s_final(&s, out);
}

void wgf_mac(uint8_t out[WGF_MAC_LEN], const uint8_t *key, size_t key_len, const uint8_t *in,
             size_t len)
{
    wgf_blake2s(out, WGF_MAC_LEN, in, len, key, key_len);
}

int wgf_ct_equal(const uint8_t *a, const uint8_t *b, size_t len)
{
    uint8_t diff = 0;
    for (size_t i = 0; i < len; i++)
        diff |= a[i] ^ b[i];
    return diff == 0;
}

void wgf_cookie_checker_wipe(struct wgf_cookie_checker *c)
{
    wgf_memzero(c, sizeof(*c));
}

void wgf_cookie_checker_set_public(struct wgf_cookie_checker *c, const uint8_t *public_key)
{
    wgf_cookie_checker_wipe(c);
    if (public_key == NULL)
        return;
    hash_label(c->mac1_key, WGF_LABEL_MAC1, public_key);
    hash_label(c->cookie_key, WGF_LABEL_COOKIE, public_key);
    c->has_key = 1;
}

/* A fresh random nonce prefix (the counter restarts under it). 0 or -1. */
static int fresh_nonce_prefix(struct wgf_cookie_checker *c)
{
    if (getrandom(c->nonce_prefix, sizeof(c->nonce_prefix), 0) !=
        (ssize_t)sizeof(c->nonce_prefix))
        return -1;
    c->nonce_counter = 0;
    return 0;
}

void wgf_cookie_checker_set_secret(struct wgf_cookie_checker *c, const uint8_t secret[WGF_KEY_LEN],
                                   uint64_t now_ns)
{
    memcpy(c->secret, secret, WGF_KEY_LEN);
    c->secret_valid = fresh_nonce_prefix(c) == 0;
    c->secret_born_ns = now_ns;
}

/* The secret for now, replaced once COOKIE_SECRET_MAX_AGE old. 0, or -1 without randomness. */
static int fresh_secret(struct wgf_cookie_checker *c, uint64_t now_ns)
{
    if (c->secret_valid && now_ns >= c->secret_born_ns &&
        now_ns - c->secret_born_ns < WGF_COOKIE_SECRET_MAX_AGE_NS)
        return 0;
    uint8_t fresh[WGF_KEY_LEN];
    if (getrandom(fresh, sizeof(fresh), 0) != (ssize_t)sizeof(fresh)) {
        wgf_memzero(fresh, sizeof(fresh));
        return -1;
    }
    wgf_cookie_checker_set_secret(c, fresh, now_ns);
    wgf_memzero(fresh, sizeof(fresh));
    return 0;
}

/* cookie = MAC(secret, source). 0, or -1 without a secret. */
static int make_cookie(struct wgf_cookie_checker *c, uint8_t out[WGF_COOKIE_LEN],
                       const uint8_t *source, size_t src_len, uint64_t now_ns)
{
    if (fresh_secret(c, now_ns) != 0)
        return -1;
    wgf_mac(out, c->secret, WGF_KEY_LEN, source, src_len);
    return 0;
}

enum wgf_mac_state wgf_cookie_check(struct wgf_cookie_checker *c, const uint8_t *msg, size_t len,
                                    const uint8_t *source, size_t src_len, uint64_t now_ns,
                                    int check_cookie)
{
    uint8_t expected[WGF_MAC_LEN], cookie[WGF_COOKIE_LEN];
    if (!c->has_key || len < 2 * WGF_MAC_LEN || src_len > WGF_COOKIE_SOURCE_MAX)
        return WGF_MAC_INVALID;
    size_t mac1_at = len - 2 * WGF_MAC_LEN, mac2_at = len - WGF_MAC_LEN;
    wgf_mac(expected, c->mac1_key, WGF_KEY_LEN, msg, mac1_at);
    if (!wgf_ct_equal(expected, msg + mac1_at, WGF_MAC_LEN))
        return WGF_MAC_INVALID;
    if (!check_cookie)
        return WGF_MAC_VALID_NO_COOKIE;
    static const uint8_t no_mac2[WGF_MAC_LEN];
    if (memcmp(msg + mac2_at, no_mac2, WGF_MAC_LEN) == 0) /* public data: no timing concern */
        return WGF_MAC_VALID_NO_COOKIE;
    if (make_cookie(c, cookie, source, src_len, now_ns) != 0)
        return WGF_MAC_VALID_NO_COOKIE;
    wgf_mac(expected, cookie, WGF_COOKIE_LEN, msg, mac2_at);
    wgf_memzero(cookie, sizeof(cookie));
    return wgf_ct_equal(expected, msg + mac2_at, WGF_MAC_LEN) ? WGF_MAC_VALID_WITH_COOKIE
                                                               : WGF_MAC_VALID_NO_COOKIE;
}

int wgf_cookie_make_reply(struct wgf_cookie_checker *c, uint8_t out[WGF_COOKIE_REPLY_LEN],
                          const uint8_t *msg, size_t len, const uint8_t *source, size_t src_len,
                          uint64_t now_ns)
{
    uint8_t cookie[WGF_COOKIE_LEN], nonce[WGF_COOKIE_NONCE_LEN];
    if (!c->has_key || len < 8 + 2 * WGF_MAC_LEN || src_len > WGF_COOKIE_SOURCE_MAX)
        return -1;
    if (make_cookie(c, cookie, source, src_len, now_ns) != 0)
        return -1;
    if (c->nonce_counter == UINT64_MAX && fresh_nonce_prefix(c) != 0)
        return -1;
    memcpy(nonce, c->nonce_prefix, WGF_COOKIE_NONCE_PREFIX_LEN);
    wgf_put_le64(nonce + WGF_COOKIE_NONCE_PREFIX_LEN, c->nonce_counter++);
    wgf_put_le32(out, MSG_TYPE_COOKIE_REPLY);
    memcpy(out + 4, msg + 4, 4); /* their sender index is the reply's receiver index */
    memcpy(out + 8, nonce, WGF_COOKIE_NONCE_LEN);
    wgf_xaead_seal(out + 8 + WGF_COOKIE_NONCE_LEN, cookie, WGF_COOKIE_LEN,
                   msg + len - 2 * WGF_MAC_LEN, WGF_MAC_LEN, nonce, c->cookie_key);
    wgf_memzero(cookie, sizeof(cookie));
    return 0;
}
