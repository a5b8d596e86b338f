/* Allowed IPs: edge cases by hand, then long random workloads (v4 and v6) checked against a
 * brute-force longest-prefix scan, then readers racing a writer. */
#include "allowedips.h"
#include "check.h"

#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <stdlib.h>

static const uint8_t *v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    static uint8_t buf[8][4];
    static unsigned next;
    uint8_t *p = buf[next++ % 8];
    p[0] = a, p[1] = b, p[2] = c, p[3] = d;
    return p;
}

static const uint8_t *v6(const char *hex)
{
    static uint8_t buf[8][16];
    static unsigned next;
    uint8_t *p = buf[next++ % 8];
    memset(p, 0, 16);
    wgf_test_hex(p, 16, hex);
    return p;
}

WGF_TEST(allowedips_default_routes_and_hosts)
{
    struct wgf_allowedips *t = wgf_allowedips_new();
    if (!t) {
        CHECK(t != NULL);
        return;
    }
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(1, 2, 3, 4)) == 0);
    CHECK(wgf_allowedips_insert(t, WGF_IP4, v4(0, 0, 0, 0), 0, 1) == 0);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(1, 2, 3, 4)) == 1);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(255, 255, 255, 255)) == 1);
    CHECK(wgf_allowedips_lookup(t, WGF_IP6, v6("20010db8000000000000000000000001")) == 0);
    CHECK(wgf_allowedips_insert(t, WGF_IP6, v6("00"), 0, 2) == 0);
    CHECK(wgf_allowedips_lookup(t, WGF_IP6, v6("20010db8000000000000000000000001")) == 2);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(0, 0, 0, 0)) == 1);

    CHECK(wgf_allowedips_insert(t, WGF_IP4, v4(10, 0, 0, 7), 32, 3) == 0);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(10, 0, 0, 7)) == 3);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(10, 0, 0, 6)) == 1);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(10, 0, 0, 8)) == 1);
    CHECK(wgf_allowedips_insert(t, WGF_IP4, v4(10, 0, 0, 0), 8, 4) == 0);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(10, 0, 0, 7)) == 3);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(10, 200, 0, 7)) == 4);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(11, 0, 0, 7)) == 1);

    const char *host = "fe800000000000000000000000000001";
    CHECK(wgf_allowedips_insert(t, WGF_IP6, v6(host), 128, 5) == 0);
    CHECK(wgf_allowedips_lookup(t, WGF_IP6, v6(host)) == 5);
    CHECK(wgf_allowedips_lookup(t, WGF_IP6, v6("fe800000000000000000000000000000")) == 2);
    CHECK(wgf_allowedips_lookup(t, WGF_IP6, v6("fe800000000000000000000000000003")) == 2);
    CHECK(wgf_allowedips_lookup(t, WGF_IP6, v6("7e800000000000000000000000000001")) == 2);
    CHECK(wgf_allowedips_insert(t, WGF_IP6, v6("ffffffffffffffffffffffffffffffff"), 128, 6) == 0);
    CHECK(wgf_allowedips_lookup(t, WGF_IP6, v6("ffffffffffffffffffffffffffffffff")) == 6);
    CHECK(wgf_allowedips_lookup(t, WGF_IP6, v6("fffffffffffffffffffffffffffffffe")) == 2);
    CHECK(wgf_allowedips_insert(t, WGF_IP4, v4(255, 255, 255, 255), 32, 7) == 0);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(255, 255, 255, 255)) == 7);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(255, 255, 255, 254)) == 1);
    CHECK(wgf_allowedips_count(t) == 7);

    /* Families never mix: removing the v4 default leaves the v6 one. */
    CHECK(wgf_allowedips_remove(t, WGF_IP4, v4(9, 9, 9, 9), 0, 1) == 0);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(1, 2, 3, 4)) == 0);
    CHECK(wgf_allowedips_lookup(t, WGF_IP6, v6("01")) == 2);
    wgf_allowedips_free(t);
    wgf_allowedips_free(NULL);
}

