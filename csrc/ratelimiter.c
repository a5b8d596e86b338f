/* The per-source token bucket (see ratelimiter.h). The kernel's arithmetic: tokens are
 * nanoseconds of credit; each datagram costs WGF_RATELIMIT_PACKET_COST_NS, time adds credit up
 * to WGF_RATELIMIT_TOKEN_MAX_NS, and a new source starts with a full bucket minus this
 * datagram's cost. Open addressing with linear probing; collection rebuilds the table without
 * the idle entries (O(slots) once a second at most). */
#include <string.h>
#include <sys/random.h>

#include "blake2s.h"
#include "byteorder.h"
#include "ratelimiter.h"

static const uint8_t ipv4_mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

void wgf_ratelimiter_init(struct wgf_ratelimiter *rl, int allow_when_full)
{
    memset(rl, 0, sizeof(*rl));
    rl->allow_when_full = allow_when_full != 0;
    if (getrandom(rl->hash_key, sizeof(rl->hash_key), 0) != (ssize_t)sizeof(rl->hash_key))
        memset(rl->hash_key, 0, sizeof(rl->hash_key)); /* still correct, only predictable */
}

size_t wgf_ratelimiter_count(const struct wgf_ratelimiter *rl)
{
    return rl->count;
}

static size_t slot_of(const struct wgf_ratelimiter *rl, int family, uint64_t prefix)
{
    uint8_t in[9], h[8];
    wgf_put_le64(in, prefix);
    in[8] = (uint8_t)family;
    wgf_blake2s(h, sizeof(h), in, sizeof(in), rl->hash_key, sizeof(rl->hash_key));
    return (size_t)(wgf_get_le64(h) % WGF_RATELIMIT_SLOTS);
}

/* The slot holding (family, prefix), or the free slot where it would go. */
static struct wgf_ratelimit_entry *find(struct wgf_ratelimiter *rl, int family, uint64_t prefix)
{
    size_t i = slot_of(rl, family, prefix);
    for (;;) { /* terminates: the table is never more than half full */
        struct wgf_ratelimit_entry *e = &rl->slots[i];
        if (e->family == 0 || (e->family == family && e->prefix == prefix))
            return e;
        i = (i + 1) % WGF_RATELIMIT_SLOTS;
    }
}

static void collect(struct wgf_ratelimiter *rl, uint64_t now_ns)
{
    if (rl->last_gc_ns != 0 && now_ns - rl->last_gc_ns < WGF_RATELIMIT_GC_INTERVAL_NS)
        return;
    rl->last_gc_ns = now_ns;
    if (rl->count == 0)
        return;
    /* Rebuild: move the live entries to the front, clear the rest, reinsert them. */
    size_t live = 0;
    for (size_t i = 0; i < WGF_RATELIMIT_SLOTS; i++) {
        struct wgf_ratelimit_entry e = rl->slots[i];
        if (e.family != 0 && now_ns - e.last_ns <= WGF_RATELIMIT_ENTRY_TTL_NS)
            rl->slots[live++] = e;
    }
    memcpy(rl->scratch, rl->slots, live * sizeof(rl->scratch[0]));
    memset(rl->slots, 0, sizeof(rl->slots));
    for (size_t k = 0; k < live; k++)
        *find(rl, rl->scratch[k].family, rl->scratch[k].prefix) = rl->scratch[k];
    rl->count = live;
}

/* One token from (family, prefix)'s bucket. */
static int take(struct wgf_ratelimiter *rl, int family, uint64_t prefix, uint64_t now_ns)
{
    collect(rl, now_ns);
    struct wgf_ratelimit_entry *e = find(rl, family, prefix);
    if (e->family == 0) {
        if (rl->count >= WGF_RATELIMIT_MAX_ENTRIES)
            return rl->allow_when_full;
        e->family = (uint8_t)family;
        e->prefix = prefix;
        e->last_ns = now_ns;
        e->tokens = WGF_RATELIMIT_TOKEN_MAX_NS - WGF_RATELIMIT_PACKET_COST_NS;
        rl->count++;
        return 1;
    }
    uint64_t elapsed = now_ns > e->last_ns ? now_ns - e->last_ns : 0;
    e->tokens = e->tokens + elapsed > WGF_RATELIMIT_TOKEN_MAX_NS ? WGF_RATELIMIT_TOKEN_MAX_NS
                                                                 : e->tokens + elapsed;
    e->last_ns = now_ns;
    if (e->tokens < WGF_RATELIMIT_PACKET_COST_NS)
        return 0;
    e->tokens -= WGF_RATELIMIT_PACKET_COST_NS;
    return 1;
}

/* The IPv4 address of a v4-mapped IPv6 one, or NULL. */
static const uint8_t *mapped_ipv4(int family, const uint8_t *addr)
{
    if (family == 6 && memcmp(addr, ipv4_mapped_prefix, sizeof(ipv4_mapped_prefix)) == 0)
        return addr + sizeof(ipv4_mapped_prefix);
    return NULL;
}

int wgf_ratelimiter_allow(struct wgf_ratelimiter *rl, int family, const uint8_t *addr,
                          uint64_t now_ns)
{
    const uint8_t *v4 = mapped_ipv4(family, addr);
    if (v4 != NULL) {
        family = 4;
        addr = v4;
    }
    if (family == 4)
        return take(rl, 4, wgf_get_be32(addr), now_ns);
    if (family == 6) /* the /64 */
        return take(rl, 6, (uint64_t)wgf_get_be32(addr) << 32 | wgf_get_be32(addr + 4), now_ns);
    return 0;
}

int wgf_ratelimiter_allow_port(struct wgf_ratelimiter *rl, int family, const uint8_t *addr,
                               uint16_t port, uint64_t now_ns)
{
    const uint8_t *v4 = mapped_ipv4(family, addr);
    if (v4 != NULL) {
        family = 4;
        addr = v4;
    }
    if (family == 4)
        return take(rl, 4, (uint64_t)wgf_get_be32(addr) << 16 | port, now_ns);
    if (family != 6)
        return 0;
    uint8_t in[18], h[8];
    memcpy(in, addr, 16);
    wgf_put_be16(in + 16, port);
    wgf_blake2s(h, sizeof(h), in, sizeof(in), rl->hash_key, sizeof(rl->hash_key));
    return take(rl, 6, wgf_get_le64(h), now_ns);
}
