/* Sliding-window replay protection over transport counters; see replay.h for the scheme. */
#include "replay.h"

#include <string.h>

#define WORD_SHIFT 6 /* log2(WGF_REPLAY_BITS_PER_WORD) */
#define WORD_INDEX_MASK (WGF_REPLAY_WORDS - 1)
#define BIT_INDEX_MASK (WGF_REPLAY_BITS_PER_WORD - 1)

_Static_assert((WGF_REPLAY_WORDS & (WGF_REPLAY_WORDS - 1)) == 0, "ring size is a power of two");
_Static_assert(WGF_REPLAY_BITS_PER_WORD == 1 << WORD_SHIFT, "word shift matches word size");
_Static_assert(WGF_REPLAY_WINDOW_SIZE == 8128, "the window WireGuard uses on 64-bit");
_Static_assert(WGF_REJECT_AFTER_MESSAGES == UINT64_C(18446744073709543423),
               "REJECT_AFTER_MESSAGES = 2^64 - 2^13 - 1");

void wgf_replay_init(struct wgf_replay *r)
{
    memset(r, 0, sizeof(*r));
}

static inline uint64_t word_of(uint64_t counter)
{
    return counter >> WORD_SHIFT;
}

static inline uint64_t bit_of(uint64_t counter)
{
    return UINT64_C(1) << (counter & BIT_INDEX_MASK);
}

/* The part of the decision that needs no bitmap: 1 = newer than anything seen (accept), 0 =
 * inside the window (look at the bit), -1 = reject outright. */
static inline int classify(const struct wgf_replay *r, uint64_t counter)
{
    if (counter >= WGF_REJECT_AFTER_MESSAGES)
        return -1;
    if (counter >= r->next)
        return 1;
    /* Here r->next >= 1 and counter <= greatest. No overflow: counter < 2^64 - 8193. */
    if (counter + WGF_REPLAY_WINDOW_SIZE < r->next - 1)
        return -1;
    return 0;
}

int wgf_replay_check(const struct wgf_replay *r, uint64_t counter)
{
    int c = classify(r, counter);
    if (c != 0)
        return c > 0 ? 0 : -1;
    return (r->bitmap[word_of(counter) & WORD_INDEX_MASK] & bit_of(counter)) ? -1 : 0;
}

int wgf_replay_update(struct wgf_replay *r, uint64_t counter)
{
    int c = classify(r, counter);
    if (c < 0)
        return -1;
    uint64_t *word = &r->bitmap[word_of(counter) & WORD_INDEX_MASK];
    if (c > 0) {
        /* Moving forward: clear the words between the old current word (exclusive) and the new
         * one (inclusive); a jump of a whole ring or more clears every word. While nothing has
         * been accepted the bitmap is still all zero from init, so nothing needs clearing. */
        if (r->next != 0) {
            uint64_t old_word = word_of(r->next - 1);
            uint64_t skipped = word_of(counter) - old_word;
            if (skipped > WGF_REPLAY_WORDS)
                skipped = WGF_REPLAY_WORDS;
            for (uint64_t i = 1; i <= skipped; i++)
                r->bitmap[(old_word + i) & WORD_INDEX_MASK] = 0;
        }
        r->next = counter + 1;
    } else if (*word & bit_of(counter)) {
        return -1;
    }
    *word |= bit_of(counter);
    return 0;
}