WGF_TEST(allowedips_repoint_remove_and_masking)
{
    struct wgf_allowedips *t = wgf_allowedips_new();
    if (!t) {
        CHECK(t != NULL);
        return;
    }
    /* Host bits are masked: 10.1.2.3/8 is 10.0.0.0/8. */
    CHECK(wgf_allowedips_insert(t, WGF_IP4, v4(10, 1, 2, 3), 8, 1) == 0);
    struct wgf_prefix out[4];
    CHECK(wgf_allowedips_prefixes_of(t, 1, out, 4) == 1);
    CHECK(out[0].family == WGF_IP4 && out[0].cidr == 8);
    CHECK_MEM(out[0].addr, v4(10, 0, 0, 0), 4);

    /* Re-inserting the same prefix for another peer moves it. */
    CHECK(wgf_allowedips_insert(t, WGF_IP4, v4(10, 9, 9, 9), 8, 2) == 0);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(10, 5, 5, 5)) == 2);
    CHECK(wgf_allowedips_count_of(t, 1) == 0);
    CHECK(wgf_allowedips_count_of(t, 2) == 1);
    CHECK(wgf_allowedips_count(t) == 1);
    CHECK(wgf_allowedips_insert(t, WGF_IP4, v4(10, 0, 0, 0), 8, 2) == 0); /* same peer: no-op */
    CHECK(wgf_allowedips_count(t) == 1);

    /* Removal only by the owner. */
    CHECK(wgf_allowedips_remove(t, WGF_IP4, v4(10, 0, 0, 0), 8, 1) == -ENOENT);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(10, 5, 5, 5)) == 2);
    CHECK(wgf_allowedips_remove(t, WGF_IP4, v4(10, 0, 0, 0), 16, 2) == -ENOENT);
    CHECK(wgf_allowedips_remove(t, WGF_IP4, v4(10, 7, 0, 0), 8, 2) == 0);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(10, 5, 5, 5)) == 0);
    CHECK(wgf_allowedips_remove(t, WGF_IP4, v4(10, 0, 0, 0), 8, 2) == -ENOENT);

    /* A branch point appears between two siblings and goes away with them. */
    CHECK(wgf_allowedips_insert(t, WGF_IP4, v4(10, 0, 0, 0), 16, 1) == 0);
    CHECK(wgf_allowedips_insert(t, WGF_IP4, v4(10, 1, 0, 0), 16, 2) == 0);
    CHECK(wgf_allowedips_node_count(t) == 3);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(10, 1, 3, 4)) == 2);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(10, 0, 3, 4)) == 1);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(10, 2, 3, 4)) == 0);
    /* Giving the branch point's own prefix a peer reuses the node. */
    CHECK(wgf_allowedips_insert(t, WGF_IP4, v4(10, 0, 0, 0), 15, 3) == 0);
    CHECK(wgf_allowedips_node_count(t) == 3);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(10, 1, 3, 4)) == 2);
    CHECK(wgf_allowedips_remove(t, WGF_IP4, v4(10, 0, 0, 0), 15, 3) == 0);
    CHECK(wgf_allowedips_remove(t, WGF_IP4, v4(10, 0, 0, 0), 16, 1) == 0);
    CHECK(wgf_allowedips_node_count(t) == 1);
    CHECK(wgf_allowedips_lookup(t, WGF_IP4, v4(10, 1, 3, 4)) == 2);
    CHECK(wgf_allowedips_remove(t, WGF_IP4, v4(10, 1, 0, 0), 16, 2) == 0);
    CHECK(wgf_allowedips_node_count(t) == 0);
    CHECK(wgf_allowedips_count(t) == 0);

    /* A shorter prefix inserted above an existing longer one. */
    CHECK(wgf_allowedips_insert(t, WGF_IP6, v6("20010db8"), 48, 4) == 0);
    CHECK(wgf_allowedips_insert(t, WGF_IP6, v6("20010db8"), 32, 5) == 0);
    CHECK(wgf_allowedips_lookup(t, WGF_IP6, v6("20010db800010001")) == 5);
    CHECK(wgf_allowedips_lookup(t, WGF_IP6, v6("20010db80000")) == 4);
    CHECK(wgf_allowedips_node_count(t) == 2);
    CHECK(wgf_allowedips_remove(t, WGF_IP6, v6("20010db8"), 32, 5) == 0);
    CHECK(wgf_allowedips_lookup(t, WGF_IP6, v6("20010db80000")) == 4);
    CHECK(wgf_allowedips_lookup(t, WGF_IP6, v6("20010db800010001")) == 0);
    CHECK(wgf_allowedips_node_count(t) == 1);
    wgf_allowedips_free(t);
}

