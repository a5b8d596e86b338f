/* Cryptokey routing: the allowed-IPs table. Maps IPv4 and IPv6 prefixes to a peer id and answers
 * longest-prefix-match lookups, both ways round: on send, which peer a packet's destination
 * belongs to; on receive, whether a packet's source is one its peer may use.
 *
 * One path-compressed binary trie per address family (the idea of the kernel's allowedips.c):
 * every node is a prefix; a child extends its parent's prefix and hangs off the bit just past
 * it; nodes without a peer exist only where two prefixes part ways. A lookup therefore visits at
 * most one node per distinct prefix length on its path (<= 33 or 129).
 *
 * Each peer's prefixes are also threaded on a per-peer list (found through a small hash of peer
 * ids), so enumerating or removing one peer's prefixes costs O(its prefixes), not O(table).
 *
 * Threading: one reader-writer lock per table, preferring writers. Lookups (single or batch)
 * take it shared; insert/remove take it exclusively for O(prefix length) work (remove_by_peer for
 * O(that peer's prefixes)); nodes come from a per-table pool, so the lock is held across an
 * allocation only when the pool grows by a chunk (one per 32k nodes). A reader sees every update
 * entirely or not at all. Every function is safe from any thread and never calls Python.
 *
 * Addresses are raw network-order bytes: 4 for IPv4, 16 for IPv6. Families are the IP header's
 * version nibble (4 or 6), so the data plane can pass packet[0] >> 4 straight in. Peer ids are
 * the caller's; 0 is reserved for "no peer". */
#ifndef WGF_ALLOWEDIPS_H
#define WGF_ALLOWEDIPS_H

#include <stddef.h>
#include <stdint.h>

#define WGF_IP4 4
#define WGF_IP6 6
#define WGF_IP4_ADDR_LEN 4
#define WGF_IP6_ADDR_LEN 16
#define WGF_NO_PEER 0u

struct wgf_allowedips;

/* One prefix as enumeration returns it: addr holds 4 or 16 meaningful bytes (the rest zero), with
 * host bits beyond cidr zero. */
struct wgf_prefix {
    uint8_t family; /* WGF_IP4 or WGF_IP6 */
    uint8_t cidr;
    uint8_t addr[16];
};

/* NULL if out of memory. */
struct wgf_allowedips *wgf_allowedips_new(void);
/* No reader may be inside the table when it is freed. NULL is ignored. */
void wgf_allowedips_free(struct wgf_allowedips *t);

/* Maps addr/cidr to peer; host bits beyond cidr are ignored. An identical prefix already present
 * is re-pointed to peer (WireGuard's semantics: the newest configuration wins).
 * 0; -EINVAL for an unknown family, cidr too long, or peer 0; -ENOMEM. */
int wgf_allowedips_insert(struct wgf_allowedips *t, int family, const uint8_t *addr, uint8_t cidr,
                          uint32_t peer);
/* Removes addr/cidr only if it is mapped to peer. 0; -ENOENT if absent or another peer's;
 * -EINVAL for bad arguments. */
int wgf_allowedips_remove(struct wgf_allowedips *t, int family, const uint8_t *addr, uint8_t cidr,
                          uint32_t peer);
/* Removes every prefix of peer; returns how many were removed. */
size_t wgf_allowedips_remove_by_peer(struct wgf_allowedips *t, uint32_t peer);

/* Longest-prefix match: the peer owning the most specific prefix containing addr, or
 * WGF_NO_PEER (also for an unknown family). */
uint32_t wgf_allowedips_lookup(struct wgf_allowedips *t, int family, const uint8_t *addr);
/* n lookups under one shared lock: peers[i] = lookup(families[i], addrs[i]). */
void wgf_allowedips_lookup_batch(struct wgf_allowedips *t, const uint8_t *families,
                                 const uint8_t *const *addrs, uint32_t *peers, size_t n);

/* Which address of an IP packet to route on: the destination when sending, the source when
 * checking what a peer sent us. */
enum wgf_ip_field {
    WGF_IP_SOURCE = 0,
    WGF_IP_DESTINATION = 1,
};
/* Batch lookup straight from IP packets (pkts[i] of lens[i] bytes): the version nibble picks
 * the family, the header supplies the address. A packet too short for its header, or of another
 * version, gets WGF_NO_PEER. */
void wgf_allowedips_lookup_packets(struct wgf_allowedips *t, const uint8_t *const *pkts,
                                   const size_t *lens, size_t n, enum wgf_ip_field field,
                                   uint32_t *peers);

/* Enumerates peer's prefixes into out[0..min(count, max)) and returns count, the total, in the
 * manner of snprintf: call with max = 0 to size the array (or use wgf_allowedips_count_of). The
 * order is unspecified. A concurrent writer may change the count between a sizing call and the
 * filling call, so compare the return value with max. */
size_t wgf_allowedips_prefixes_of(struct wgf_allowedips *t, uint32_t peer, struct wgf_prefix *out,
                                  size_t max);
size_t wgf_allowedips_count_of(struct wgf_allowedips *t, uint32_t peer);
/* Number of prefixes in the table, both families. */
size_t wgf_allowedips_count(struct wgf_allowedips *t);
/* Number of trie nodes, branch points included: memory accounting, and lets tests see that
 * removal compacts the trie (path compression keeps it below 2 x count). */
size_t wgf_allowedips_node_count(struct wgf_allowedips *t);

#endif
