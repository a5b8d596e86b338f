/* Receiver index -> {peer, keypair}: linear-probing hash table under a writer-preferring rwlock. */
#define _GNU_SOURCE /* pthread_rwlockattr_setkind_np */
#include "index_table.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

#define MIN_CAPACITY_LOG2 4
/* Grow when more than half full: linear probing stays short below that. */
#define MAX_LOAD_NUM 1
#define MAX_LOAD_DEN 2

struct slot {
    uint32_t index;
    uint32_t peer; /* 0 = empty slot */
    uint32_t keypair;
};

struct wgf_index_table {
    pthread_rwlock_t lock;
    struct slot *slots;
    unsigned capacity_log2;
    size_t count;
};

/* Fibonacci hashing: indices are random already, but a multiplicative mix keeps a poorly chosen
 * sequence (say, consecutive numbers) from clustering. */
static inline size_t home_of(uint32_t index, unsigned capacity_log2)
{
    return (uint32_t)(index * UINT32_C(2654435769)) >> (32 - capacity_log2);
}

static inline size_t mask_of(const struct wgf_index_table *t)
{
    return ((size_t)1 << t->capacity_log2) - 1;
}

/* The slot holding index, or the empty slot where it would go. Caller holds the lock. */
static size_t probe(const struct wgf_index_table *t, uint32_t index)
{
    size_t mask = mask_of(t), i = home_of(index, t->capacity_log2);
    while (t->slots[i].peer != 0 && t->slots[i].index != index)
        i = (i + 1) & mask;
    return i;
}

struct wgf_index_table *wgf_index_table_new(void)
{
    struct wgf_index_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->capacity_log2 = MIN_CAPACITY_LOG2;
    t->slots = calloc((size_t)1 << t->capacity_log2, sizeof(*t->slots));
    pthread_rwlockattr_t attr;
    pthread_rwlockattr_init(&attr);
    /* The data plane reads continuously; without writer preference a handshake could wait
     * indefinitely for a gap between readers. */
    pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    int err = pthread_rwlock_init(&t->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (!t->slots || err) {
        free(t->slots);
        free(t);
        return NULL;
    }
    return t;
}

void wgf_index_table_free(struct wgf_index_table *t)
{
    if (!t)
        return;
    pthread_rwlock_destroy(&t->lock);
    free(t->slots);
    free(t);
}

/* Doubles the table. Caller holds the lock exclusively. */
static int grow(struct wgf_index_table *t)
{
    unsigned new_log2 = t->capacity_log2 + 1;
    if (new_log2 > 31)
        return -ENOMEM;
    struct slot *old = t->slots;
    size_t old_capacity = (size_t)1 << t->capacity_log2;
    struct slot *fresh = calloc((size_t)1 << new_log2, sizeof(*fresh));
    if (!fresh)
        return -ENOMEM;
    t->slots = fresh;
    t->capacity_log2 = new_log2;
    for (size_t i = 0; i < old_capacity; i++) {
        if (old[i].peer != 0)
            t->slots[probe(t, old[i].index)] = old[i];
    }
    free(old);
    return 0;
}

int wgf_index_table_insert(struct wgf_index_table *t, uint32_t index, uint32_t peer,
                           uint32_t keypair)
{
    if (peer == 0)
        return -EINVAL;
    int ret = 0;
    pthread_rwlock_wrlock(&t->lock);
    size_t i = probe(t, index);
    if (t->slots[i].peer != 0) {
        ret = -EEXIST;
        goto out;
    }
    if ((t->count + 1) * MAX_LOAD_DEN > ((size_t)MAX_LOAD_NUM << t->capacity_log2)) {
        ret = grow(t);
        if (ret)
            goto out;
        i = probe(t, index);
    }
    t->slots[i] = (struct slot){ .index = index, .peer = peer, .keypair = keypair };
    t->count++;
out:
    pthread_rwlock_unlock(&t->lock);
    return ret;
}

int wgf_index_table_replace(struct wgf_index_table *t, uint32_t index, uint32_t peer,
                            uint32_t keypair)
{
    if (peer == 0)
        return -EINVAL;
    int ret = -ENOENT;
    pthread_rwlock_wrlock(&t->lock);
    struct slot *s = &t->slots[probe(t, index)];
    if (s->peer != 0) {
        s->peer = peer;
        s->keypair = keypair;
        ret = 0;
    }
    pthread_rwlock_unlock(&t->lock);
    return ret;
}

int wgf_index_table_remove(struct wgf_index_table *t, uint32_t index)
{
    int ret = 0;
    pthread_rwlock_wrlock(&t->lock);
    size_t mask = mask_of(t), hole = probe(t, index);
    if (t->slots[hole].peer == 0) {
        ret = -ENOENT;
        goto out;
    }
    /* Backward-shift deletion: pull later members of the probe run into the hole whenever their
     * home slot does not lie (cyclically) between the hole and where they sit, so every entry
     * stays reachable from its home without tombstones. */
    for (size_t j = (hole + 1) & mask; t->slots[j].peer != 0; j = (j + 1) & mask) {
        size_t home = home_of(t->slots[j].index, t->capacity_log2);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    t->slots[hole] = (struct slot){ 0 };
    t->count--;
out:
    pthread_rwlock_unlock(&t->lock);
    return ret;
}

static inline struct wgf_index_entry find_locked(const struct wgf_index_table *t, uint32_t index)
{
    const struct slot *s = &t->slots[probe(t, index)];
    return (struct wgf_index_entry){ .peer = s->peer, .keypair = s->peer ? s->keypair : 0 };
}

int wgf_index_table_lookup(struct wgf_index_table *t, uint32_t index, struct wgf_index_entry *out)
{
    pthread_rwlock_rdlock(&t->lock);
    *out = find_locked(t, index);
    pthread_rwlock_unlock(&t->lock);
    return out->peer ? 0 : -ENOENT;
}

size_t wgf_index_table_lookup_batch(struct wgf_index_table *t, const uint32_t *indices,
                                    struct wgf_index_entry *out, size_t n)
{
    size_t hits = 0;
    pthread_rwlock_rdlock(&t->lock);
    for (size_t k = 0; k < n; k++) {
        out[k] = find_locked(t, indices[k]);
        hits += out[k].peer != 0;
    }
    pthread_rwlock_unlock(&t->lock);
    return hits;
}

size_t wgf_index_table_count(struct wgf_index_table *t)
{
    pthread_rwlock_rdlock(&t->lock);
    size_t n = t->count;
    pthread_rwlock_unlock(&t->lock);
    return n;
}
