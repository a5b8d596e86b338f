/* Cryptokey routing table: a path-compressed binary trie per family; see allowedips.h. */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np */
#include "allowedips.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#ifdef __SANITIZE_ADDRESS__
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define IP4_BITS 32
#define IP6_BITS 128
#define PEER_MAP_MIN_LOG2 3
/* Nodes come from per-table chunks: a small first one, doubling up to one 2 MiB huge page. A
 * large table then spans few TLB entries, which is most of a random lookup's cost when its nodes
 * are out of cache (measured 2x on this kind of VM). */
#define CHUNK_FIRST_BYTES (16 * 1024)
#define CHUNK_HUGE_BYTES (2 * 1024 * 1024)
#define CACHE_LINE 64
/* Batch lookups walk this many tries in lock-step, prefetching each next node, so their cache
 * misses overlap instead of queueing. */
#define BATCH_LANES 8

/* A prefix. Keys are held as two host-order 64-bit words (bit 0 = the most significant bit of
 * the first address byte), IPv4 in the top half of the first word, so both families share one
 * bit-twiddling path. Invariants: key bits beyond cidr are zero; a child's prefix extends its
 * parent's and sits in child[bit cidr of the child's key]; a node with peer 0 (a branch point)
 * always has two children. */
struct node {
    uint64_t key[2];
    struct node *child[2];
    struct node *parent;
    struct node *peer_prev, *peer_next; /* this peer's list of prefixes */
    uint32_t peer;
    uint8_t cidr;
    uint8_t family;
} __attribute__((aligned(CACHE_LINE)));

_Static_assert(sizeof(struct node) == CACHE_LINE, "a node is one cache line");

struct node_chunk {
    struct node_chunk *next;
    size_t bytes;
} __attribute__((aligned(CACHE_LINE)));

/* One slot of the open-addressed map peer id -> that peer's list. peer 0 = empty slot. */
struct peer_list {
    uint32_t peer;
    size_t count;
    struct node *head;
};

struct wgf_allowedips {
    pthread_rwlock_t lock;
    struct node *root4, *root6;
    struct peer_list *peers;
    unsigned peers_log2;
    size_t peers_used;
    size_t count; /* prefixes */
    size_t nodes; /* prefixes and branch points */
    struct node *free_nodes; /* linked through child[0] */
    size_t free_count;
    struct node_chunk *chunks;
    size_t next_chunk_bytes;
};

/* ---- node pool ---- */

static int pool_grow(struct wgf_allowedips *t)
{
    size_t bytes = t->next_chunk_bytes;
    void *mem = NULL;
    if (posix_memalign(&mem, bytes == CHUNK_HUGE_BYTES ? CHUNK_HUGE_BYTES : CACHE_LINE, bytes))
        return -ENOMEM;
    if (bytes == CHUNK_HUGE_BYTES)
        madvise(mem, bytes, MADV_HUGEPAGE); /* a hint: without it we are merely slower */
    struct node_chunk *chunk = mem;
    chunk->next = t->chunks;
    chunk->bytes = bytes;
    t->chunks = chunk;
    struct node *nodes = (struct node *)(chunk + 1);
    size_t n = (bytes - sizeof(*chunk)) / sizeof(struct node);
    for (size_t i = n; i-- > 0;) {
        nodes[i].child[0] = t->free_nodes;
        t->free_nodes = &nodes[i];
        POISON(&nodes[i], sizeof(struct node));
    }
    t->free_count += n;
    if (t->next_chunk_bytes < CHUNK_HUGE_BYTES)
        t->next_chunk_bytes *= 2;
    return 0;
}

/* Ensures n nodes can be taken without failing. */
static int pool_reserve(struct wgf_allowedips *t, size_t n)
{
    while (t->free_count < n) {
        if (pool_grow(t))
            return -ENOMEM;
    }
    return 0;
}

