/* The receiving side of WireGuard's DoS defence (paper section 5.4.4 and 5.4.7; the kernel's
 * cookie.c): mac1 on every initiation and response, mac2 and cookie replies while under load.
 *
 *   mac1   = MAC(HASH(LABEL_MAC1 || our public key), msg[0 .. len-32))
 *   cookie = MAC(secret, source IP bytes || big-endian source port), the secret random and
 *            replaced every COOKIE_SECRET_MAX_AGE
 *   mac2   = MAC(cookie, msg[0 .. len-16))
 *   reply  = type 3 || the message's sender index || 24-byte nonce
 *            || XAEAD(HASH(LABEL_COOKIE || our public key), nonce, cookie, msg's mac1)
 * where MAC is keyed BLAKE2s-128 and HASH BLAKE2s-256. Not thread-safe: the caller serialises
 * (the data plane holds its handshake lock). The sending side (adding macs, consuming replies
 * to our own handshakes) stays with the protocol core. */
#ifndef WGF_COOKIE_H
#define WGF_COOKIE_H

#include <stddef.h>
#include <stdint.h>

#define WGF_KEY_LEN 32
#define WGF_MAC_LEN 16
#define WGF_COOKIE_LEN 16
#define WGF_COOKIE_NONCE_LEN 24
#define WGF_COOKIE_REPLY_LEN 64
#define WGF_COOKIE_SECRET_MAX_AGE_NS (UINT64_C(120) * 1000000000u)
#define WGF_LABEL_MAC1 "mac1----"
#define WGF_LABEL_COOKIE "cookie--"
/* The longest source an address is hashed from: 16 IP bytes and 2 port bytes. */
#define WGF_COOKIE_SOURCE_MAX 18

/* Reply nonces: a random prefix drawn with each secret, then a counter, so that no two replies
 * under one cookie key share a nonce without a system call per reply. */
#define WGF_COOKIE_NONCE_PREFIX_LEN 16

struct wgf_cookie_checker {
    int has_key; /* 0: no private key, every handshake is refused */
    uint8_t mac1_key[WGF_KEY_LEN];
    uint8_t cookie_key[WGF_KEY_LEN];
    uint8_t secret[WGF_KEY_LEN];
    int secret_valid;
    uint64_t secret_born_ns;
    uint8_t nonce_prefix[WGF_COOKIE_NONCE_PREFIX_LEN];
    uint64_t nonce_counter;
};

enum wgf_mac_state {
    WGF_MAC_INVALID = 0,
    WGF_MAC_VALID_NO_COOKIE = 1,
    WGF_MAC_VALID_WITH_COOKIE = 2,
};

/* Derives both keys from our public key; NULL: no identity (keys and secret zeroed). */
void wgf_cookie_checker_set_public(struct wgf_cookie_checker *c, const uint8_t *public_key);
/* Zeroes everything (the checker dies). */
void wgf_cookie_checker_wipe(struct wgf_cookie_checker *c);
/* For tests: a known secret born at now_ns. */
void wgf_cookie_checker_set_secret(struct wgf_cookie_checker *c, const uint8_t secret[WGF_KEY_LEN],
                                   uint64_t now_ns);

/* MAC(key, in) = BLAKE2s-128 keyed with key (32 bytes for mac1, the 16-byte cookie for mac2). */
void wgf_mac(uint8_t out[WGF_MAC_LEN], const uint8_t *key, size_t key_len, const uint8_t *in,
             size_t len);
/* Constant-time equality of two len-byte strings. */
int wgf_ct_equal(const uint8_t *a, const uint8_t *b, size_t len);

/* Checks an initiation or response (len >= 2 * WGF_MAC_LEN; the caller checked its size): mac1
 * always, mac2 only when check_cookie. An all-zero mac2 (a sender without a cookie) is taken as
 * no cookie without computing one: a real mac2 is zero with probability 2^-128. source: IP bytes || big-endian port (src_len up to
 * WGF_COOKIE_SOURCE_MAX). WGF_MAC_INVALID also when there is no key. */
enum wgf_mac_state wgf_cookie_check(struct wgf_cookie_checker *c, const uint8_t *msg, size_t len,
                                    const uint8_t *source, size_t src_len, uint64_t now_ns,
                                    int check_cookie);
/* The cookie reply to msg (an initiation or response whose sender index is at bytes 4..8); its
 * nonce is the prefix drawn with the secret and a counter. 0, or -1 (no key, or no randomness:
 * nothing written). */
int wgf_cookie_make_reply(struct wgf_cookie_checker *c, uint8_t out[WGF_COOKIE_REPLY_LEN],
                          const uint8_t *msg, size_t len, const uint8_t *source, size_t src_len,
                          uint64_t now_ns);

#endif
