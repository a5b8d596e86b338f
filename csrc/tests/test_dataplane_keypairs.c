/* The rules of transport keypairs, which live in the data plane alone: receiver indices,
 * rotation (previous/current/next), confirmation by data, the rekey decisions on send and on
 * receive, the age and message limits, and zeroing on schedule. On fake clocks (dp_pair.h), so
 * ages are exact and nothing depends on the machine's uptime. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "../dataplane_internal.h"
#include "check.h"
#include "dp_pair.h"

#define PEER_ID 5
#define MTU 1420
#define SEC WGF_NSEC_PER_SEC
#define T0 (1000 * SEC)

static void pair_open(struct dp_side *a, struct dp_side *b)
{
    dp_pair_open(a, b, PEER_ID, MTU, T0);
}

static void set_time(struct dp_side *a, struct dp_side *b, uint64_t t)
{
    a->now = b->now = t;
}

/* The local indices of p's previous, current and next keypairs (0 where a slot names none). */
static void slots_of(struct dp_side *s, uint32_t out[3])
{
    pthread_mutex_lock(&s->dp->lock);
    struct wgf_dp_peer *p = wgf_dp_peer_find(s->dp, PEER_ID);
    const uint8_t names[3] = {p->previous, p->current, p->next};
    for (int i = 0; i < 3; i++)
        out[i] = names[i] == WGF_DP_SLOT_NONE ? 0 : p->slots[names[i]].local_index;
    pthread_mutex_unlock(&s->dp->lock);
}

static uint32_t current_index(struct dp_side *s)
{
    uint32_t slots[3];
    slots_of(s, slots);
    return slots[1];
}

/* Sends one data packet A -> B and says whether B wrote it to its TUN. */
static int a_to_b(struct dp_side *a, struct dp_side *b)
{
    uint8_t pkt[100], got[200];
    dp_make_ip4(pkt, "10.0.0.1", "10.0.0.2", 100, 5);
    CHECK(write(a->tun[1], pkt, 100) == 100);
    dp_pump(a, b, 2);
    return dp_tun_read(b, got, sizeof(got)) == 100;
}

static uint32_t events_of(struct dp_side *s)
{
    struct wgf_dp_peer_event ev[2];
    size_t n = dp_events(s, ev, 2);
    return n == 1 ? ev[0].events : 0;
}

WGF_TEST(keypairs_indices_come_from_the_data_plane_and_stay_unique)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    struct wgf_index_table *idx = wgf_dp_index_table(a.dp);
    uint32_t first, second;
    CHECK(wgf_dp_peer_begin_handshake(a.dp, PEER_ID, &first) == 0);
    struct wgf_index_entry e;
    CHECK(wgf_index_table_lookup(idx, first, &e) == 0);
    CHECK(e.peer == PEER_ID && e.keypair == WGF_DP_INDEX_HANDSHAKE);
    /* A new handshake replaces the one in flight: its index is freed. */
    CHECK(wgf_dp_peer_begin_handshake(a.dp, PEER_ID, &second) == 0);
    CHECK(wgf_index_table_lookup(idx, first, &e) == -ENOENT);
    CHECK(wgf_index_table_count(idx) == 1);
    /* A keypair must come from the handshake in flight. */
    struct wgf_dp_keypair kp = {.local_index = first, .remote_index = 1, .is_initiator = 1,
                                .created_ns = T0};
    CHECK(wgf_dp_peer_install_keypair(a.dp, PEER_ID, &kp) == -ESTALE);
    kp.local_index = second;
    CHECK(wgf_dp_peer_install_keypair(a.dp, PEER_ID, &kp) == 0);
    CHECK(wgf_index_table_lookup(idx, second, &e) == 0 && e.keypair < WGF_DP_KEYPAIR_SLOTS);
    CHECK(wgf_dp_peer_install_keypair(a.dp, PEER_ID, &kp) == -ESTALE); /* used up */
    CHECK(wgf_dp_peer_end_handshake(a.dp, PEER_ID) == 0); /* none in flight: nothing */
    CHECK(wgf_index_table_count(idx) == 1);
    /* Abandoned handshakes free theirs; many peers' indices never collide. */
    for (uint32_t id = 100; id < 1100; id++) {
        uint32_t index;
        CHECK(wgf_dp_peer_add(a.dp, id) == 0);
        CHECK(wgf_dp_peer_begin_handshake(a.dp, id, &index) == 0);
    }
    CHECK(wgf_index_table_count(idx) == 1001);
    for (uint32_t id = 100; id < 1100; id += 2)
        CHECK(wgf_dp_peer_end_handshake(a.dp, id) == 0);
    for (uint32_t id = 101; id < 1100; id += 2)
        CHECK(wgf_dp_peer_remove(a.dp, id) == 0);
    CHECK(wgf_index_table_count(idx) == 1);
    dp_pair_close(&a, &b);
}

