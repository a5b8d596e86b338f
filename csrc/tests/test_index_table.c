/* Receiver-index table: basic contract, a random workload against a direct-mapped reference, and
 * readers racing a writer. */
#include "check.h"
#include "index_table.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <stdlib.h>

WGF_TEST(index_table_basic)
{
    struct wgf_index_table *t = wgf_index_table_new();
    CHECK(t != NULL);
    if (!t)
        return;
    struct wgf_index_entry e = { 7, 7 };
    CHECK(wgf_index_table_lookup(t, 42, &e) == -ENOENT);
    CHECK(e.peer == 0 && e.keypair == 0);
    CHECK(wgf_index_table_insert(t, 42, 3, 9) == 0);
    CHECK(wgf_index_table_insert(t, 42, 4, 1) == -EEXIST);
    CHECK(wgf_index_table_insert(t, 43, 0, 1) == -EINVAL);
    CHECK(wgf_index_table_insert(t, 0, 5, 0) == 0); /* index 0 and keypair 0 are ordinary */
    CHECK(wgf_index_table_insert(t, UINT32_MAX, 6, UINT32_MAX) == 0);
    CHECK(wgf_index_table_count(t) == 3);
    CHECK(wgf_index_table_lookup(t, 42, &e) == 0);
    CHECK(e.peer == 3 && e.keypair == 9); /* the failed duplicate insert changed nothing */
    CHECK(wgf_index_table_lookup(t, 0, &e) == 0);
    CHECK(e.peer == 5 && e.keypair == 0);
    CHECK(wgf_index_table_lookup(t, UINT32_MAX, &e) == 0);
    CHECK(e.peer == 6 && e.keypair == UINT32_MAX);

    uint32_t idx[4] = { 42, 1, 0, UINT32_MAX };
    struct wgf_index_entry out[4];
    CHECK(wgf_index_table_lookup_batch(t, idx, out, 4) == 3);
    CHECK(out[0].peer == 3 && out[1].peer == 0 && out[1].keypair == 0 && out[2].peer == 5 &&
          out[3].peer == 6);

    CHECK(wgf_index_table_remove(t, 42) == 0);
    CHECK(wgf_index_table_remove(t, 42) == -ENOENT);
    CHECK(wgf_index_table_lookup(t, 42, &e) == -ENOENT);
    CHECK(wgf_index_table_count(t) == 2);
    CHECK(wgf_index_table_insert(t, 42, 8, 2) == 0);
    CHECK(wgf_index_table_lookup(t, 42, &e) == 0 && e.peer == 8 && e.keypair == 2);

    CHECK(wgf_index_table_replace(t, 42, 9, 3) == 0);
    CHECK(wgf_index_table_lookup(t, 42, &e) == 0 && e.peer == 9 && e.keypair == 3);
    CHECK(wgf_index_table_replace(t, 42, 0, 3) == -EINVAL);
    CHECK(wgf_index_table_replace(t, 4242, 1, 1) == -ENOENT);
    CHECK(wgf_index_table_lookup(t, 4242, &e) == -ENOENT); /* replace never inserts */
    CHECK(wgf_index_table_count(t) == 3);
    wgf_index_table_free(t);
    wgf_index_table_free(NULL);
}

/* Keys drawn from a small space (so a plain array is the reference) but spread over the 32-bit
 * range, with growth, heavy probing and backward-shift deletion all exercised. */
#define KEY_SPACE 4096

static uint32_t key_of(uint32_t k)
{
    return k * 0x01000193u + (k & 1 ? 0x80000000u : 0); /* distinct for k < KEY_SPACE */
}

