/* Peers: the id -> peer hash, each peer's previous/current/next keypairs, its staged packets, and
 * the control calls that change them. Everything here runs under dp->lock. */
#define _GNU_SOURCE /* sendmmsg, recvmmsg */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
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

static void keypair_retire(struct wgf_dp *dp, struct wgf_dp_peer *p, uint8_t slot)
{
    if (slot == WGF_DP_SLOT_NONE || !p->slots[slot].live)
        return;
    wgf_index_table_remove(dp->index, p->slots[slot].local_index);
    wgf_memzero(&p->slots[slot], sizeof(p->slots[slot]));
}

static void keypairs_retire_all(struct wgf_dp *dp, struct wgf_dp_peer *p)
{
    for (uint8_t s = 0; s < WGF_DP_KEYPAIR_SLOTS; s++)
        keypair_retire(dp, p, s);
    p->previous = p->current = p->next = WGF_DP_SLOT_NONE;
}

static void pool_put(struct wgf_dp *dp, uint8_t *buf)
{
    dp->pool[dp->pool_free++] = buf;
}

/* Returns the oldest staged packet's buffer to the pool; the packet is dropped. */
static void staged_drop_oldest(struct wgf_dp *dp, struct wgf_dp_peer *p)
{
    pool_put(dp, p->staged[p->staged_head]);
    p->staged[p->staged_head] = NULL;
    p->staged_head = (p->staged_head + 1) % WGF_DP_STAGED_MAX;
    p->staged_count--;
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
    if (p->staged_count == WGF_DP_STAGED_MAX) {
        staged_drop_oldest(dp, p);
        WGF_DP_DROP(dp, WGF_DROP_STAGED_OVERFLOW, 1);
    }
    if (dp->pool_free == 0) {
        if (p->staged_count == 0) { /* other peers hold the whole pool: drop this packet */
            WGF_DP_DROP(dp, WGF_DROP_STAGED_OVERFLOW, 1);
            return;
        }
        staged_drop_oldest(dp, p);
        WGF_DP_DROP(dp, WGF_DROP_STAGED_OVERFLOW, 1);
    }
    uint8_t *spare = dp->pool[--dp->pool_free];
    uint32_t tail = (p->staged_head + p->staged_count) % WGF_DP_STAGED_MAX;
    p->staged[tail] = *buf;
    p->staged_len[tail] = (uint16_t)len;
    p->staged_count++;
    *buf = spare;
    WGF_DP_STAT_ADD(dp, staged, 1);
}

struct wgf_dp_keypair_slot *wgf_dp_sending_keypair(const struct wgf_dp *dp, struct wgf_dp_peer *p,
                                                   uint64_t now)
{
    if (p->current == WGF_DP_SLOT_NONE)
        return NULL;
    struct wgf_dp_keypair_slot *kp = &p->slots[p->current];
    if (!kp->live || wgf_dp_age(now, kp->created_ns) >= dp->limits.reject_after_time_ns ||
        kp->send_counter >= WGF_REJECT_AFTER_MESSAGES)
        return NULL;
    return kp;
}

void wgf_dp_want_handshake(struct wgf_dp *dp, struct wgf_dp_peer *p)
{
    if (p->handshake_wanted)
        return;
    if (wgf_dp_queue_push(dp, WGF_DP_MSG_NEED_HANDSHAKE, p->id, NULL, 0, NULL) == 0)
        p->handshake_wanted = true;
}

bool wgf_dp_promote_next(struct wgf_dp *dp, struct wgf_dp_peer *p)
{
    keypair_retire(dp, p, p->previous);
    p->previous = p->current;
    p->current = p->next;
    p->next = WGF_DP_SLOT_NONE;
    wgf_dp_queue_push(dp, WGF_DP_MSG_KEYPAIR_CONFIRMED, p->id, NULL, 0, NULL);
    if (p->staged_count == 0)
        return false;
    p->flush_pending = true;
    __atomic_store_n(&dp->work_pending, 1, __ATOMIC_RELEASE);
    return true;
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
        keypairs_retire_all(dp, p);
        staged_drop_all(dp, p);
        wgf_memzero(p, sizeof(*p));
        free(p);
    }
    free(dp->peers);
    dp->peers = NULL;
    dp->peer_cap = dp->peer_count = 0;
}

/* ---- control calls ---- */

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
    pthread_mutex_lock(&dp->lock);
    struct wgf_dp_peer *p = wgf_dp_peer_find(dp, id);
    if (p == NULL) {
        pthread_mutex_unlock(&dp->lock);
        return -ENOENT;
    }
    table_remove(dp, p);
    keypairs_retire_all(dp, p);
    WGF_DP_DROP(dp, WGF_DROP_STAGED_DISCARDED, staged_drop_all(dp, p));
    pthread_mutex_unlock(&dp->lock);
    wgf_allowedips_remove_by_peer(dp->allowedips, id);
    wgf_memzero(p, sizeof(*p));
    free(p);
    return 0;
}