WGF_TEST(keypairs_initiator_keypair_is_current_at_once)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    uint32_t s[3], k[3];
    for (int i = 0; i < 3; i++) {
        CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, (uint8_t)(0x10 + i)) == 0);
        k[i] = current_index(&a);
        CHECK(a_to_b(&a, &b)); /* each generation carries data */
    }
    slots_of(&a, s);
    CHECK(s[0] == k[1] && s[1] == k[2] && s[2] == 0);
    /* The first was retired: zeroed, its index gone, and Python told. */
    struct wgf_index_entry e;
    CHECK(wgf_index_table_lookup(wgf_dp_index_table(a.dp), k[0], &e) == -ENOENT);
    struct wgf_dp_peer_event ev[2];
    CHECK(dp_events(&a, ev, 2) == 1 && (ev[0].events & WGF_DP_EV_KEYPAIR_RETIRED));
    CHECK(ev[0].retired_index == k[0]);
    pthread_mutex_lock(&a.dp->lock);
    struct wgf_dp_peer *p = wgf_dp_peer_find(a.dp, PEER_ID);
    static const uint8_t zero[sizeof(struct wgf_dp_keypair_slot)];
    int zeroed = 0;
    for (int i = 0; i < WGF_DP_KEYPAIR_SLOTS; i++)
        zeroed += memcmp(&p->slots[i], zero, sizeof(zero)) == 0;
    pthread_mutex_unlock(&a.dp->lock);
    CHECK(zeroed == 1);
    dp_pair_close(&a, &b);
}

WGF_TEST(keypairs_responder_keypair_waits_in_next_until_data)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0x21) == 0);
    CHECK(a_to_b(&a, &b)); /* confirms B's first keypair */
    uint32_t old = current_index(&b), s[3];
    events_of(&b);
    /* A second handshake: B's new keypair waits as next; B keeps sending with the old one. */
    uint32_t ia, ib;
    CHECK(wgf_dp_peer_begin_handshake(a.dp, PEER_ID, &ia) == 0);
    CHECK(wgf_dp_peer_begin_handshake(b.dp, PEER_ID, &ib) == 0);
    struct wgf_dp_keypair kr = {.local_index = ib, .remote_index = ia, .created_ns = T0};
    memset(kr.send_key, 0x33, 32);
    memset(kr.receive_key, 0x44, 32);
    CHECK(wgf_dp_peer_install_keypair(b.dp, PEER_ID, &kr) == 0);
    slots_of(&b, s);
    CHECK(s[0] == 0 && s[1] == old && s[2] == ib);
    /* Data under the old keypair does not promote it... */
    CHECK(a_to_b(&a, &b));
    slots_of(&b, s);
    CHECK(s[1] == old && s[2] == ib);
    CHECK(!(events_of(&b) & WGF_DP_EV_KEYPAIR_CONFIRMED));
    /* ...data under the new one does: previous <- current <- next. */
    struct wgf_dp_keypair ki = {.local_index = ia, .remote_index = ib, .is_initiator = 1,
                                .created_ns = T0};
    memset(ki.send_key, 0x44, 32);
    memset(ki.receive_key, 0x33, 32);
    CHECK(wgf_dp_peer_install_keypair(a.dp, PEER_ID, &ki) == 0);
    CHECK(a_to_b(&a, &b));
    slots_of(&b, s);
    CHECK(s[0] == old && s[1] == ib && s[2] == 0);
    struct wgf_dp_peer_event ev[2];
    CHECK(dp_events(&b, ev, 2) == 1 && (ev[0].events & WGF_DP_EV_KEYPAIR_CONFIRMED));
    CHECK(ev[0].confirmed_index == ib);
    dp_pair_close(&a, &b);
}