WGF_TEST(index_table_random_against_reference)
{
    struct wgf_index_table *t = wgf_index_table_new();
    if (!t) {
        CHECK(t != NULL);
        return;
    }
    static struct wgf_index_entry ref[KEY_SPACE];
    memset(ref, 0, sizeof(ref));
    size_t live = 0;
    uint64_t rng = 12345;
    for (int step = 0; step < 300000; step++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        uint32_t k = (uint32_t)(rng >> 20) % KEY_SPACE, idx = key_of(k);
        /* Phases: insert-heavy (the table grows several times), remove-heavy, insert-heavy. */
        unsigned insert_bias = step < 100000 ? 3 : step < 200000 ? 1 : 2;
        struct wgf_index_entry e;
        switch ((rng >> 4) % 4) {
        case 0:
        case 1:
            if ((rng >> 4) % 4 < insert_bias) {
                uint32_t peer = 1 + (uint32_t)(rng >> 40) % 1000, kp = (uint32_t)(rng >> 8);
                int ret = wgf_index_table_insert(t, idx, peer, kp);
                CHECK(ret == (ref[k].peer ? -EEXIST : 0));
                if (!ref[k].peer) {
                    ref[k] = (struct wgf_index_entry){ peer, kp };
                    live++;
                }
                break;
            }
            /* fall through */
        case 2: {
            int ret = wgf_index_table_remove(t, idx);
            CHECK(ret == (ref[k].peer ? 0 : -ENOENT));
            if (ref[k].peer) {
                ref[k].peer = 0;
                live--;
            }
            break;
        }
        default:
            CHECK(wgf_index_table_lookup(t, idx, &e) == (ref[k].peer ? 0 : -ENOENT));
            CHECK(e.peer == ref[k].peer && (!ref[k].peer || e.keypair == ref[k].keypair));
        }
        if (step % 50000 == 0 || step == 299999) {
            CHECK(wgf_index_table_count(t) == live);
            for (uint32_t j = 0; j < KEY_SPACE; j++) {
                int ret = wgf_index_table_lookup(t, key_of(j), &e);
                CHECK(ret == (ref[j].peer ? 0 : -ENOENT));
                CHECK(e.peer == ref[j].peer && (!ref[j].peer || e.keypair == ref[j].keypair));
            }
        }
    }
    CHECK(live > 0);
    wgf_index_table_free(t);
}

/* Readers race a writer. Every entry the writer stores has keypair = ~index ^ peer, so a torn
 * read would show up as a mismatch; the pinned indices are never removed and must always be
 * found. */
#define PINNED 64
struct race {
    struct wgf_index_table *t;
    _Atomic int stop;
    unsigned long bad;
    _Atomic unsigned long lookups;
};

static void *index_reader(void *arg)
{
    struct race *r = arg;
    uint32_t idx[PINNED + 64];
    struct wgf_index_entry out[PINNED + 64];
    uint64_t rng = (uintptr_t)arg | 1;
    while (!r->stop) {
        for (uint32_t i = 0; i < PINNED; i++)
            idx[i] = i * 7919u;
        for (uint32_t i = PINNED; i < PINNED + 64; i++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            idx[i] = 1000000u + (uint32_t)(rng % 2000);
        }
        size_t hits = wgf_index_table_lookup_batch(r->t, idx, out, PINNED + 64);
        if (hits < PINNED)
            r->bad++;
        for (size_t i = 0; i < PINNED + 64; i++) {
            if (i < PINNED && out[i].peer == 0)
                r->bad++;
            if (out[i].peer && out[i].keypair != (~idx[i] ^ out[i].peer))
                r->bad++;
        }
        r->lookups += PINNED + 64;
    }
    return NULL;
}

WGF_TEST(index_table_readers_race_writer)
{
    struct race r = { .t = wgf_index_table_new() };
    if (!r.t) {
        CHECK(r.t != NULL);
        return;
    }
    for (uint32_t i = 0; i < PINNED; i++)
        CHECK(wgf_index_table_insert(r.t, i * 7919u, i + 1, ~(i * 7919u) ^ (i + 1)) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, index_reader, &r) == 0);
    /* Let the reader start before the writer churns: on a loaded machine the writes could
     * otherwise all finish before the reader is first scheduled (bounded: ~10 s). */
    for (int spin = 0; r.lookups == 0 && spin < 100000; spin++)
        usleep(100);
    uint64_t rng = 99;
    for (int step = 0; step < 200000; step++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        uint32_t idx = 1000000u + (uint32_t)(rng % 2000), peer = 1 + (uint32_t)(rng >> 32) % 50;
        if (rng & 0x100000)
            wgf_index_table_insert(r.t, idx, peer, ~idx ^ peer);
        else
            wgf_index_table_remove(r.t, idx);
    }
    r.stop = 1;
    pthread_join(th, NULL);
    CHECK(r.bad == 0);
    CHECK(r.lookups > 0);
    wgf_index_table_free(r.t);
}