WGF_TEST(allowedips_bad_arguments)
{
    struct wgf_allowedips *t = wgf_allowedips_new();
    if (!t) {
        CHECK(t != NULL);
        return;
    }
    CHECK(wgf_allowedips_insert(t, WGF_IP4, v4(1, 2, 3, 4), 33, 1) == -EINVAL);
    CHECK(wgf_allowedips_insert(t, WGF_IP6, v6("01"), 129, 1) == -EINVAL);
    CHECK(wgf_allowedips_insert(t, 5, v6("01"), 8, 1) == -EINVAL);
    CHECK(wgf_allowedips_insert(t, WGF_IP4, v4(1, 2, 3, 4), 8, 0) == -EINVAL);
    CHECK(wgf_allowedips_insert(t, WGF_IP4, NULL, 8, 1) == -EINVAL);
    CHECK(wgf_allowedips_remove(t, 0, v4(1, 2, 3, 4), 8, 1) == -EINVAL);
    CHECK(wgf_allowedips_remove(t, WGF_IP4, v4(1, 2, 3, 4), 8, 0) == -EINVAL);
    CHECK(wgf_allowedips_lookup(t, 5, v6("01")) == 0);
    CHECK(wgf_allowedips_remove_by_peer(t, 0) == 0);
    CHECK(wgf_allowedips_remove_by_peer(t, 77) == 0);
    CHECK(wgf_allowedips_prefixes_of(t, 0, NULL, 0) == 0);
    CHECK(wgf_allowedips_count(t) == 0);
    wgf_allowedips_free(t);
}

WGF_TEST(allowedips_lookup_packets)
{
    struct wgf_allowedips *t = wgf_allowedips_new();
    if (!t) {
        CHECK(t != NULL);
        return;
    }
    CHECK(wgf_allowedips_insert(t, WGF_IP4, v4(192, 168, 0, 0), 16, 1) == 0);
    CHECK(wgf_allowedips_insert(t, WGF_IP4, v4(10, 0, 0, 0), 8, 2) == 0);
    CHECK(wgf_allowedips_insert(t, WGF_IP6, v6("fd00"), 16, 3) == 0);
    CHECK(wgf_allowedips_insert(t, WGF_IP6, v6("2001"), 16, 4) == 0);
    uint8_t p4[20] = { 0x45 }, p6[40] = { 0x60 }, bad[40] = { 0x50 };
    memcpy(p4 + 12, v4(192, 168, 3, 4), 4);
    memcpy(p4 + 16, v4(10, 1, 1, 1), 4);
    memcpy(p6 + 8, v6("fd000000000000000000000000000001"), 16);
    memcpy(p6 + 24, v6("20010000000000000000000000000001"), 16);
    const uint8_t *pkts[6] = { p4, p6, p4, p6, bad, NULL };
    size_t lens[6] = { 20, 40, 19, 39, 40, 0 };
    uint32_t peers[6] = { 9, 9, 9, 9, 9, 9 };
    wgf_allowedips_lookup_packets(t, pkts, lens, 6, WGF_IP_SOURCE, peers);
    CHECK(peers[0] == 1 && peers[1] == 3);
    CHECK(peers[2] == 0 && peers[3] == 0 && peers[4] == 0 && peers[5] == 0);
    wgf_allowedips_lookup_packets(t, pkts, lens, 2, WGF_IP_DESTINATION, peers);
    CHECK(peers[0] == 2 && peers[1] == 4);

    const uint8_t fams[3] = { WGF_IP4, WGF_IP6, 7 };
    const uint8_t *addrs[3] = { p4 + 16, p6 + 8, p6 + 8 };
    wgf_allowedips_lookup_batch(t, fams, addrs, peers, 3);
    CHECK(peers[0] == 2 && peers[1] == 3 && peers[2] == 0);

    /* More packets than one lock-step group, families and validity interleaved. */
    const uint8_t *many[21];
    size_t many_lens[21];
    uint32_t many_peers[21];
    for (int i = 0; i < 21; i++) {
        many[i] = i % 3 == 0 ? p4 : i % 3 == 1 ? p6 : bad;
        many_lens[i] = i % 3 == 0 ? 20 : 40;
    }
    wgf_allowedips_lookup_packets(t, many, many_lens, 21, WGF_IP_DESTINATION, many_peers);
    for (int i = 0; i < 21; i++)
        CHECK(many_peers[i] == (i % 3 == 0 ? 2u : i % 3 == 1 ? 4u : 0u));
    wgf_allowedips_free(t);
}

