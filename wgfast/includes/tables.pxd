# C declarations of csrc/allowedips.h, replay.h and index_table.h.
from libc.stdint cimport uint8_t, uint32_t, uint64_t


cdef extern from "allowedips.h" nogil:
    enum:
        WGF_IP4
        WGF_IP6
    enum wgf_ip_field:
        WGF_IP_SOURCE
        WGF_IP_DESTINATION
    struct wgf_allowedips:
        pass
    struct wgf_prefix:
        uint8_t family
        uint8_t cidr
        uint8_t addr[16]

    wgf_allowedips *wgf_allowedips_new()
    void wgf_allowedips_free(wgf_allowedips *t)
    int wgf_allowedips_insert(wgf_allowedips *t, int family, const uint8_t *addr, uint8_t cidr,
                              uint32_t peer)
    int wgf_allowedips_remove(wgf_allowedips *t, int family, const uint8_t *addr, uint8_t cidr,
                              uint32_t peer)
    size_t wgf_allowedips_remove_by_peer(wgf_allowedips *t, uint32_t peer)
    uint32_t wgf_allowedips_lookup(wgf_allowedips *t, int family, const uint8_t *addr)
    void wgf_allowedips_lookup_batch(wgf_allowedips *t, const uint8_t *families,
                                     const uint8_t *const *addrs, uint32_t *peers, size_t n)
    void wgf_allowedips_lookup_packets(wgf_allowedips *t, const uint8_t *const *pkts,
                                       const size_t *lens, size_t n, wgf_ip_field field,
                                       uint32_t *peers)
    size_t wgf_allowedips_prefixes_of(wgf_allowedips *t, uint32_t peer, wgf_prefix *out,
                                      size_t max)
    size_t wgf_allowedips_count_of(wgf_allowedips *t, uint32_t peer)
    size_t wgf_allowedips_count(wgf_allowedips *t)
    size_t wgf_allowedips_node_count(wgf_allowedips *t)

cdef extern from "replay.h" nogil:
    const uint64_t WGF_REPLAY_WINDOW_SIZE
    const uint64_t WGF_REJECT_AFTER_MESSAGES
    struct wgf_replay:
        uint64_t next

    void wgf_replay_init(wgf_replay *r)
    int wgf_replay_check(const wgf_replay *r, uint64_t counter)
    int wgf_replay_update(wgf_replay *r, uint64_t counter)

cdef extern from "index_table.h" nogil:
    struct wgf_index_table:
        pass
    struct wgf_index_entry:
        uint32_t peer
        uint32_t keypair

    wgf_index_table *wgf_index_table_new()
    void wgf_index_table_free(wgf_index_table *t)
    int wgf_index_table_insert(wgf_index_table *t, uint32_t index, uint32_t peer,
                               uint32_t keypair)
    int wgf_index_table_replace(wgf_index_table *t, uint32_t index, uint32_t peer,
                                uint32_t keypair)
    int wgf_index_table_remove(wgf_index_table *t, uint32_t index)
    int wgf_index_table_lookup(wgf_index_table *t, uint32_t index, wgf_index_entry *out)
    size_t wgf_index_table_lookup_batch(wgf_index_table *t, const uint32_t *indices,
                                        wgf_index_entry *out, size_t n)
    size_t wgf_index_table_count(wgf_index_table *t)
