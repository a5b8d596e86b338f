/* Replay window: the paper's cases, then a random walk against an exact reference model. */
#include "check.h"
#include "replay.h"

#include <stdlib.h>

WGF_TEST(replay_in_order_and_duplicates)
{
    struct wgf_replay r;
    wgf_replay_init(&r);
    CHECK(wgf_replay_check(&r, 0) == 0);
    CHECK(wgf_replay_update(&r, 0) == 0); /* counter 0 is an ordinary first message */
    CHECK(wgf_replay_check(&r, 0) == -1);
    CHECK(wgf_replay_update(&r, 0) == -1);
    for (uint64_t c = 1; c < 20000; c++)
        CHECK(wgf_replay_update(&r, c) == 0);
    for (uint64_t c = 20000 - WGF_REPLAY_WINDOW_SIZE; c < 20000; c++)
        CHECK(wgf_replay_update(&r, c) == -1);
}

WGF_TEST(replay_out_of_order_inside_window)
{
    struct wgf_replay r;
    wgf_replay_init(&r);
    CHECK(wgf_replay_update(&r, 1000) == 0);
    CHECK(wgf_replay_update(&r, 999) == 0);
    CHECK(wgf_replay_update(&r, 3) == 0);
    CHECK(wgf_replay_update(&r, 500) == 0);
    CHECK(wgf_replay_update(&r, 500) == -1);
    CHECK(wgf_replay_update(&r, 3) == -1);
    CHECK(wgf_replay_check(&r, 4) == 0);
    CHECK(wgf_replay_check(&r, 4) == 0); /* check records nothing */
    CHECK(wgf_replay_update(&r, 4) == 0);
    CHECK(wgf_replay_check(&r, 4) == -1);
    CHECK(wgf_replay_update(&r, 1001) == 0);
    CHECK(wgf_replay_update(&r, 999) == -1);
}

WGF_TEST(replay_too_old)
{
    struct wgf_replay r;
    wgf_replay_init(&r);
    const uint64_t top = 100000;
    CHECK(wgf_replay_update(&r, top) == 0);
    /* Exactly WINDOW_SIZE behind the greatest is still inside; one more is too old. */
    CHECK(wgf_replay_check(&r, top - WGF_REPLAY_WINDOW_SIZE) == 0);
    CHECK(wgf_replay_check(&r, top - WGF_REPLAY_WINDOW_SIZE - 1) == -1);
    CHECK(wgf_replay_update(&r, top - WGF_REPLAY_WINDOW_SIZE - 1) == -1);
    CHECK(wgf_replay_update(&r, 0) == -1);
    CHECK(wgf_replay_update(&r, top - WGF_REPLAY_WINDOW_SIZE) == 0);
    CHECK(wgf_replay_update(&r, top - WGF_REPLAY_WINDOW_SIZE) == -1);
}

WGF_TEST(replay_slide_across_words)
{
    struct wgf_replay r;
    wgf_replay_init(&r);
    /* Every other counter across many ring revolutions; the skipped ones must stay acceptable
     * while inside the window, and become too old once it has moved past. */
    for (uint64_t c = 0; c < 5 * WGF_REPLAY_BITS_TOTAL; c += 2)
        CHECK(wgf_replay_update(&r, c) == 0);
    uint64_t greatest = 5 * WGF_REPLAY_BITS_TOTAL - 2;
    for (uint64_t c = greatest - WGF_REPLAY_WINDOW_SIZE; c <= greatest; c++)
        CHECK(wgf_replay_check(&r, c) == ((c & 1) ? 0 : -1));
    CHECK(wgf_replay_check(&r, greatest - WGF_REPLAY_WINDOW_SIZE - 1) == -1);
    /* Step forward one word at a time: a word reused from the previous revolution is clean. */
    for (uint64_t c = greatest + 64; c < greatest + 64 * 300; c += 64) {
        CHECK(wgf_replay_check(&r, c) == 0);
        CHECK(wgf_replay_update(&r, c) == 0);
        CHECK(wgf_replay_check(&r, c - 1) == 0);
    }
}