/* ---- random workloads against a brute-force reference ---- */

struct ref_prefix {
    uint8_t addr[16];
    uint8_t cidr;
    uint32_t peer;
};

struct ref {
    struct ref_prefix *v;
    size_t n, cap;
    int family;
    unsigned bytes;
};

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13, rng_state ^= rng_state >> 7, rng_state ^= rng_state << 17;
    return rng_state;
}

static void mask_bytes(uint8_t *a, unsigned bytes, unsigned cidr)
{
    for (unsigned i = 0; i < bytes; i++) {
        unsigned keep = cidr > 8 * i ? cidr - 8 * i : 0;
        if (keep < 8)
            a[i] &= (uint8_t)(0xff00u >> keep);
    }
}

static int ref_matches(const struct ref_prefix *p, const uint8_t *addr, unsigned bytes)
{
    uint8_t a[16];
    memcpy(a, addr, bytes);
    mask_bytes(a, bytes, p->cidr);
    return memcmp(a, p->addr, bytes) == 0;
}

static uint32_t ref_lookup(const struct ref *r, const uint8_t *addr)
{
    int best = -1;
    uint32_t peer = 0;
    for (size_t i = 0; i < r->n; i++) {
        if ((int)r->v[i].cidr > best && ref_matches(&r->v[i], addr, r->bytes)) {
            best = r->v[i].cidr;
            peer = r->v[i].peer;
        }
    }
    return peer;
}

static struct ref_prefix *ref_find(struct ref *r, const uint8_t *masked, unsigned cidr)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->v[i].cidr == cidr && memcmp(r->v[i].addr, masked, r->bytes) == 0)
            return &r->v[i];
    }
    return NULL;
}

static void ref_delete(struct ref *r, struct ref_prefix *p)
{
    *p = r->v[--r->n];
}

/* A random address near one of a few bases: shared high bits make prefixes nest and part ways
 * at every depth, which is where a trie goes wrong. */
static void random_addr(uint8_t *out, const uint8_t bases[][16], unsigned nbases, unsigned bytes)
{
    const uint8_t *base = bases[rnd() % nbases];
    unsigned keep = (unsigned)(rnd() % (8 * bytes + 1));
    for (unsigned i = 0; i < bytes; i++) {
        uint8_t noise = (uint8_t)rnd();
        unsigned k = keep > 8 * i ? keep - 8 * i : 0;
        uint8_t base_mask = k >= 8 ? 0xff : (uint8_t)(0xff00u >> k);
        out[i] = (uint8_t)((base[i] & base_mask) | (noise & ~base_mask));
    }
}

static int cmp_prefix(const void *a, const void *b)
{
    const struct ref_prefix *x = a, *y = b;
    int c = memcmp(x->addr, y->addr, 16);
    return c ? c : (int)x->cidr - (int)y->cidr;
}

/* Every peer's enumeration equals the reference's prefixes of that peer. */
static void compare_enumeration(struct wgf_allowedips *t, struct ref *r, uint32_t npeers)
{
    struct ref_prefix *want = calloc(r->n + 1, sizeof(*want));
    struct wgf_prefix *got = calloc(r->n + 1, sizeof(*got));
    struct ref_prefix *got_ref = calloc(r->n + 1, sizeof(*got_ref));
    if (!want || !got || !got_ref) {
        CHECK(!"out of memory");
        goto out;
    }
    for (uint32_t peer = 1; peer <= npeers; peer++) {
        size_t nw = 0;
        for (size_t i = 0; i < r->n; i++) {
            if (r->v[i].peer == peer) {
                want[nw] = r->v[i];
                memset(want[nw].addr + r->bytes, 0, 16 - r->bytes);
                want[nw].peer = 0;
                nw++;
            }
        }
        size_t total = wgf_allowedips_count_of(t, peer);
        CHECK(total == nw);
        size_t ng = wgf_allowedips_prefixes_of(t, peer, got, r->n + 1);
        CHECK(ng == nw);
        if (ng != nw)
            continue;
        for (size_t i = 0; i < ng; i++) {
            CHECK(got[i].family == r->family);
            memset(&got_ref[i], 0, sizeof(got_ref[i]));
            memcpy(got_ref[i].addr, got[i].addr, 16);
            got_ref[i].cidr = got[i].cidr;
        }
        qsort(want, nw, sizeof(*want), cmp_prefix);
        qsort(got_ref, ng, sizeof(*got_ref), cmp_prefix);
        for (size_t i = 0; i < ng; i++)
            CHECK(cmp_prefix(&want[i], &got_ref[i]) == 0);
    }
out:
    free(want);
    free(got);
    free(got_ref);
}