WGF_TEST(keypairs_unconfirmed_next_is_replaced_and_an_initiator_keypair_retires_current)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    CHECK(dp_handshake(&b, PEER_ID, &a, PEER_ID, T0, 0x31) == 0); /* B initiated: B current */
    uint32_t cur = current_index(&b), s[3], n1, n2, mine;
    struct wgf_dp_keypair kp = {.remote_index = 9, .created_ns = T0};
    CHECK(wgf_dp_peer_begin_handshake(b.dp, PEER_ID, &n1) == 0);
    kp.local_index = n1;
    CHECK(wgf_dp_peer_install_keypair(b.dp, PEER_ID, &kp) == 0);
    CHECK(wgf_dp_peer_begin_handshake(b.dp, PEER_ID, &n2) == 0);
    kp.local_index = n2;
    CHECK(wgf_dp_peer_install_keypair(b.dp, PEER_ID, &kp) == 0); /* n1 retired */
    slots_of(&b, s);
    CHECK(s[1] == cur && s[2] == n2);
    struct wgf_index_entry e;
    CHECK(wgf_index_table_lookup(wgf_dp_index_table(b.dp), n1, &e) == -ENOENT);
    /* An initiator keypair while next waits: next becomes previous, current is retired. */
    CHECK(wgf_dp_peer_begin_handshake(b.dp, PEER_ID, &mine) == 0);
    kp.local_index = mine;
    kp.is_initiator = 1;
    CHECK(wgf_dp_peer_install_keypair(b.dp, PEER_ID, &kp) == 0);
    slots_of(&b, s);
    CHECK(s[0] == n2 && s[1] == mine && s[2] == 0);
    CHECK(wgf_index_table_lookup(wgf_dp_index_table(b.dp), cur, &e) == -ENOENT);
    dp_pair_close(&a, &b);
}

WGF_TEST(keypairs_initiator_rekeys_on_send_after_rekey_after_time_responder_never)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0x41) == 0);
    set_time(&a, &b, T0 + WGF_REKEY_AFTER_TIME_NS); /* not older than it yet */
    CHECK(a_to_b(&a, &b));
    CHECK(!(events_of(&a) & WGF_DP_EV_HANDSHAKE_WANTED));
    set_time(&a, &b, T0 + WGF_REKEY_AFTER_TIME_NS + 1);
    CHECK(a_to_b(&a, &b)); /* still sends, and asks once */
    CHECK(events_of(&a) & WGF_DP_EV_HANDSHAKE_WANTED);
    CHECK(a_to_b(&a, &b));
    CHECK(!(events_of(&a) & WGF_DP_EV_HANDSHAKE_WANTED));
    /* The responder never rekeys on age alone, up to the reject limit. */
    uint8_t pkt[100], got[200];
    dp_make_ip4(pkt, "10.0.0.2", "10.0.0.1", 100, 1);
    events_of(&b);
    set_time(&a, &b, T0 + WGF_REJECT_AFTER_TIME_NS);
    CHECK(write(b.tun[1], pkt, 100) == 100);
    dp_pump(&a, &b, 2);
    CHECK(dp_tun_read(&a, got, sizeof(got)) == 100);
    CHECK(!(events_of(&b) & WGF_DP_EV_HANDSHAKE_WANTED));
    dp_pair_close(&a, &b);
}