WGF_TEST(replay_jump_beyond_window)
{
    struct wgf_replay r;
    wgf_replay_init(&r);
    for (uint64_t c = 0; c < 200; c++)
        CHECK(wgf_replay_update(&r, c) == 0);
    /* Same ring word and bit as counter 5, three revolutions on: must not look like a replay. */
    uint64_t far = 3 * WGF_REPLAY_BITS_TOTAL + 5;
    CHECK(wgf_replay_check(&r, far) == 0);
    CHECK(wgf_replay_update(&r, far) == 0);
    CHECK(wgf_replay_update(&r, far) == -1);
    CHECK(wgf_replay_update(&r, 5) == -1);
    CHECK(wgf_replay_update(&r, 199) == -1);
    /* Everything in the window below the jump is unseen. */
    for (uint64_t c = far - WGF_REPLAY_WINDOW_SIZE; c < far; c++)
        CHECK(wgf_replay_check(&r, c) == 0);
    /* A jump of 2^40 clears the whole ring. */
    uint64_t huge = far + (UINT64_C(1) << 40);
    CHECK(wgf_replay_update(&r, huge) == 0);
    for (uint64_t c = huge - WGF_REPLAY_WINDOW_SIZE; c < huge; c++)
        CHECK(wgf_replay_check(&r, c) == 0);
}

WGF_TEST(replay_counter_limit)
{
    struct wgf_replay r;
    wgf_replay_init(&r);
    CHECK(wgf_replay_check(&r, WGF_REJECT_AFTER_MESSAGES) == -1);
    CHECK(wgf_replay_update(&r, WGF_REJECT_AFTER_MESSAGES) == -1);
    CHECK(wgf_replay_update(&r, UINT64_MAX) == -1);
    CHECK(wgf_replay_update(&r, UINT64_MAX - 1) == -1);
    CHECK(r.next == 0); /* rejected counters leave no trace */
    CHECK(wgf_replay_update(&r, WGF_REJECT_AFTER_MESSAGES - 1) == 0);
    CHECK(wgf_replay_update(&r, WGF_REJECT_AFTER_MESSAGES - 1) == -1);
    CHECK(wgf_replay_update(&r, WGF_REJECT_AFTER_MESSAGES - 1 - WGF_REPLAY_WINDOW_SIZE) == 0);
    CHECK(wgf_replay_update(&r, WGF_REJECT_AFTER_MESSAGES - 2 - WGF_REPLAY_WINDOW_SIZE) == -1);
    CHECK(wgf_replay_update(&r, WGF_REJECT_AFTER_MESSAGES) == -1);
    CHECK(WGF_REJECT_AFTER_MESSAGES == UINT64_MAX - 8192);
}

/* Reference: the exact set of accepted counters and the greatest one. Counters stay below
 * REF_LIMIT so a plain bitset can hold the set. */
#define REF_LIMIT (1u << 24)

WGF_TEST(replay_random_walk_matches_reference)
{
    static uint8_t seen[REF_LIMIT / 8];
    memset(seen, 0, sizeof(seen));
    struct wgf_replay r;
    wgf_replay_init(&r);
    int64_t greatest = -1;
    uint64_t rng = 0x9e3779b97f4a7c15u;
    unsigned accepted = 0;
    for (int step = 0; step < 300000; step++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int64_t base = greatest < 0 ? 0 : greatest, c;
        switch (rng % 128) {
        case 0: /* a jump, sometimes past the whole window */
            c = base + (int64_t)((rng >> 8) % 12000);
            break;
        case 1: /* near the trailing edge */
            c = base - WGF_REPLAY_WINDOW_SIZE - 3 + (int64_t)((rng >> 8) % 7);
            break;
        default: /* mostly slightly out of order */
            c = base + 8 - (int64_t)((rng >> 8) % 300);
        }
        if (c < 0 || c >= (int64_t)REF_LIMIT)
            continue;
        int was_seen = (seen[c >> 3] >> (c & 7)) & 1;
        int expect = (c + WGF_REPLAY_WINDOW_SIZE < greatest || was_seen) ? -1 : 0;
        CHECK(wgf_replay_check(&r, (uint64_t)c) == expect);
        int got = wgf_replay_update(&r, (uint64_t)c);
        CHECK(got == expect);
        if (expect == 0) {
            seen[c >> 3] |= (uint8_t)(1u << (c & 7));
            accepted++;
            if (c > greatest)
                greatest = c;
        }
        if (got != expect) {
            fprintf(stderr, "replay diverged at step %d counter %lld\n", step, (long long)c);
            return;
        }
    }
    CHECK(accepted > 50000); /* the walk really exercised acceptance, not just rejection */
}