static struct node *node_take(struct wgf_allowedips *t)
{
    struct node *n = t->free_nodes;
    UNPOISON(n, sizeof(*n));
    t->free_nodes = n->child[0];
    t->free_count--;
    t->nodes++;
    memset(n, 0, sizeof(*n));
    return n;
}

static void node_give(struct wgf_allowedips *t, struct node *n)
{
    n->child[0] = t->free_nodes;
    t->free_nodes = n;
    t->free_count++;
    t->nodes--;
    POISON(n, sizeof(*n));
}

/* ---- keys ---- */

static inline uint64_t load_be64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return __builtin_bswap64(v);
}

static inline void store_be64(uint8_t *p, uint64_t v)
{
    v = __builtin_bswap64(v);
    memcpy(p, &v, sizeof(v));
}

static inline uint32_t load_be32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return __builtin_bswap32(v);
}

static inline int family_bits(int family)
{
    return family == WGF_IP4 ? IP4_BITS : family == WGF_IP6 ? IP6_BITS : 0;
}

static inline void key_load(uint64_t key[2], int family, const uint8_t *addr)
{
    if (family == WGF_IP4) {
        key[0] = (uint64_t)load_be32(addr) << 32;
        key[1] = 0;
    } else {
        key[0] = load_be64(addr);
        key[1] = load_be64(addr + 8);
    }
}

static void key_store(uint8_t out[16], int family, const uint64_t key[2])
{
    memset(out, 0, 16);
    if (family == WGF_IP4) {
        uint64_t v = key[0] >> 32;
        for (int i = 0; i < 4; i++)
            out[i] = (uint8_t)(v >> (24 - 8 * i));
    } else {
        store_be64(out, key[0]);
        store_be64(out + 8, key[1]);
    }
}

/* Keeps the first cidr bits of a word range [64 * word, 64 * word + 64). */
static inline uint64_t word_mask(unsigned cidr, unsigned word)
{
    unsigned base = 64 * word;
    if (cidr <= base)
        return 0;
    if (cidr >= base + 64)
        return ~UINT64_C(0);
    return ~UINT64_C(0) << (64 - (cidr - base));
}

static inline void key_mask(uint64_t key[2], unsigned cidr)
{
    key[0] &= word_mask(cidr, 0);
    key[1] &= word_mask(cidr, 1);
}

/* How many leading bits a and b share (0..128). */
static inline unsigned common_bits(const uint64_t a[2], const uint64_t b[2])
{
    uint64_t x = a[0] ^ b[0];
    if (x)
        return (unsigned)__builtin_clzll(x);
    x = a[1] ^ b[1];
    if (x)
        return 64 + (unsigned)__builtin_clzll(x);
    return 128;
}

static inline unsigned bit_at(const uint64_t key[2], unsigned i)
{
    return (unsigned)(key[i >> 6] >> (63 - (i & 63))) & 1;
}

static inline unsigned min_u(unsigned a, unsigned b)
{
    return a < b ? a : b;
}

static inline struct node **root_of(struct wgf_allowedips *t, int family)
{
    return family == WGF_IP4 ? &t->root4 : &t->root6;
}

/* ---- peer id -> list of that peer's nodes ---- */

static inline size_t peer_home(uint32_t peer, unsigned log2)
{
    return (uint32_t)(peer * UINT32_C(2654435769)) >> (32 - log2);
}

/* The slot of peer, or the empty slot where it would go. */
static size_t peer_probe(const struct wgf_allowedips *t, uint32_t peer)
{
    size_t mask = ((size_t)1 << t->peers_log2) - 1, i = peer_home(peer, t->peers_log2);
    while (t->peers[i].peer != 0 && t->peers[i].peer != peer)
        i = (i + 1) & mask;
    return i;
}

static struct peer_list *peer_find(struct wgf_allowedips *t, uint32_t peer)
{
    struct peer_list *p = &t->peers[peer_probe(t, peer)];
    return p->peer ? p : NULL;
}