WGF_TEST(keypairs_rekey_after_messages_either_side)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0x51) == 0);
    CHECK(a_to_b(&a, &b)); /* confirms B's */
    events_of(&a);
    events_of(&b);
    struct dp_side *sides[2] = {&a, &b};
    for (int i = 0; i < 2; i++) {
        struct dp_side *s = sides[i];
        pthread_mutex_lock(&s->dp->lock);
        struct wgf_dp_peer *p = wgf_dp_peer_find(s->dp, PEER_ID);
        p->slots[p->current].send_counter = WGF_REKEY_AFTER_MESSAGES - 1; /* one more may go */
        pthread_mutex_unlock(&s->dp->lock);
        CHECK(wgf_dp_peer_send_keepalive(s->dp, PEER_ID) == 0);
        dp_pump(&a, &b, 1);
        CHECK(!(events_of(s) & WGF_DP_EV_HANDSHAKE_WANTED)); /* at it, not over it */
        CHECK(wgf_dp_peer_send_keepalive(s->dp, PEER_ID) == 0);
        dp_pump(&a, &b, 1);
        CHECK(events_of(s) & WGF_DP_EV_HANDSHAKE_WANTED);
    }
    /* At REJECT_AFTER_MESSAGES nothing more is sealed: the packet waits for a new keypair. */
    pthread_mutex_lock(&a.dp->lock);
    struct wgf_dp_peer *p = wgf_dp_peer_find(a.dp, PEER_ID);
    p->slots[p->current].send_counter = WGF_REJECT_AFTER_MESSAGES;
    pthread_mutex_unlock(&a.dp->lock);
    CHECK(!a_to_b(&a, &b));
    struct wgf_dp_peer_info info;
    CHECK(wgf_dp_peer_get_info(a.dp, PEER_ID, &info) == 0 && info.staged == 1);
    dp_pair_close(&a, &b);
}

WGF_TEST(keypairs_reject_after_time_for_sending_and_receiving)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0x61) == 0);
    set_time(&a, &b, T0 + WGF_REJECT_AFTER_TIME_NS);
    CHECK(a_to_b(&a, &b)); /* exactly REJECT_AFTER_TIME old: still valid */
    set_time(&a, &b, T0 + WGF_REJECT_AFTER_TIME_NS + 1);
    CHECK(!a_to_b(&a, &b)); /* older: nothing sealed, the packet waits */
    struct wgf_dp_peer_info info;
    CHECK(wgf_dp_peer_get_info(a.dp, PEER_ID, &info) == 0 && info.staged == 1);
    /* And the receiver refuses what an old keypair sealed. */
    a.now = T0;
    CHECK(wgf_dp_peer_drop_staged(a.dp, PEER_ID) == 1);
    uint8_t pkt[100];
    dp_make_ip4(pkt, "10.0.0.1", "10.0.0.2", 100, 5);
    CHECK(write(a.tun[1], pkt, 100) == 100);
    dp_pump(&a, &b, 2);
    struct wgf_dp_stats st;
    wgf_dp_get_stats(b.dp, &st);
    CHECK(st.drops[WGF_DROP_KEYPAIR_EXPIRED] == 1);
    dp_pair_close(&a, &b);
}

WGF_TEST(keypairs_initiator_last_minute_rekey_on_receive_once)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0x71) == 0);
    CHECK(a_to_b(&a, &b)); /* B may send now */
    events_of(&a);
    uint64_t last_minute = WGF_REJECT_AFTER_TIME_NS - WGF_KEEPALIVE_TIMEOUT_NS -
                           WGF_REKEY_TIMEOUT_NS;
    uint64_t at[3] = {T0 + last_minute, T0 + last_minute + 1, T0 + last_minute + 6 * SEC};
    uint32_t wanted[3];
    for (int i = 0; i < 3; i++) {
        set_time(&a, &b, at[i]);
        CHECK(wgf_dp_peer_send_keepalive(b.dp, PEER_ID) == 0);
        dp_pump(&b, &a, 2);
        wanted[i] = events_of(&a) & WGF_DP_EV_HANDSHAKE_WANTED;
    }
    CHECK(!wanted[0] && wanted[1] && !wanted[2]);
    dp_pair_close(&a, &b);
}

