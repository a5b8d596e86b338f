/* The bounded queue of messages up to Python: handshake datagrams and per-peer events.
 *
 * Its eventfd is kept readable exactly while the queue is non-empty: the push that makes the
 * queue non-empty writes it and the pop that empties it reads it, both under queue_lock, so a
 * poller can never consume a wake-up that belongs to a message it has not popped. */
#define _GNU_SOURCE /* sendmmsg, recvmmsg */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "dataplane_internal.h"

/* Slots only the data plane's own events (need handshake, keypair confirmed) may take. Handshake
 * datagrams are attacker-supplied: a flood of them must not crowd out the events that keep real
 * sessions alive. Events are deduplicated per peer (at most one of each kind outstanding), so
 * the reserve covers this many peers changing state at once while the queue is flooded. */
#define WGF_DP_CONTROL_EVENT_RESERVE (WGF_DP_CONTROL_QUEUE / 4)

int wgf_dp_queue_push(struct wgf_dp *dp, uint32_t kind, uint32_t peer, const uint8_t *data,
                      size_t len, const union wgf_dp_endpoint *source)
{
    if (len > WGF_DP_MSG_MAX)
        return -1;
    pthread_mutex_lock(&dp->queue_lock);
    size_t limit = kind == WGF_DP_MSG_HANDSHAKE
                       ? WGF_DP_CONTROL_QUEUE - WGF_DP_CONTROL_EVENT_RESERVE
                       : WGF_DP_CONTROL_QUEUE;
    if (dp->queue_count >= limit) {
        pthread_mutex_unlock(&dp->queue_lock);
        WGF_DP_DROP(dp, WGF_DROP_CONTROL_QUEUE_FULL, 1);
        return -1;
    }
    struct wgf_dp_msg *m = &dp->queue[(dp->queue_head + dp->queue_count) % WGF_DP_CONTROL_QUEUE];
    m->kind = kind;
    m->peer = peer;
    m->len = (uint32_t)len;
    if (len > 0)
        memcpy(m->data, data, len);
    if (source != NULL)
        m->source = *source;
    else
        memset(&m->source, 0, sizeof(m->source)); /* AF_UNSPEC */
    if (dp->queue_count++ == 0) {
        uint64_t one = 1;
        ssize_t r = write(dp->event_fd, &one, sizeof(one));
        (void)r; /* cannot fail short of 2^64 - 1 unread writes */
    }
    pthread_mutex_unlock(&dp->queue_lock);
    if (kind != WGF_DP_MSG_HANDSHAKE)
        WGF_DP_STAT_ADD(dp, events_up, 1);
    return 0;
}

size_t wgf_dp_poll(struct wgf_dp *dp, struct wgf_dp_msg *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&dp->queue_lock);
    while (n < max && dp->queue_count > 0) {
        out[n++] = dp->queue[dp->queue_head];
        dp->queue_head = (dp->queue_head + 1) % WGF_DP_CONTROL_QUEUE;
        if (--dp->queue_count == 0) {
            uint64_t v;
            ssize_t r = read(dp->event_fd, &v, sizeof(v));
            (void)r;
        }
    }
    pthread_mutex_unlock(&dp->queue_lock);
    return n;
}

int wgf_dp_event_fd(struct wgf_dp *dp)
{
    return dp->event_fd;
}