/* Makes room for one more peer so that linking a node afterwards cannot fail: every failure of an
 * insert happens before the trie is touched. */
static int peer_reserve(struct wgf_allowedips *t)
{
    if ((t->peers_used + 1) * 2 <= ((size_t)1 << t->peers_log2))
        return 0;
    size_t old_capacity = (size_t)1 << t->peers_log2;
    struct peer_list *old = t->peers;
    struct peer_list *fresh = calloc(old_capacity * 2, sizeof(*fresh));
    if (!fresh)
        return -ENOMEM;
    t->peers = fresh;
    t->peers_log2++;
    for (size_t i = 0; i < old_capacity; i++) {
        if (old[i].peer)
            t->peers[peer_probe(t, old[i].peer)] = old[i];
    }
    free(old);
    return 0;
}

/* Backward-shift deletion of an emptied list; see index_table.c for the reasoning. */
static void peer_delete(struct wgf_allowedips *t, size_t hole)
{
    size_t mask = ((size_t)1 << t->peers_log2) - 1;
    for (size_t j = (hole + 1) & mask; t->peers[j].peer != 0; j = (j + 1) & mask) {
        size_t home = peer_home(t->peers[j].peer, t->peers_log2);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            t->peers[hole] = t->peers[j];
            hole = j;
        }
    }
    t->peers[hole] = (struct peer_list){ 0 };
    t->peers_used--;
}

/* Gives node to peer. Room was reserved by peer_reserve. */
static void link_node(struct wgf_allowedips *t, struct node *node, uint32_t peer)
{
    struct peer_list *p = &t->peers[peer_probe(t, peer)];
    if (!p->peer) {
        p->peer = peer;
        t->peers_used++;
    }
    node->peer = peer;
    node->peer_prev = NULL;
    node->peer_next = p->head;
    if (p->head)
        p->head->peer_prev = node;
    p->head = node;
    p->count++;
    t->count++;
}

/* Takes node away from its peer, leaving it a branch point (peer 0). */
static void unlink_node(struct wgf_allowedips *t, struct node *node)
{
    size_t slot = peer_probe(t, node->peer);
    struct peer_list *p = &t->peers[slot];
    if (node->peer_prev)
        node->peer_prev->peer_next = node->peer_next;
    else
        p->head = node->peer_next;
    if (node->peer_next)
        node->peer_next->peer_prev = node->peer_prev;
    node->peer_prev = node->peer_next = NULL;
    node->peer = 0;
    t->count--;
    if (--p->count == 0)
        peer_delete(t, slot);
}

/* ---- the trie ---- */

/* Points whatever held old (its parent's child slot, or the root) at new. */
static void replace_child(struct wgf_allowedips *t, struct node *old, struct node *new)
{
    struct node *parent = old->parent;
    if (!parent)
        *root_of(t, old->family) = new;
    else
        parent->child[parent->child[1] == old] = new;
    if (new)
        new->parent = parent;
}

/* Unmaps node and restores the invariants: a node left with fewer than two children and no peer
 * is spliced out, and so is a branch point left with one child by that. */
static void remove_node(struct wgf_allowedips *t, struct node *node)
{
    unlink_node(t, node);
    if (node->child[0] && node->child[1])
        return;
    struct node *only = node->child[0] ? node->child[0] : node->child[1];
    struct node *parent = node->parent;
    replace_child(t, node, only);
    node_give(t, node);
    if (only || !parent || parent->peer != 0)
        return;
    /* parent was a branch point with two children and has just lost one. */
    struct node *other = parent->child[0] ? parent->child[0] : parent->child[1];
    replace_child(t, parent, other);
    node_give(t, parent);
}

/* The node for exactly key/cidr, or NULL. */
static struct node *find_exact(struct wgf_allowedips *t, int family, const uint64_t key[2],
                               unsigned cidr)
{
    struct node *node = *root_of(t, family);
    while (node && node->cidr <= cidr && common_bits(key, node->key) >= node->cidr) {
        if (node->cidr == cidr)
            return node;
        node = node->child[bit_at(key, node->cidr)];
    }
    return NULL;
}

