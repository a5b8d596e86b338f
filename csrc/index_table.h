/* The receiver-index table: the 32-bit index a handshake assigned (chosen at random by the
 * control plane) -> which peer and which of its keypairs a transport message is for.
 *
 * An open-addressing hash table (linear probing, backward-shift deletion) behind one
 * reader-writer lock that prefers writers. Lookups take the lock shared and copy the entry out,
 * so a reader never sees a half-written entry; writes (handshakes, keypair expiry) hold it
 * exclusively for a handful of probes, or for one O(n) rehash when the table doubles.
 * Every function is safe to call from any thread; none calls back into Python. */
#ifndef WGF_INDEX_TABLE_H
#define WGF_INDEX_TABLE_H

#include <stddef.h>
#include <stdint.h>

struct wgf_index_table;

/* What an index resolves to. peer is never 0 in a stored entry: 0 means "no such index". */
struct wgf_index_entry {
    uint32_t peer;
    uint32_t keypair; /* the data plane's keypair slot or handle; opaque here */
};

/* NULL if out of memory. */
struct wgf_index_table *wgf_index_table_new(void);
/* No reader may be inside the table when it is freed. NULL is ignored. */
void wgf_index_table_free(struct wgf_index_table *t);

/* 0; -EEXIST if index is already present (nothing changes); -EINVAL if peer is 0; -ENOMEM. */
int wgf_index_table_insert(struct wgf_index_table *t, uint32_t index, uint32_t peer,
                           uint32_t keypair);
/* Re-points an existing index in one step (a handshake's index handed to the keypair it made,
 * a keypair moved to another slot): readers see the old entry or the new one, never a gap.
 * 0; -ENOENT if absent (nothing is inserted); -EINVAL if peer is 0. */
int wgf_index_table_replace(struct wgf_index_table *t, uint32_t index, uint32_t peer,
                            uint32_t keypair);
/* 0, or -ENOENT if absent. */
int wgf_index_table_remove(struct wgf_index_table *t, uint32_t index);
/* 0 and *out filled, or -ENOENT (and *out = {0, 0}). */
int wgf_index_table_lookup(struct wgf_index_table *t, uint32_t index,
                           struct wgf_index_entry *out);
/* Looks up n indices under one shared lock; misses come back as {0, 0}. Returns the hits. */
size_t wgf_index_table_lookup_batch(struct wgf_index_table *t, const uint32_t *indices,
                                    struct wgf_index_entry *out, size_t n);
size_t wgf_index_table_count(struct wgf_index_table *t);

#endif
