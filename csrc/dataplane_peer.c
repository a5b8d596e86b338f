/* Peers: the id -> peer hash, each peer's previous/current/next keypairs, its receiver indices,
 * its staged packets, and the control calls that change them. Everything here runs under
 * dp->lock. */
#define _GNU_SOURCE /* sendmmsg, recvmmsg */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "dataplane_internal.h"

static size_t peer_hash(uint32_t id, size_t cap)
{
    return (size_t)(((uint64_t)id * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & (cap - 1);
}

struct wgf_dp_peer *wgf_dp_peer_find(struct wgf_dp *dp, uint32_t id)
{
    if (dp->peer_cap == 0)
        return NULL;
    size_t mask = dp->peer_cap - 1;
    for (size_t i = peer_hash(id, dp->peer_cap);; i = (i + 1) & mask) {
        struct wgf_dp_peer *p = dp->peers[i];
        if (p == NULL)
            return NULL;
        if (p->id == id)
            return p;
    }
}

static void table_place(struct wgf_dp_peer **table, size_t cap, struct wgf_dp_peer *p)
{
    size_t i = peer_hash(p->id, cap);
    while (table[i] != NULL)
        i = (i + 1) & (cap - 1);
    table[i] = p;
}

/* Keeps the load at most 1/2 so probes stay short. */
static int table_reserve(struct wgf_dp *dp)
{
    if ((dp->peer_count + 1) * 2 <= dp->peer_cap)
        return 0;
    size_t cap = dp->peer_cap ? dp->peer_cap * 2 : 16;
    struct wgf_dp_peer **table = calloc(cap, sizeof(*table));
    if (table == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < dp->peer_cap; i++)
        if (dp->peers[i] != NULL)
            table_place(table, cap, dp->peers[i]);
    free(dp->peers);
    dp->peers = table;
    dp->peer_cap = cap;
    return 0;
}

/* Backward-shift deletion: no tombstones, so lookups stay short. */
static void table_remove(struct wgf_dp *dp, struct wgf_dp_peer *p)
{
    size_t mask = dp->peer_cap - 1, i = peer_hash(p->id, dp->peer_cap);
    while (dp->peers[i] != p)
        i = (i + 1) & mask;
    dp->peers[i] = NULL;
    for (size_t j = (i + 1) & mask; dp->peers[j] != NULL; j = (j + 1) & mask) {
        size_t home = peer_hash(dp->peers[j]->id, dp->peer_cap);
        /* Move j back into the hole at i unless its home lies cyclically in (i, j]. */
        bool stays = (i <= j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            dp->peers[i] = dp->peers[j];
            dp->peers[j] = NULL;
            i = j;
        }
    }
    dp->peer_count--;
}

/* Zeroes a keypair and frees its index; Python hears of it unless the peer itself is going. */
static void keypair_retire(struct wgf_dp *dp, struct wgf_dp_peer *p, uint8_t slot, bool report)
{
    if (slot == WGF_DP_SLOT_NONE || !p->slots[slot].live)
        return;
    uint32_t index = p->slots[slot].local_index;
    wgf_index_table_remove(dp->index, index);
    wgf_memzero(&p->slots[slot], sizeof(p->slots[slot]));
    if (report) {
        p->retired_index = index;
        wgf_dp_peer_event(dp, p, WGF_DP_EV_KEYPAIR_RETIRED, 0);
    }
}

static void keypairs_retire_all(struct wgf_dp *dp, struct wgf_dp_peer *p, bool report)
{
    for (uint8_t s = 0; s < WGF_DP_KEYPAIR_SLOTS; s++)
        keypair_retire(dp, p, s, report);
    p->previous = p->current = p->next = WGF_DP_SLOT_NONE;
}

static void end_handshake(struct wgf_dp *dp, struct wgf_dp_peer *p)
{
    if (p->handshake_in_flight)
        wgf_index_table_remove(dp->index, p->handshake_index);
    p->handshake_in_flight = false;
    p->handshake_index = 0;
}

/* ---- staged packets ---- */

/* A peer that cannot start a handshake holds its staged packets in the stranded share. */
static bool can_handshake(const struct wgf_dp *dp, const struct wgf_dp_peer *p)
{
    return dp->identity && p->endpoint.sa.sa_family != AF_UNSPEC;
}

static void update_stranded(struct wgf_dp *dp, struct wgf_dp_peer *p)
{
    bool stranded = !can_handshake(dp, p);
    if (stranded == p->stranded)
        return;
    if (stranded)
        dp->stranded_staged += p->staged_count;
    else
        dp->stranded_staged -= p->staged_count;
    p->stranded = stranded;
}

void wgf_dp_peer_roamed(struct wgf_dp *dp, struct wgf_dp_peer *p, const union wgf_dp_endpoint *ep,
                        const struct wgf_dp_source *local, uint64_t now)
{
    /* The kernel's rule: the latest authenticated packet names both ends, so a source the peer
     * stopped talking to (an address that went away) is replaced by the one it talks to now. */
    if (memcmp(&p->source, local, sizeof(*local)) != 0)
        p->source = *local;
    if (memcmp(&p->endpoint, ep, sizeof(*ep)) == 0)
        return;
    p->endpoint = *ep;
    update_stranded(dp, p);
    wgf_dp_peer_event(dp, p, WGF_DP_EV_ENDPOINT_CHANGED, now);
}

uint8_t *wgf_dp_unstage(struct wgf_dp *dp, struct wgf_dp_peer *p, size_t *len)
{
    uint8_t *buf = p->staged[p->staged_head];
    *len = p->staged_len[p->staged_head];
    p->staged[p->staged_head] = NULL;
    p->staged_head = (p->staged_head + 1) % WGF_DP_STAGED_MAX;
    p->staged_count--;
    if (p->stranded)
        dp->stranded_staged--;
    return buf;
}

/* Returns the oldest staged packet's buffer to the pool; the packet is dropped. */
static void staged_drop_oldest(struct wgf_dp *dp, struct wgf_dp_peer *p)
{
    size_t len;
    dp->pool[dp->pool_free++] = wgf_dp_unstage(dp, p, &len);
}

static size_t staged_drop_all(struct wgf_dp *dp, struct wgf_dp_peer *p)
{
    size_t n = p->staged_count;
    while (p->staged_count > 0)
        staged_drop_oldest(dp, p);
    return n;
}

void wgf_dp_stage(struct wgf_dp *dp, struct wgf_dp_peer *p, uint8_t **buf, size_t len)
{
    /* Out of room (its own queue, the pool, or the stranded share): the peer's own oldest
     * packet makes way, or, holding none, the new one is dropped. */
    bool full = p->staged_count == WGF_DP_STAGED_MAX || dp->pool_free == 0 ||
                (p->stranded && dp->stranded_staged >= WGF_DP_STRANDED_MAX);
    if (full) {
        WGF_DP_DROP(dp, WGF_DROP_STAGED_OVERFLOW, 1);
        if (p->staged_count == 0)
            return;
        staged_drop_oldest(dp, p);
    }
    uint8_t *spare = dp->pool[--dp->pool_free];
    uint32_t tail = (p->staged_head + p->staged_count) % WGF_DP_STAGED_MAX;
    p->staged[tail] = *buf;
    p->staged_len[tail] = (uint16_t)len;
    p->staged_count++;
    if (p->stranded)
        dp->stranded_staged++;
    *buf = spare;
    WGF_DP_STAT_ADD(dp, staged, 1);
}

/* ---- keypairs ---- */

struct wgf_dp_keypair_slot *wgf_dp_sending_keypair(const struct wgf_dp *dp, struct wgf_dp_peer *p,
                                                   uint64_t now)
{
    if (p->current == WGF_DP_SLOT_NONE)
        return NULL;
    struct wgf_dp_keypair_slot *kp = &p->slots[p->current];
    if (!kp->live || wgf_dp_age(now, kp->created_ns) > dp->limits.reject_after_time_ns ||
        kp->send_counter >= WGF_REJECT_AFTER_MESSAGES)
        return NULL;
    return kp;
}

void wgf_dp_want_handshake(struct wgf_dp *dp, struct wgf_dp_peer *p)
{
    if (p->handshake_wanted)
        return;
    p->handshake_wanted = true;
    wgf_dp_peer_event(dp, p, WGF_DP_EV_HANDSHAKE_WANTED, 0);
}

bool wgf_dp_promote_next(struct wgf_dp *dp, struct wgf_dp_peer *p, uint64_t now)
{
    keypair_retire(dp, p, p->previous, true);
    p->previous = p->current;
    p->current = p->next;
    p->next = WGF_DP_SLOT_NONE;
    p->confirmed_index = p->slots[p->current].local_index;
    p->confirmed_ns = now;
    wgf_dp_peer_event(dp, p, WGF_DP_EV_KEYPAIR_CONFIRMED, now);
    if (p->staged_count == 0)
        return false;
    p->flush_pending = true;
    __atomic_store_n(&dp->work_pending, 1, __ATOMIC_RELEASE);
    return true;
}

uint64_t wgf_dp_peer_zero_due(struct wgf_dp *dp, struct wgf_dp_peer *p, uint64_t now)
{
    if (p->zero_at_ns == 0 || now < p->zero_at_ns)
        return p->zero_at_ns;
    for (uint8_t s = 0; s < WGF_DP_KEYPAIR_SLOTS; s++)
        WGF_DP_STAT_ADD(dp, keypairs_zeroed, p->slots[s].live);
    keypairs_retire_all(dp, p, true);
    p->zero_at_ns = 0;
    p->handshake_wanted = false; /* the next packet asks again */
    wgf_dp_peer_event(dp, p, WGF_DP_EV_KEYS_ZEROED, now);
    return 0;
}

/* Schedules p's zeroing for `when`, or earlier if it is due earlier. Under dp->lock. */
static void schedule_zeroing(struct wgf_dp *dp, struct wgf_dp_peer *p, uint64_t when)
{
    p->zero_at_ns = when;
    if (dp->next_zero_at_ns == 0 || when < dp->next_zero_at_ns) {
        dp->next_zero_at_ns = when;
        __atomic_store_n(&dp->timer_stale, 1, __ATOMIC_RELAXED);
    }
}

void wgf_dp_kick(struct wgf_dp *dp)
{
    __atomic_store_n(&dp->work_pending, 1, __ATOMIC_RELEASE);
    uint64_t one = 1;
    /* A full counter (EAGAIN) still wakes the loop; nothing else can fail here. */
    ssize_t r = write(dp->wake_fd, &one, sizeof(one));
    (void)r;
}

void wgf_dp_peers_free_all(struct wgf_dp *dp)
{
    for (size_t i = 0; i < dp->peer_cap; i++) {
        struct wgf_dp_peer *p = dp->peers[i];
        if (p == NULL)
            continue;
        keypairs_retire_all(dp, p, false);
        end_handshake(dp, p);
        staged_drop_all(dp, p);
        wgf_memzero(p, sizeof(*p));
        free(p);
    }
    free(dp->peers);
    dp->peers = NULL;
    dp->peer_cap = dp->peer_count = 0;
    dp->ev_head = dp->ev_tail = NULL;
}

/* ---- control calls ---- */

/* Looks p up under dp->lock, which it returns held; NULL (and the lock dropped) if absent. */
static struct wgf_dp_peer *lock_peer(struct wgf_dp *dp, uint32_t id)
{
    pthread_mutex_lock(&dp->lock);
    struct wgf_dp_peer *p = wgf_dp_peer_find(dp, id);
    if (p == NULL)
        pthread_mutex_unlock(&dp->lock);
    return p;
}

/* Drops the lock lock_peer took, then does what the call raised: signals, timer, a wake-up. */
static void unlock_peer(struct wgf_dp *dp, bool kick)
{
    pthread_mutex_unlock(&dp->lock);
    wgf_dp_flush_signals(dp);
    if (kick)
        wgf_dp_kick(dp);
}

int wgf_dp_peer_add(struct wgf_dp *dp, uint32_t id)
{
    if (id == WGF_NO_PEER)
        return -EINVAL;
    struct wgf_dp_peer *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return -ENOMEM;
    p->id = id;
    p->endpoint.sa.sa_family = AF_UNSPEC;
    p->previous = p->current = p->next = WGF_DP_SLOT_NONE;
    p->stranded = true; /* no endpoint yet */
    int err = 0;
    pthread_mutex_lock(&dp->lock);
    if (wgf_dp_peer_find(dp, id) != NULL)
        err = -EEXIST;
    else if ((err = table_reserve(dp)) == 0) {
        table_place(dp->peers, dp->peer_cap, p);
        dp->peer_count++;
    }
    pthread_mutex_unlock(&dp->lock);
    if (err)
        free(p);
    return err;
}

int wgf_dp_peer_remove(struct wgf_dp *dp, uint32_t id)
{
    struct wgf_dp_peer *p = lock_peer(dp, id);
    if (p == NULL)
        return -ENOENT;
    table_remove(dp, p);
    keypairs_retire_all(dp, p, false);
    end_handshake(dp, p);
    WGF_DP_DROP(dp, WGF_DROP_STAGED_DISCARDED, staged_drop_all(dp, p));
    wgf_dp_peer_unlist(dp, p); /* its events die with it */
    pthread_mutex_unlock(&dp->lock);
    wgf_allowedips_remove_by_peer(dp->allowedips, id);
    wgf_memzero(p, sizeof(*p));
    free(p);
    return 0;
}

void wgf_dp_peer_forget_source(struct wgf_dp *dp, uint32_t id, const struct wgf_dp_source *src)
{
    pthread_mutex_lock(&dp->lock);
    struct wgf_dp_peer *p = wgf_dp_peer_find(dp, id);
    if (p != NULL && memcmp(&p->source, src, sizeof(*src)) == 0)
        memset(&p->source, 0, sizeof(p->source));
    pthread_mutex_unlock(&dp->lock);
}

int wgf_dp_peer_get_source(struct wgf_dp *dp, uint32_t id, struct wgf_dp_source *src)
{
    struct wgf_dp_peer *p = lock_peer(dp, id);
    if (p == NULL)
        return -ENOENT;
    *src = p->source;
    pthread_mutex_unlock(&dp->lock);
    return 0;
}

int wgf_dp_peer_set_endpoint(struct wgf_dp *dp, uint32_t id, const union wgf_dp_endpoint *ep)
{
    return wgf_dp_peer_set_endpoint_from(dp, id, ep, NULL);
}

int wgf_dp_peer_set_endpoint_from(struct wgf_dp *dp, uint32_t id, const union wgf_dp_endpoint *ep,
                                  const struct wgf_dp_source *src)
{
    struct wgf_dp_source source;
    memset(&source, 0, sizeof(source));
    if (src != NULL && src->family == ep->sa.sa_family && src->family == AF_INET) {
        source.family = AF_INET;
        source.ifindex = src->ifindex;
        source.addr.in4 = src->addr.in4;
    } else if (src != NULL && src->family == ep->sa.sa_family && src->family == AF_INET6) {
        source.family = AF_INET6;
        source.ifindex = src->ifindex;
        source.addr.in6 = src->addr.in6;
    }
    union wgf_dp_endpoint copy;
    memset(&copy, 0, sizeof(copy));
    switch (ep->sa.sa_family) {
    case AF_INET:
        copy.in4 = ep->in4;
        break;
    case AF_INET6:
        copy.in6 = ep->in6;
        break;
    case AF_UNSPEC:
        copy.sa.sa_family = AF_UNSPEC;
        break;
    default:
        return -EAFNOSUPPORT;
    }
    struct wgf_dp_peer *p = lock_peer(dp, id);
    if (p == NULL)
        return -ENOENT;
    bool was_stranded = p->stranded;
    p->endpoint = copy;
    p->source = source;
    update_stranded(dp, p);
    /* Packets may have waited for an endpoint rather than a keypair: send them, or ask for the
     * handshake again if the request went nowhere (made while the peer was stranded). A peer
     * that was not stranded keeps its request: the handshake it asked for is in flight, and
     * asking again before its keypair lands would start a second one. Only wake the loop when
     * something waits: each wake-up walks the whole peer table, so kicking for every endpoint
     * of a 10,000-peer setconf made it quadratic. */
    bool kick = p->staged_count > 0;
    if (kick) {
        p->flush_pending = true;
        if (was_stranded)
            p->handshake_wanted = false;
    }
    unlock_peer(dp, kick);
    return 0;
}

int wgf_dp_peer_get_endpoint(struct wgf_dp *dp, uint32_t id, union wgf_dp_endpoint *ep)
{
    struct wgf_dp_peer *p = lock_peer(dp, id);
    if (p == NULL)
        return -ENOENT;
    *ep = p->endpoint;
    pthread_mutex_unlock(&dp->lock);
    return 0;
}

void wgf_dp_identity_changed(struct wgf_dp *dp)
{
    for (size_t i = 0; i < dp->peer_cap; i++)
        if (dp->peers[i] != NULL)
            update_stranded(dp, dp->peers[i]);
}

int wgf_dp_peer_begin_handshake(struct wgf_dp *dp, uint32_t id, uint32_t *index)
{
    struct wgf_dp_peer *p = lock_peer(dp, id);
    if (p == NULL)
        return -ENOENT;
    end_handshake(dp, p);
    int err;
    do { /* a random index, drawn again in the rare case it is taken */
        uint32_t candidate;
        if (getrandom(&candidate, sizeof(candidate), 0) != sizeof(candidate)) {
            err = -errno;
            break;
        }
        err = wgf_index_table_insert(dp->index, candidate, id, WGF_DP_INDEX_HANDSHAKE);
        if (err == 0) {
            p->handshake_in_flight = true;
            p->handshake_index = *index = candidate;
        }
    } while (err == -EEXIST);
    pthread_mutex_unlock(&dp->lock);
    return err;
}

int wgf_dp_peer_end_handshake(struct wgf_dp *dp, uint32_t id)
{
    struct wgf_dp_peer *p = lock_peer(dp, id);
    if (p == NULL)
        return -ENOENT;
    end_handshake(dp, p);
    pthread_mutex_unlock(&dp->lock);
    return 0;
}

static uint8_t free_slot(const struct wgf_dp_peer *p)
{
    for (uint8_t s = 0; s < WGF_DP_KEYPAIR_SLOTS; s++)
        if (!p->slots[s].live)
            return s;
    return WGF_DP_SLOT_NONE;
}

int wgf_dp_peer_install_keypair(struct wgf_dp *dp, uint32_t id, const struct wgf_dp_keypair *kp)
{
    struct wgf_dp_peer *p = lock_peer(dp, id);
    if (p == NULL)
        return -ENOENT;
    if (!p->handshake_in_flight || p->handshake_index != kp->local_index) {
        pthread_mutex_unlock(&dp->lock);
        return -ESTALE;
    }
    uint64_t now = wgf_dp_now(dp);
    /* Retire first: the slot of a retired keypair is where the new one goes. The rotation is
     * the kernel's (noise.c): an initiator's keypair is current at once; a responder's waits as
     * next until data under it arrives. */
    if (kp->is_initiator) {
        if (p->next != WGF_DP_SLOT_NONE) {
            keypair_retire(dp, p, p->previous, true);
            keypair_retire(dp, p, p->current, true);
            p->previous = p->next;
            p->next = WGF_DP_SLOT_NONE;
        } else {
            keypair_retire(dp, p, p->previous, true);
            p->previous = p->current;
        }
        p->current = WGF_DP_SLOT_NONE;
    } else {
        keypair_retire(dp, p, p->next, true);
        p->next = WGF_DP_SLOT_NONE;
    }
    uint8_t s = free_slot(p); /* at most two slots are live now */
    /* The handshake's index becomes the keypair's, in one step for readers. */
    int err = wgf_index_table_replace(dp->index, kp->local_index, id, s);
    if (err == 0) {
        struct wgf_dp_keypair_slot *slot = &p->slots[s];
        slot->live = true;
        slot->serial = ++dp->keypair_serial;
        slot->is_initiator = kp->is_initiator != 0;
        slot->local_index = kp->local_index;
        slot->remote_index = kp->remote_index;
        slot->created_ns = kp->created_ns;
        slot->send_counter = 0;
        memcpy(slot->send_key, kp->send_key, WGF_AEAD_KEY_LEN);
        memcpy(slot->receive_key, kp->receive_key, WGF_AEAD_KEY_LEN);
        wgf_replay_init(&slot->replay);
        if (kp->is_initiator)
            p->current = s;
        else
            p->next = s;
        p->handshake_in_flight = false;
        p->handshake_wanted = false;
        schedule_zeroing(dp, p, wgf_dp_zero_time(dp, now));
        if (kp->is_initiator && p->staged_count > 0)
            p->flush_pending = true;
    }
    unlock_peer(dp, p->flush_pending);
    return err;
}

int wgf_dp_peer_expire_keypairs(struct wgf_dp *dp, uint32_t id)
{
    struct wgf_dp_peer *p = lock_peer(dp, id);
    if (p == NULL)
        return -ENOENT;
    keypairs_retire_all(dp, p, true);
    p->zero_at_ns = 0;
    p->handshake_wanted = false; /* the next packet asks for a handshake at once */
    unlock_peer(dp, false);
    return 0;
}

int wgf_dp_peer_expire_later(struct wgf_dp *dp, uint32_t id)
{
    struct wgf_dp_peer *p = lock_peer(dp, id);
    if (p == NULL)
        return -ENOENT;
    if (p->zero_at_ns == 0)
        schedule_zeroing(dp, p, wgf_dp_zero_time(dp, wgf_dp_now(dp)));
    unlock_peer(dp, false);
    return 0;
}

int wgf_dp_peer_send_keepalive(struct wgf_dp *dp, uint32_t id)
{
    struct wgf_dp_peer *p = lock_peer(dp, id);
    if (p == NULL)
        return -ENOENT;
    p->keepalive_pending = true;
    unlock_peer(dp, true);
    return 0;
}

int wgf_dp_peer_confirm_session(struct wgf_dp *dp, uint32_t id)
{
    struct wgf_dp_peer *p = lock_peer(dp, id);
    if (p == NULL)
        return -ENOENT;
    /* Data under the new keypair confirms it as well as a keepalive would: the packets staged
     * during the handshake (going out now, or already gone when the loop was quicker than this
     * call) make the keepalive one message too many, which the kernel does not send. */
    bool sent = p->current != WGF_DP_SLOT_NONE && p->slots[p->current].send_counter > 0;
    if (!sent && p->staged_count == 0)
        p->keepalive_pending = true;
    else if (p->staged_count > 0)
        p->flush_pending = true;
    unlock_peer(dp, true);
    return 0;
}

int wgf_dp_peer_drop_staged(struct wgf_dp *dp, uint32_t id)
{
    struct wgf_dp_peer *p = lock_peer(dp, id);
    if (p == NULL)
        return -ENOENT;
    int n = (int)staged_drop_all(dp, p);
    p->handshake_wanted = false;
    p->flush_pending = false;
    WGF_DP_DROP(dp, WGF_DROP_STAGED_DISCARDED, n);
    if (n > 0) {
        p->staged_dropped += (uint32_t)n;
        wgf_dp_peer_event(dp, p, WGF_DP_EV_STAGED_DROPPED, 0);
    }
    unlock_peer(dp, false);
    return n;
}

int wgf_dp_peer_count_bytes(struct wgf_dp *dp, uint32_t id, uint64_t rx, uint64_t tx)
{
    struct wgf_dp_peer *p = lock_peer(dp, id);
    if (p == NULL)
        return -ENOENT;
    p->rx_bytes += rx;
    p->tx_bytes += tx;
    pthread_mutex_unlock(&dp->lock);
    return 0;
}

int wgf_dp_peer_get_info(struct wgf_dp *dp, uint32_t id, struct wgf_dp_peer_info *info)
{
    memset(info, 0, sizeof(*info));
    struct wgf_dp_peer *p = lock_peer(dp, id);
    if (p == NULL)
        return -ENOENT;
    uint64_t now = wgf_dp_now(dp);
    info->endpoint = p->endpoint;
    info->rx_bytes = p->rx_bytes;
    info->tx_bytes = p->tx_bytes;
    info->rx_packets = p->rx_packets;
    info->tx_packets = p->tx_packets;
    info->activity = p->activity;
    info->staged = p->staged_count;
    info->has_next = p->next != WGF_DP_SLOT_NONE;
    for (size_t s = 0; s < WGF_DP_KEYPAIR_SLOTS; s++)
        info->keypairs_live += p->slots[s].live;
    if (p->current != WGF_DP_SLOT_NONE) {
        const struct wgf_dp_keypair_slot *kp = &p->slots[p->current];
        info->has_current = 1;
        info->current_is_initiator = kp->is_initiator;
        info->current_age_ns = wgf_dp_age(now, kp->created_ns);
        info->current_send_counter = kp->send_counter;
    }
    info->handshake_in_flight = p->handshake_in_flight;
    info->zero_at_ns = p->zero_at_ns;
    pthread_mutex_unlock(&dp->lock);
    return 0;
}