static void random_workload(int family, uint64_t seed)
{
    const unsigned bytes = family == WGF_IP4 ? 4 : 16, bits = 8 * bytes;
    const uint32_t npeers = 12;
    rng_state = seed;
    uint8_t bases[6][16];
    for (unsigned b = 0; b < 6; b++)
        for (unsigned i = 0; i < 16; i++)
            bases[b][i] = (uint8_t)rnd();
    struct ref r = { .family = family, .bytes = bytes, .cap = 4096 };
    r.v = calloc(r.cap, sizeof(*r.v));
    struct wgf_allowedips *t = wgf_allowedips_new();
    if (!t || !r.v) {
        CHECK(!"out of memory");
        goto out;
    }
    unsigned mismatches = 0;
    for (int round = 0; round < 40; round++) {
        for (int op = 0; op < 150; op++) {
            uint8_t a[16] = { 0 };
            random_addr(a, (const uint8_t(*)[16])bases, 6, bytes);
            /* Lengths cluster around the interesting middle but reach both ends. */
            unsigned cidr = (rnd() % 4 == 0) ? (unsigned)(rnd() % (bits + 1))
                                             : bits / 2 + (unsigned)(rnd() % (bits / 2 + 1));
            uint32_t peer = 1 + (uint32_t)(rnd() % npeers);
            uint8_t m[16];
            memcpy(m, a, 16);
            mask_bytes(m, bytes, cidr);
            struct ref_prefix *p = ref_find(&r, m, cidr);
            if (rnd() % 5 == 0) { /* remove, by the owner or by someone else */
                uint32_t who = (p && rnd() % 2) ? p->peer : peer;
                int want = (p && p->peer == who) ? 0 : -ENOENT;
                CHECK(wgf_allowedips_remove(t, family, a, (uint8_t)cidr, who) == want);
                if (want == 0)
                    ref_delete(&r, p);
                continue;
            }
            CHECK(wgf_allowedips_insert(t, family, a, (uint8_t)cidr, peer) == 0);
            if (p) {
                p->peer = peer;
            } else if (r.n < r.cap) {
                memcpy(r.v[r.n].addr, m, 16);
                r.v[r.n].cidr = (uint8_t)cidr;
                r.v[r.n].peer = peer;
                r.n++;
            }
        }
        if (round % 7 == 6) {
            uint32_t victim = 1 + (uint32_t)(rnd() % npeers);
            size_t had = 0;
            for (size_t i = 0; i < r.n;) {
                if (r.v[i].peer == victim) {
                    ref_delete(&r, &r.v[i]);
                    had++;
                } else {
                    i++;
                }
            }
            CHECK(wgf_allowedips_remove_by_peer(t, victim) == had);
            CHECK(wgf_allowedips_count_of(t, victim) == 0);
        }
        CHECK(wgf_allowedips_count(t) == r.n);
        CHECK(wgf_allowedips_node_count(t) <= 2 * r.n);
        static uint8_t queries[400][16];
        uint32_t wants[400];
        for (int q = 0; q < 400; q++) {
            uint8_t *a = queries[q];
            if (q % 8 == 0)
                for (unsigned i = 0; i < 16; i++)
                    a[i] = (uint8_t)rnd();
            else
                random_addr(a, (const uint8_t(*)[16])bases, 6, bytes);
            /* Sometimes the exact network address of a stored prefix, or its last address. */
            if (q % 8 == 1 && r.n) {
                struct ref_prefix *p = &r.v[rnd() % r.n];
                memcpy(a, p->addr, bytes);
                if (rnd() & 1)
                    for (unsigned i = p->cidr; i < bits; i++)
                        a[i / 8] |= (uint8_t)(0x80u >> (i % 8));
            }
            uint32_t want = ref_lookup(&r, a), got = wgf_allowedips_lookup(t, family, a);
            if (got != want && mismatches++ < 5)
                fprintf(stderr, "v%d lookup: got peer %u, want %u\n", family, got, want);
            CHECK(got == want);
            wants[q] = want;
        }
        /* The lock-step batch walk must agree with the reference too, at every batch size. */
        uint8_t fams[400];
        const uint8_t *ptrs[400];
        uint32_t batch_peers[400];
        for (int q = 0; q < 400; q++) {
            fams[q] = (uint8_t)family;
            ptrs[q] = queries[q];
        }
        size_t batch = 1 + (size_t)round % 19;
        for (size_t q = 0; q < 400; q += batch)
            wgf_allowedips_lookup_batch(t, fams + q, ptrs + q, batch_peers + q,
                                        400 - q < batch ? 400 - q : batch);
        for (int q = 0; q < 400; q++)
            CHECK(batch_peers[q] == wants[q]);
        compare_enumeration(t, &r, npeers);
    }
    CHECK(r.n > 100); /* the workload kept a real table, not an empty one */
    /* Emptying the table through remove_by_peer frees every node. */
    for (uint32_t peer = 1; peer <= npeers; peer++)
        wgf_allowedips_remove_by_peer(t, peer);
    CHECK(wgf_allowedips_count(t) == 0);
    CHECK(wgf_allowedips_node_count(t) == 0);
out:
    wgf_allowedips_free(t);
    free(r.v);
}

