/* OpenSSL's EVP ChaCha20-Poly1305 driven one packet per call: the baseline `wgfast bench crypto`
 * compares the batched core against. libcrypto is loaded at run time (dlopen), so wgfast neither
 * links against nor requires OpenSSL. Not used on any data path. */
#ifndef WGF_EVP_BASELINE_H
#define WGF_EVP_BASELINE_H

#include <stddef.h>
#include <stdint.h>

#include "aead.h"

/* Loads libcrypto; returns 0, or -1 with a reason in wgf_evp_error(). Idempotent. */
int wgf_evp_load(void);
const char *wgf_evp_error(void);
/* Seal/open each packet in place exactly as wgf_aead_seal_batch/open_batch would (same nonce
 * layout, same buffer convention), each through its own EVP init/update/final sequence.
 * Return 0 (open: the number of packets that authenticated), or -1 if EVP failed/not loaded. */
long wgf_evp_seal_batch(struct wgf_packet *pkts, size_t n, const uint8_t key[32]);
long wgf_evp_open_batch(struct wgf_packet *pkts, size_t n, const uint8_t key[32]);

#endif
