/* The per-source token bucket and its table (ratelimiter.c): the kernel's 20 per second with
 * bursts of 5, IPv4 by address, IPv6 by /64, a bounded table collected when idle. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../ratelimiter.h"
#include "check.h"

#define MS UINT64_C(1000000)
#define SEC UINT64_C(1000000000)

static struct wgf_ratelimiter *fresh(void)
{
    struct wgf_ratelimiter *rl = malloc(sizeof(*rl));
    if (rl != NULL)
        wgf_ratelimiter_init(rl, 0);
    return rl;
}

WGF_TEST(ratelimiter_burst_then_rate)
{
    struct wgf_ratelimiter *rl = fresh();
    CHECK(rl != NULL);
    if (rl == NULL)
        return;
    const uint8_t a[4] = {192, 0, 2, 1}, b[4] = {192, 0, 2, 2};
    uint64_t t = 10 * SEC;
    int allowed = 0;
    for (int i = 0; i < 20; i++)
        allowed += wgf_ratelimiter_allow(rl, 4, a, t);
    CHECK(allowed == WGF_RATELIMIT_PACKETS_BURSTABLE);
    CHECK(wgf_ratelimiter_allow(rl, 4, b, t) == 1); /* another source has its own bucket */
    /* One packet's cost later, one more. */
    CHECK(wgf_ratelimiter_allow(rl, 4, a, t + 49 * MS) == 0);
    CHECK(wgf_ratelimiter_allow(rl, 4, a, t + 50 * MS + 49 * MS) == 1);
    /* Over a steady second: 20, not more. */
    allowed = 0;
    uint64_t start = t + SEC;
    for (int i = 0; i < 1000; i++)
        allowed += wgf_ratelimiter_allow(rl, 4, a, start + (uint64_t)i * MS);
    CHECK(allowed >= WGF_RATELIMIT_PACKETS_PER_SECOND &&
          allowed <= WGF_RATELIMIT_PACKETS_PER_SECOND + WGF_RATELIMIT_PACKETS_BURSTABLE);
    free(rl);
}

WGF_TEST(ratelimiter_ipv6_by_64_and_mapped_ipv4)
{
    struct wgf_ratelimiter *rl = fresh();
    CHECK(rl != NULL);
    if (rl == NULL)
        return;
    uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 1};
    uint64_t t = SEC;
    int allowed = 0;
    for (int i = 0; i < 10; i++) {
        v6[15] = (uint8_t)i; /* other hosts of the same /64 share its bucket */
        allowed += wgf_ratelimiter_allow(rl, 6, v6, t);
    }
    CHECK(allowed == WGF_RATELIMIT_PACKETS_BURSTABLE);
    v6[7] = 2; /* the next /64 */
    CHECK(wgf_ratelimiter_allow(rl, 6, v6, t) == 1);
    const uint8_t v4[4] = {198, 51, 100, 7};
    const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 7};
    allowed = 0;
    for (int i = 0; i < 5; i++)
        allowed += wgf_ratelimiter_allow(rl, 4, v4, t);
    allowed += wgf_ratelimiter_allow(rl, 6, mapped, t);
    CHECK(allowed == WGF_RATELIMIT_PACKETS_BURSTABLE);
    CHECK(wgf_ratelimiter_allow(rl, 5, v4, t) == 0); /* not a family */
    free(rl);
}

WGF_TEST(ratelimiter_table_is_bounded_and_collected)
{
    struct wgf_ratelimiter *rl = fresh();
    CHECK(rl != NULL);
    if (rl == NULL)
        return;
    uint64_t t = 5 * SEC;
    CHECK(wgf_ratelimiter_allow(rl, 4, (const uint8_t[]){10, 0, 0, 0}, t) == 1); /* starts gc */
    for (uint32_t i = 1; i < WGF_RATELIMIT_MAX_ENTRIES; i++) {
        uint8_t a[4] = {10, (uint8_t)(i >> 16), (uint8_t)(i >> 8), (uint8_t)i};
        CHECK(wgf_ratelimiter_allow(rl, 4, a, t + i) == 1);
    }
    CHECK(wgf_ratelimiter_count(rl) == WGF_RATELIMIT_MAX_ENTRIES);
    /* Full: a new source is refused, a known one still served. */
    CHECK(wgf_ratelimiter_allow(rl, 4, (const uint8_t[]){11, 0, 0, 1}, t + SEC / 2) == 0);
    CHECK(wgf_ratelimiter_allow(rl, 4, (const uint8_t[]){10, 0, 0, 5}, t + SEC / 2) == 1);
    CHECK(wgf_ratelimiter_count(rl) == WGF_RATELIMIT_MAX_ENTRIES);
    /* Idle for over ENTRY_TTL: collected, and room again; the busy one stays. */
    uint64_t later = t + SEC / 2 + WGF_RATELIMIT_ENTRY_TTL_NS - 1;
    CHECK(wgf_ratelimiter_allow(rl, 4, (const uint8_t[]){10, 0, 0, 5}, later) == 1);
    CHECK(wgf_ratelimiter_count(rl) == 1);
    CHECK(wgf_ratelimiter_allow(rl, 4, (const uint8_t[]){11, 0, 0, 1}, later) == 1);
    CHECK(wgf_ratelimiter_count(rl) == 2);
    /* The survivor kept its bucket through the rebuild: its burst is spent. */
    int allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += wgf_ratelimiter_allow(rl, 4, (const uint8_t[]){10, 0, 0, 5}, later);
    CHECK(allowed < WGF_RATELIMIT_PACKETS_BURSTABLE);
    free(rl);
}

WGF_TEST(ratelimiter_by_port_and_allowing_when_full)
{
    struct wgf_ratelimiter *rl = malloc(sizeof(*rl));
    CHECK(rl != NULL);
    if (rl == NULL)
        return;
    wgf_ratelimiter_init(rl, 1);
    const uint8_t a[4] = {192, 0, 2, 1};
    uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8};
    uint64_t t = SEC;
    int p1 = 0, p2 = 0, six = 0, six_other = 0;
    for (int i = 0; i < 10; i++) {
        p1 += wgf_ratelimiter_allow_port(rl, 4, a, 51820, t);
        p2 += wgf_ratelimiter_allow_port(rl, 4, a, 51821, t); /* the same address, another port */
        six += wgf_ratelimiter_allow_port(rl, 6, v6, 1, t);
        six_other += wgf_ratelimiter_allow_port(rl, 6, v6, 2, t);
    }
    CHECK(p1 == WGF_RATELIMIT_PACKETS_BURSTABLE && p2 == WGF_RATELIMIT_PACKETS_BURSTABLE);
    CHECK(six == WGF_RATELIMIT_PACKETS_BURSTABLE && six_other == WGF_RATELIMIT_PACKETS_BURSTABLE);
    /* Full: a new source is let through (unlimited), not refused. */
    for (uint32_t i = 0; wgf_ratelimiter_count(rl) < WGF_RATELIMIT_MAX_ENTRIES; i++)
        wgf_ratelimiter_allow_port(rl, 4, (const uint8_t[]){10, 0, (uint8_t)(i >> 8), (uint8_t)i},
                                   (uint16_t)(i >> 16), t);
    int allowed = 0;
    for (int i = 0; i < 10; i++)
        allowed += wgf_ratelimiter_allow_port(rl, 4, (const uint8_t[]){11, 0, 0, 1}, 9, t);
    CHECK(allowed == 10);
    CHECK(wgf_ratelimiter_count(rl) == WGF_RATELIMIT_MAX_ENTRIES);
    free(rl);
}