WGF_TEST(allowedips_random_v4_against_brute_force)
{
    random_workload(WGF_IP4, 0x1234567887654321u);
    random_workload(WGF_IP4, 0xdeadbeefcafef00du);
}

WGF_TEST(allowedips_random_v6_against_brute_force)
{
    random_workload(WGF_IP6, 0x0f1e2d3c4b5a6978u);
    random_workload(WGF_IP6, 0x1122334455667788u);
}

/* ---- readers racing a writer ---- */

struct race {
    struct wgf_allowedips *t;
    _Atomic int stop;
    unsigned long bad;
    _Atomic unsigned long lookups;
};

static void *allowedips_reader(void *arg)
{
    struct race *r = arg;
    uint8_t a4[4] = { 10, 1, 2, 3 }, b4[4] = { 172, 16, 0, 0 }, a6[16] = { 0xfd, 0 };
    const uint8_t fams[3] = { WGF_IP4, WGF_IP6, WGF_IP4 };
    const uint8_t *addrs[3] = { a4, a6, b4 };
    uint32_t peers[3];
    uint64_t rng = 77;
    while (!r->stop) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        b4[2] = (uint8_t)rng, b4[3] = (uint8_t)(rng >> 8);
        a6[5] = (uint8_t)(rng >> 16);
        wgf_allowedips_lookup_batch(r->t, fams, addrs, peers, 3);
        /* Pinned prefixes never change; churned ones belong to peer 100 + their length. */
        if (peers[0] != 1 || peers[1] != 2)
            r->bad++;
        if (peers[2] != 0 && (peers[2] < 100 + 16 || peers[2] > 100 + 32))
            r->bad++;
        r->lookups++;
    }
    return NULL;
}

WGF_TEST(allowedips_readers_race_writer)
{
    struct race r = { .t = wgf_allowedips_new() };
    if (!r.t) {
        CHECK(r.t != NULL);
        return;
    }
    CHECK(wgf_allowedips_insert(r.t, WGF_IP4, v4(10, 0, 0, 0), 8, 1) == 0);
    CHECK(wgf_allowedips_insert(r.t, WGF_IP6, v6("fd"), 8, 2) == 0);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, allowedips_reader, &r) == 0);
    /* Let the reader start before the writer churns: on a loaded machine the writes could
     * otherwise all finish before the reader is first scheduled (bounded: ~10 s). */
    for (int spin = 0; r.lookups == 0 && spin < 100000; spin++)
        usleep(100);
    uint64_t rng = 5;
    for (int step = 0; step < 100000; step++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        uint8_t cidr = (uint8_t)(16 + rng % 17);
        const uint8_t *a = v4(172, 16, (uint8_t)(rng >> 8), (uint8_t)(rng >> 16));
        if (rng & 0x1000000)
            wgf_allowedips_insert(r.t, WGF_IP4, a, cidr, 100u + cidr);
        else
            wgf_allowedips_remove(r.t, WGF_IP4, a, cidr, 100u + cidr);
        if (step % 1000 == 999)
            wgf_allowedips_remove_by_peer(r.t, 100u + cidr);
    }
    r.stop = 1;
    pthread_join(th, NULL);
    CHECK(r.bad == 0);
    CHECK(r.lookups > 0);
    wgf_allowedips_free(r.t);
}
