/* Per-source token bucket for handshake datagrams under load (the kernel's ratelimiter.c): each
 * source may send WGF_RATELIMIT_PACKETS_PER_SECOND with bursts of
 * WGF_RATELIMIT_PACKETS_BURSTABLE. A source is an IPv4 address (/32) or an IPv6 /64 (one host
 * usually owns a whole /64); an IPv4-mapped IPv6 address is its IPv4 address.
 *
 * The table is bounded (WGF_RATELIMIT_MAX_ENTRIES): a new source finding it full is refused
 * rather than evicting one being limited (the kernel's choice), or, for a table made with
 * allow_when_full, let through unlimited (when a limit only saves work, never guards it).
 *
 * wgf_ratelimiter_allow_port keys by address and port instead (IPv4 exactly; IPv6 by a keyed
 * hash): the data plane limits the cookie replies it sends that way, so that a flood from many
 * ports of one address does not make it spend its time answering, while the real peer's own
 * port, which sends a handshake every few seconds, is always answered. Entries idle for
 * WGF_RATELIMIT_ENTRY_TTL_NS are collected, at most every WGF_RATELIMIT_GC_INTERVAL_NS. The
 * slots are hashed with a random key so that an attacker cannot aim its sources at one probe
 * chain. Not thread-safe: the caller serialises. */
#ifndef WGF_RATELIMITER_H
#define WGF_RATELIMITER_H

#include <stddef.h>
#include <stdint.h>

#define WGF_RATELIMIT_PACKETS_PER_SECOND 20
#define WGF_RATELIMIT_PACKETS_BURSTABLE 5
#define WGF_RATELIMIT_PACKET_COST_NS (UINT64_C(1000000000) / WGF_RATELIMIT_PACKETS_PER_SECOND)
#define WGF_RATELIMIT_TOKEN_MAX_NS (WGF_RATELIMIT_PACKET_COST_NS * WGF_RATELIMIT_PACKETS_BURSTABLE)
#define WGF_RATELIMIT_ENTRY_TTL_NS UINT64_C(1000000000)
#define WGF_RATELIMIT_GC_INTERVAL_NS UINT64_C(1000000000)
#define WGF_RATELIMIT_MAX_ENTRIES 4096
#define WGF_RATELIMIT_SLOTS (2 * WGF_RATELIMIT_MAX_ENTRIES) /* at most half full */

struct wgf_ratelimit_entry {
    uint64_t prefix;   /* the IPv4 address or the IPv6 /64 */
    uint64_t last_ns;  /* when tokens were last topped up */
    uint64_t tokens;   /* in nanoseconds of credit, up to WGF_RATELIMIT_TOKEN_MAX_NS */
    uint8_t family;    /* 4 or 6; 0: a free slot */
};

struct wgf_ratelimiter {
    struct wgf_ratelimit_entry slots[WGF_RATELIMIT_SLOTS];
    struct wgf_ratelimit_entry scratch[WGF_RATELIMIT_MAX_ENTRIES]; /* for collection */
    size_t count;
    uint64_t last_gc_ns;
    uint8_t hash_key[32];
    int allow_when_full;
};

/* Empty table, fresh hash key. */
void wgf_ratelimiter_init(struct wgf_ratelimiter *rl, int allow_when_full);
/* family 4 with 4 address bytes or 6 with 16. 1: allowed (a token taken), 0: refused. */
int wgf_ratelimiter_allow(struct wgf_ratelimiter *rl, int family, const uint8_t *addr,
                          uint64_t now_ns);
/* The same by address and port (port in host order). */
int wgf_ratelimiter_allow_port(struct wgf_ratelimiter *rl, int family, const uint8_t *addr,
                               uint16_t port, uint64_t now_ns);
size_t wgf_ratelimiter_count(const struct wgf_ratelimiter *rl);

#endif