int wgf_dp_peer_set_endpoint(struct wgf_dp *dp, uint32_t id, const union wgf_dp_endpoint *ep)
{
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
    bool kick = false;
    pthread_mutex_lock(&dp->lock);
    struct wgf_dp_peer *p = wgf_dp_peer_find(dp, id);
    if (p != NULL) {
        p->endpoint = copy;
        if (p->staged_count > 0) /* packets may have waited for an endpoint, not a keypair */
            p->flush_pending = kick = true;
    }
    pthread_mutex_unlock(&dp->lock);
    if (p == NULL)
        return -ENOENT;
    /* Wake the loop only when there is something to flush: each wake-up walks the whole peer
     * table, so kicking for every endpoint of a 10,000-peer setconf made it quadratic. */
    if (kick)
        wgf_dp_kick(dp);
    return 0;
}

int wgf_dp_peer_get_endpoint(struct wgf_dp *dp, uint32_t id, union wgf_dp_endpoint *ep)
{
    pthread_mutex_lock(&dp->lock);
    struct wgf_dp_peer *p = wgf_dp_peer_find(dp, id);
    if (p != NULL)
        *ep = p->endpoint;
    pthread_mutex_unlock(&dp->lock);
    return p ? 0 : -ENOENT;
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
    struct wgf_index_entry taken;
    pthread_mutex_lock(&dp->lock);
    struct wgf_dp_peer *p = wgf_dp_peer_find(dp, id);
    if (p == NULL || wgf_index_table_lookup(dp->index, kp->local_index, &taken) == 0) {
        pthread_mutex_unlock(&dp->lock);
        return p == NULL ? -ENOENT : -EEXIST;
    }
    /* Retire first: the slot of a retired keypair is where the new one goes. The rotation
     * mirrors wgfast/protocol/keypair.py's Keypairs.add (and the kernel's noise.c). */
    if (kp->is_initiator) {
        if (p->next != WGF_DP_SLOT_NONE) {
            keypair_retire(dp, p, p->previous);
            keypair_retire(dp, p, p->current);
            p->previous = p->next;
            p->next = WGF_DP_SLOT_NONE;
        } else {
            keypair_retire(dp, p, p->previous);
            p->previous = p->current;
        }
        p->current = WGF_DP_SLOT_NONE;
    } else {
        keypair_retire(dp, p, p->next);
        p->next = WGF_DP_SLOT_NONE;
    }
    uint8_t s = free_slot(p); /* at most two slots are live now */
    int err = wgf_index_table_insert(dp->index, kp->local_index, id, s);
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
        p->handshake_wanted = false;
        if (kp->is_initiator && p->staged_count > 0)
            p->flush_pending = true;
    }
    bool kick = p->flush_pending;
    pthread_mutex_unlock(&dp->lock);
    if (kick)
        wgf_dp_kick(dp);
    return err;
}

int wgf_dp_peer_expire_keypairs(struct wgf_dp *dp, uint32_t id)
{
    pthread_mutex_lock(&dp->lock);
    struct wgf_dp_peer *p = wgf_dp_peer_find(dp, id);
    if (p != NULL)
        keypairs_retire_all(dp, p);
    pthread_mutex_unlock(&dp->lock);
    return p ? 0 : -ENOENT;
}

int wgf_dp_peer_send_keepalive(struct wgf_dp *dp, uint32_t id)
{
    pthread_mutex_lock(&dp->lock);
    struct wgf_dp_peer *p = wgf_dp_peer_find(dp, id);
    if (p != NULL)
        p->keepalive_pending = true;
    pthread_mutex_unlock(&dp->lock);
    if (p == NULL)
        return -ENOENT;
    wgf_dp_kick(dp);
    return 0;
}

int wgf_dp_peer_drop_staged(struct wgf_dp *dp, uint32_t id)
{
    int n = -ENOENT;
    pthread_mutex_lock(&dp->lock);
    struct wgf_dp_peer *p = wgf_dp_peer_find(dp, id);
    if (p != NULL) {
        n = (int)staged_drop_all(dp, p);
        p->handshake_wanted = false;
        p->flush_pending = false;
        WGF_DP_DROP(dp, WGF_DROP_STAGED_DISCARDED, n);
    }
    pthread_mutex_unlock(&dp->lock);
    return n;
}

int wgf_dp_peer_get_info(struct wgf_dp *dp, uint32_t id, struct wgf_dp_peer_info *info)
{
    memset(info, 0, sizeof(*info));
    uint64_t now = wgf_dp_now_ns();
    pthread_mutex_lock(&dp->lock);
    struct wgf_dp_peer *p = wgf_dp_peer_find(dp, id);
    if (p != NULL) {
        info->endpoint = p->endpoint;
        info->rx_bytes = p->rx_bytes;
        info->tx_bytes = p->tx_bytes;
        info->rx_packets = p->rx_packets;
        info->tx_packets = p->tx_packets;
        info->last_sent_ns = p->last_sent_ns;
        info->last_received_ns = p->last_received_ns;
        info->last_data_received_ns = p->last_data_received_ns;
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
    }
    pthread_mutex_unlock(&dp->lock);
    return p ? 0 : -ENOENT;
}
