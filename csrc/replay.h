/* The transport-data replay window: a sliding bitmap over the 64-bit message counter, RFC 6479
 * style, as the Linux kernel and wireguard-go keep it.
 *
 * The bitmap is a ring of WGF_REPLAY_WORDS machine words (8192 bits). The word holding the
 * greatest counter seen is always "current"; moving forward clears only the words skipped over,
 * so an update costs O(1) amortised and never shifts the bitmap. One word is sacrificed so the
 * current word may be partly filled: the usable window is 8192 - 64 = 8128 counters behind the
 * greatest one.
 *
 * Threading: a window belongs to one keypair and has a single writer. wgf_replay_check and
 * wgf_replay_update must both be called by the thread that owns the keypair's receive path (or
 * under the caller's own serialisation); the struct holds no lock. The check before decryption is
 * only a cheap early drop: the update after the tag verified is the authoritative decision, since
 * another packet with the same counter may have been recorded in between.
 *
 * Embedded by value (no allocation); wgf_replay_init before first use. */
#ifndef WGF_REPLAY_H
#define WGF_REPLAY_H

#include <stdint.h>

#define WGF_REPLAY_BITS_PER_WORD 64
#define WGF_REPLAY_WORDS 128
#define WGF_REPLAY_BITS_TOTAL (WGF_REPLAY_WORDS * WGF_REPLAY_BITS_PER_WORD) /* 8192 */
#define WGF_REPLAY_WINDOW_SIZE (WGF_REPLAY_BITS_TOTAL - WGF_REPLAY_BITS_PER_WORD) /* 8128 */

/* The paper's REJECT_AFTER_MESSAGES: 2^64 - 2^13 - 1. No counter at or beyond it is accepted. */
#define WGF_REJECT_AFTER_MESSAGES (UINT64_MAX - (UINT64_C(1) << 13))

struct wgf_replay {
    /* Greatest counter accepted so far, plus one; 0 while nothing has been accepted. Keeping it
     * off by one lets counter 0 be an ordinary first message. */
    uint64_t next;
    uint64_t bitmap[WGF_REPLAY_WORDS];
};

void wgf_replay_init(struct wgf_replay *r);

/* 0 if counter would be accepted now, -1 if it is a replay, too old or over the limit. Does not
 * record anything. */
int wgf_replay_check(const struct wgf_replay *r, uint64_t counter);

/* Accept and record counter: 0 if accepted, -1 if rejected (nothing changes then). */
int wgf_replay_update(struct wgf_replay *r, uint64_t counter);

#endif