WGF_TEST(keypairs_zeroed_three_reject_times_after_the_last_session)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0x81) == 0);
    CHECK(a_to_b(&a, &b));
    uint32_t index = current_index(&a);
    events_of(&a);
    uint64_t zero_at = T0 + 3 * WGF_REJECT_AFTER_TIME_NS;
    struct wgf_dp_peer_info info;
    CHECK(wgf_dp_peer_get_info(a.dp, PEER_ID, &info) == 0 && info.zero_at_ns == zero_at);
    a.now = zero_at - 1;
    wgf_dp_run_timers(a.dp);
    CHECK(wgf_dp_peer_get_info(a.dp, PEER_ID, &info) == 0 && info.keypairs_live == 1);
    a.now = zero_at;
    wgf_dp_run_timers(a.dp);
    CHECK(dp_signalled(&a));
    struct wgf_dp_peer_event ev[2];
    CHECK(dp_events(&a, ev, 2) == 1 && (ev[0].events & WGF_DP_EV_KEYS_ZEROED));
    CHECK(wgf_dp_peer_get_info(a.dp, PEER_ID, &info) == 0);
    CHECK(info.keypairs_live == 0 && !info.has_current && info.zero_at_ns == 0);
    struct wgf_index_entry e;
    CHECK(wgf_index_table_lookup(wgf_dp_index_table(a.dp), index, &e) == -ENOENT);
    pthread_mutex_lock(&a.dp->lock);
    struct wgf_dp_peer *p = wgf_dp_peer_find(a.dp, PEER_ID);
    static const uint8_t zero[sizeof(p->slots)];
    CHECK(memcmp(p->slots, zero, sizeof(zero)) == 0);
    pthread_mutex_unlock(&a.dp->lock);
    struct wgf_dp_stats st;
    wgf_dp_get_stats(a.dp, &st);
    CHECK(st.keypairs_zeroed == 1);
    /* A handshake that gave up schedules it too, unless it is scheduled already. */
    CHECK(wgf_dp_peer_expire_later(b.dp, PEER_ID) == 0);
    CHECK(wgf_dp_peer_get_info(b.dp, PEER_ID, &info) == 0 && info.zero_at_ns == zero_at);
    CHECK(wgf_dp_peer_expire_keypairs(b.dp, PEER_ID) == 0);
    b.now = T0 + 7 * SEC;
    CHECK(wgf_dp_peer_expire_later(b.dp, PEER_ID) == 0);
    CHECK(wgf_dp_peer_get_info(b.dp, PEER_ID, &info) == 0);
    CHECK(info.zero_at_ns == b.now + 3 * WGF_REJECT_AFTER_TIME_NS);
    dp_pair_close(&a, &b);
}

WGF_TEST(keypairs_expired_by_configuration_ask_for_a_handshake_at_once)
{
    struct dp_side a, b;
    pair_open(&a, &b);
    uint8_t pkt[100];
    dp_make_ip4(pkt, "10.0.0.1", "10.0.0.2", 100, 5);
    CHECK(write(a.tun[1], pkt, 100) == 100);
    dp_pump(&a, &b, 1);
    CHECK(events_of(&a) & WGF_DP_EV_HANDSHAKE_WANTED);
    CHECK(dp_handshake(&a, PEER_ID, &b, PEER_ID, T0, 0x91) == 0);
    dp_pump(&a, &b, 2);
    events_of(&a);
    CHECK(wgf_dp_peer_expire_keypairs(a.dp, PEER_ID) == 0);
    CHECK(events_of(&a) & WGF_DP_EV_KEYPAIR_RETIRED);
    CHECK(write(a.tun[1], pkt, 100) == 100);
    dp_pump(&a, &b, 1);
    CHECK(events_of(&a) & WGF_DP_EV_HANDSHAKE_WANTED);
    struct wgf_dp_peer_info info;
    CHECK(wgf_dp_peer_get_info(a.dp, PEER_ID, &info) == 0);
    CHECK(info.keypairs_live == 0 && info.staged == 1 && info.zero_at_ns == 0);
    dp_pair_close(&a, &b);
}