static struct node *node_new(struct wgf_allowedips *t, int family, const uint64_t key[2],
                             unsigned cidr)
{
    struct node *n = node_take(t);
    n->key[0] = key[0];
    n->key[1] = key[1];
    key_mask(n->key, cidr);
    n->cidr = (uint8_t)cidr;
    n->family = (uint8_t)family;
    return n;
}

/* Places key/cidr -> peer. The caller reserved two pool nodes (a leaf and a branch point). */
static void insert_locked(struct wgf_allowedips *t, int family, const uint64_t key[2],
                          unsigned cidr, uint32_t peer)
{
    struct node **slot = root_of(t, family), *parent = NULL, *node;
    while ((node = *slot) != NULL) {
        unsigned common = min_u(common_bits(key, node->key), min_u(cidr, node->cidr));
        if (common == node->cidr) {
            if (node->cidr == cidr) { /* the same prefix: re-point it */
                if (node->peer == peer)
                    return;
                if (node->peer)
                    unlink_node(t, node);
                link_node(t, node, peer);
                return;
            }
            parent = node;
            slot = &node->child[bit_at(key, node->cidr)];
            continue;
        }
        struct node *n = node_new(t, family, key, cidr);
        n->parent = parent;
        if (common == cidr) { /* the new prefix contains node */
            n->child[bit_at(node->key, cidr)] = node;
            node->parent = n;
            *slot = n;
        } else { /* they part at bit common: a branch point holds both */
            struct node *b = node_new(t, family, key, common);
            b->parent = parent;
            unsigned side = bit_at(key, common);
            b->child[side] = n;
            b->child[!side] = node;
            n->parent = b;
            node->parent = b;
            *slot = b;
        }
        link_node(t, n, peer);
        return;
    }
    struct node *n = node_new(t, family, key, cidr);
    n->parent = parent;
    *slot = n;
    link_node(t, n, peer);
}

static int check_prefix(int family, const uint8_t *addr, uint8_t cidr)
{
    int bits = family_bits(family);
    return (bits == 0 || cidr > bits || !addr) ? -EINVAL : 0;
}

/* ---- public API ---- */

struct wgf_allowedips *wgf_allowedips_new(void)
{
    struct wgf_allowedips *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->peers_log2 = PEER_MAP_MIN_LOG2;
    t->next_chunk_bytes = CHUNK_FIRST_BYTES;
    t->peers = calloc((size_t)1 << t->peers_log2, sizeof(*t->peers));
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* The data plane reads continuously; without writer preference a configuration change
     * could wait indefinitely for a gap between readers. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int err = pthread_rwlock_init(&t->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (!t->peers || err) {
        free(t->peers);
        free(t);
        return NULL;
    }
    return t;
}

void wgf_allowedips_free(struct wgf_allowedips *t)
{
    if (!t)
        return;
    /* Every node lives in a chunk: freeing the chunks frees the tries. */
    for (struct node_chunk *c = t->chunks, *next; c; c = next) {
        next = c->next;
        UNPOISON(c, c->bytes);
        free(c);
    }
    pthread_rwlock_destroy(&t->lock);
    free(t->peers);
    free(t);
}

int wgf_allowedips_insert(struct wgf_allowedips *t, int family, const uint8_t *addr, uint8_t cidr,
                          uint32_t peer)
{
    if (check_prefix(family, addr, cidr) || peer == WGF_NO_PEER)
        return -EINVAL;
    uint64_t key[2];
    key_load(key, family, addr);
    key_mask(key, cidr);
    pthread_rwlock_wrlock(&t->lock);
    /* Every allocation happens before the trie is touched, so a failure leaves it unchanged. An
     * allocation under the lock is rare: one chunk per 32k nodes, or a peer-map doubling. */
    int ret = peer_reserve(t);
    if (ret == 0)
        ret = pool_reserve(t, 2);
    if (ret == 0)
        insert_locked(t, family, key, cidr, peer);
    pthread_rwlock_unlock(&t->lock);
    return ret;
}

int wgf_allowedips_remove(struct wgf_allowedips *t, int family, const uint8_t *addr, uint8_t cidr,
                          uint32_t peer)
{
    if (check_prefix(family, addr, cidr) || peer == WGF_NO_PEER)
        return -EINVAL;
    uint64_t key[2];
    key_load(key, family, addr);
    key_mask(key, cidr);
    int ret = -ENOENT;
    pthread_rwlock_wrlock(&t->lock);
    struct node *node = find_exact(t, family, key, cidr);
    if (node && node->peer == peer) {
        remove_node(t, node);
        ret = 0;
    }
    pthread_rwlock_unlock(&t->lock);
    return ret;
}

size_t wgf_allowedips_remove_by_peer(struct wgf_allowedips *t, uint32_t peer)
{
    size_t removed = 0;
    if (peer == WGF_NO_PEER)
        return 0;
    pthread_rwlock_wrlock(&t->lock);
    /* Looked up afresh each time: removing the last node deletes the list's slot. */
    for (struct peer_list *p; (p = peer_find(t, peer)) != NULL; removed++)
        remove_node(t, p->head);
    pthread_rwlock_unlock(&t->lock);
    return removed;
}

static inline uint32_t lookup_locked(struct wgf_allowedips *t, int family, const uint8_t *addr)
{
    unsigned bits = (unsigned)family_bits(family);
    if (bits == 0)
        return WGF_NO_PEER;
    uint64_t key[2];
    key_load(key, family, addr);
    uint32_t best = WGF_NO_PEER;
    struct node *node = *root_of(t, family);
    while (node && common_bits(key, node->key) >= node->cidr) {
        if (node->peer)
            best = node->peer;
        if (node->cidr == bits)
            break;
        node = node->child[bit_at(key, node->cidr)];
    }
    return best;
}

uint32_t wgf_allowedips_lookup(struct wgf_allowedips *t, int family, const uint8_t *addr)
{
    pthread_rwlock_rdlock(&t->lock);
    uint32_t peer = lookup_locked(t, family, addr);
    pthread_rwlock_unlock(&t->lock);
    return peer;
}

/* Up to BATCH_LANES lookups walked together, one trie level per lane per pass. Each pass only
 * touches nodes prefetched during the previous one, so the lanes' cache and TLB misses overlap.
 * Gives the same answers as lookup_locked, lane by lane. */
static void lookup_lanes(struct wgf_allowedips *t, const uint8_t *families,
                         const uint8_t *const *addrs, uint32_t *peers, size_t n)
{
    const struct node *cur[BATCH_LANES];
    uint64_t key[BATCH_LANES][2];
    unsigned bits[BATCH_LANES];
    size_t active = 0;
    for (size_t i = 0; i < n; i++) {
        peers[i] = WGF_NO_PEER;
        bits[i] = (unsigned)family_bits(families[i]);
        cur[i] = bits[i] ? *root_of(t, families[i]) : NULL;
        if (cur[i]) {
            key_load(key[i], families[i], addrs[i]);
            __builtin_prefetch(cur[i]);
            active++;
        }
    }
    while (active) {
        for (size_t i = 0; i < n; i++) {
            const struct node *node = cur[i];
            if (!node)
                continue;
            const struct node *next = NULL;
            if (common_bits(key[i], node->key) >= node->cidr) {
                if (node->peer)
                    peers[i] = node->peer;
                if (node->cidr != bits[i])
                    next = node->child[bit_at(key[i], node->cidr)];
            }
            cur[i] = next;
            if (next)
                __builtin_prefetch(next);
            else
                active--;
        }
    }
}

void wgf_allowedips_lookup_batch(struct wgf_allowedips *t, const uint8_t *families,
                                 const uint8_t *const *addrs, uint32_t *peers, size_t n)
{
    pthread_rwlock_rdlock(&t->lock);
    for (size_t i = 0; i < n; i += BATCH_LANES) {
        size_t lanes = n - i < BATCH_LANES ? n - i : BATCH_LANES;
        lookup_lanes(t, families + i, addrs + i, peers + i, lanes);
    }
    pthread_rwlock_unlock(&t->lock);
}

/* IPv4 header: 20 bytes minimum, source at 12, destination at 16. IPv6 header: 40 bytes,
 * source at 8, destination at 24. */
#define IP4_HEADER_LEN 20
#define IP4_SOURCE_OFFSET 12
#define IP4_DESTINATION_OFFSET 16
#define IP6_HEADER_LEN 40
#define IP6_SOURCE_OFFSET 8
#define IP6_DESTINATION_OFFSET 24

void wgf_allowedips_lookup_packets(struct wgf_allowedips *t, const uint8_t *const *pkts,
                                   const size_t *lens, size_t n, enum wgf_ip_field field,
                                   uint32_t *peers)
{
    int dst = field == WGF_IP_DESTINATION;
    uint8_t families[BATCH_LANES];
    const uint8_t *addrs[BATCH_LANES];
    pthread_rwlock_rdlock(&t->lock);
    for (size_t i = 0; i < n; i += BATCH_LANES) {
        size_t lanes = n - i < BATCH_LANES ? n - i : BATCH_LANES;
        for (size_t k = 0; k < lanes; k++) {
            const uint8_t *pkt = pkts[i + k];
            size_t len = lens[i + k];
            int version = (pkt && len) ? pkt[0] >> 4 : 0;
            families[k] = 0; /* not a family: looks up as WGF_NO_PEER */
            addrs[k] = NULL;
            if (version == WGF_IP4 && len >= IP4_HEADER_LEN) {
                families[k] = WGF_IP4;
                addrs[k] = pkt + (dst ? IP4_DESTINATION_OFFSET : IP4_SOURCE_OFFSET);
            } else if (version == WGF_IP6 && len >= IP6_HEADER_LEN) {
                families[k] = WGF_IP6;
                addrs[k] = pkt + (dst ? IP6_DESTINATION_OFFSET : IP6_SOURCE_OFFSET);
            }
        }
        lookup_lanes(t, families, addrs, peers + i, lanes);
    }
    pthread_rwlock_unlock(&t->lock);
}

size_t wgf_allowedips_prefixes_of(struct wgf_allowedips *t, uint32_t peer, struct wgf_prefix *out,
                                  size_t max)
{
    size_t total = 0;
    if (peer == WGF_NO_PEER)
        return 0;
    pthread_rwlock_rdlock(&t->lock);
    struct peer_list *p = peer_find(t, peer);
    if (p) {
        total = p->count;
        size_t i = 0;
        for (struct node *n = p->head; n && i < max; n = n->peer_next, i++) {
            out[i].family = n->family;
            out[i].cidr = n->cidr;
            key_store(out[i].addr, n->family, n->key);
        }
    }
    pthread_rwlock_unlock(&t->lock);
    return total;
}

size_t wgf_allowedips_count_of(struct wgf_allowedips *t, uint32_t peer)
{
    return wgf_allowedips_prefixes_of(t, peer, NULL, 0);
}

size_t wgf_allowedips_count(struct wgf_allowedips *t)
{
    pthread_rwlock_rdlock(&t->lock);
    size_t n = t->count;
    pthread_rwlock_unlock(&t->lock);
    return n;
}

size_t wgf_allowedips_node_count(struct wgf_allowedips *t)
{
    pthread_rwlock_rdlock(&t->lock);
    size_t n = t->nodes;
    pthread_rwlock_unlock(&t->lock);
    return n;
}
