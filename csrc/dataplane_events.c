/* What Python hears from the data plane, through one eventfd:
 *
 *   handshake datagrams  a bounded queue (the data plane's other queue users never wait for
 *                        Python: a full queue drops the datagram, counted);
 *   peer events          bits per peer (enum wgf_dp_event_bits) with the state they concern,
 *                        coalesced until taken: a peer is on the list of peers with events at
 *                        most once, linked through itself, so no event waits for room and none
 *                        is lost. Activity alone is reported when its report falls due (the
 *                        timers it feeds count in seconds; a bulk transfer must not wake Python
 *                        once per batch), anything else at once.
 *
 * The eventfd is written once per wake-up: `signalled` says it was, and wgf_dp_events_ack, which
 * a reader calls before taking, clears both. */
#define _GNU_SOURCE /* struct mmsghdr in dataplane_internal.h */
#include <errno.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "dataplane_internal.h"

void wgf_dp_signal(struct wgf_dp *dp)
{
    if (__atomic_exchange_n(&dp->signalled, 1, __ATOMIC_ACQ_REL))
        return;
    uint64_t one = 1;
    ssize_t r = write(dp->event_fd, &one, sizeof(one));
    (void)r; /* cannot fail short of 2^64 - 1 unread writes */
    WGF_DP_STAT_ADD(dp, event_signals, 1);
}

void wgf_dp_events_ack(struct wgf_dp *dp)
{
    /* First empty the fd, then allow the next write: the other order could leave `signalled`
     * set with nothing to read, and no event would ever wake the reader again. */
    uint64_t v;
    ssize_t r = read(dp->event_fd, &v, sizeof(v));
    (void)r; /* EAGAIN: nothing to clear */
    __atomic_store_n(&dp->signalled, 0, __ATOMIC_RELEASE);
}

int wgf_dp_event_fd(struct wgf_dp *dp)
{
    return dp->event_fd;
}

/* ---- handshake datagrams ---- */

int wgf_dp_queue_handshake(struct wgf_dp *dp, const uint8_t *data, size_t len,
                           const union wgf_dp_endpoint *source, const struct wgf_dp_source *local)
{
    if (len > WGF_DP_MSG_MAX)
        return -1;
    pthread_mutex_lock(&dp->queue_lock);
    if (dp->queue_count == WGF_DP_HANDSHAKE_QUEUE) {
        pthread_mutex_unlock(&dp->queue_lock);
        WGF_DP_DROP(dp, WGF_DROP_CONTROL_QUEUE_FULL, 1);
        return -1;
    }
    struct wgf_dp_handshake_msg *m =
        &dp->queue[(dp->queue_head + dp->queue_count) % WGF_DP_HANDSHAKE_QUEUE];
    m->len = (uint32_t)len;
    memcpy(m->data, data, len);
    m->source = *source;
    m->local = *local;
    dp->queue_count++;
    pthread_mutex_unlock(&dp->queue_lock);
    WGF_DP_STAT_ADD(dp, handshake_messages_up, 1);
    wgf_dp_signal(dp);
    return 0;
}

size_t wgf_dp_take_handshakes(struct wgf_dp *dp, struct wgf_dp_handshake_msg *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&dp->queue_lock);
    while (n < max && dp->queue_count > 0) {
        out[n++] = dp->queue[dp->queue_head];
        dp->queue_head = (dp->queue_head + 1) % WGF_DP_HANDSHAKE_QUEUE;
        dp->queue_count--;
    }
    bool left = dp->queue_count > 0;
    pthread_mutex_unlock(&dp->queue_lock);
    if (left) /* what the reader left behind keeps the fd readable */
        wgf_dp_signal(dp);
    return n;
}

/* ---- peer events ---- */

void wgf_dp_peer_event(struct wgf_dp *dp, struct wgf_dp_peer *p, uint32_t events, uint64_t now)
{
    uint32_t fresh = events & ~p->events;
    p->events |= events;
    if (!p->listed) {
        p->listed = true;
        p->ev_next = NULL;
        p->ev_prev = dp->ev_tail;
        if (dp->ev_tail != NULL)
            dp->ev_tail->ev_next = p;
        else
            dp->ev_head = p;
        dp->ev_tail = p;
    }
    if (fresh)
        WGF_DP_STAT_ADD(dp, events_up, 1);
    if (fresh & ~(uint32_t)WGF_DP_EV_ACTIVITY) {
        __atomic_store_n(&dp->signal_due, 1, __ATOMIC_RELAXED);
    } else if (dp->report_due_ns == 0 && (events & WGF_DP_EV_ACTIVITY)) {
        dp->report_due_ns = now + dp->limits.activity_report_ns;
        __atomic_store_n(&dp->timer_stale, 1, __ATOMIC_RELAXED);
    }
}

void wgf_dp_peer_unlist(struct wgf_dp *dp, struct wgf_dp_peer *p)
{
    if (!p->listed)
        return;
    if (p->ev_prev != NULL)
        p->ev_prev->ev_next = p->ev_next;
    else
        dp->ev_head = p->ev_next;
    if (p->ev_next != NULL)
        p->ev_next->ev_prev = p->ev_prev;
    else
        dp->ev_tail = p->ev_prev;
    p->listed = false;
    p->ev_prev = p->ev_next = NULL;
}

size_t wgf_dp_take_peer_events(struct wgf_dp *dp, struct wgf_dp_peer_event *out, size_t max)
{
    size_t n = 0;
    pthread_mutex_lock(&dp->lock);
    while (n < max && dp->ev_head != NULL) {
        struct wgf_dp_peer *p = dp->ev_head;
        struct wgf_dp_peer_event *e = &out[n++];
        memset(e, 0, sizeof(*e));
        e->peer = p->id;
        e->events = p->events;
        e->confirmed_index = p->confirmed_index;
        e->retired_index = p->retired_index;
        e->staged_dropped = p->staged_dropped;
        e->confirmed_ns = p->confirmed_ns;
        e->endpoint = p->endpoint;
        e->activity = p->activity;
        p->events = 0;
        p->staged_dropped = 0;
        wgf_dp_peer_unlist(dp, p);
    }
    bool left = dp->ev_head != NULL;
    if (!left)
        dp->report_due_ns = 0; /* everything was reported; a stale timer finds nothing due */
    pthread_mutex_unlock(&dp->lock);
    if (left) /* what the reader left behind keeps the fd readable */
        wgf_dp_signal(dp);
    return n;
}

/* ---- after the lock ---- */

/* The earliest of the timers' deadlines, or 0 for none. Under dp->lock. */
static uint64_t next_deadline(const struct wgf_dp *dp)
{
    uint64_t a = dp->report_due_ns, b = dp->next_zero_at_ns;
    if (a == 0 || (b != 0 && b < a))
        return b;
    return a;
}

void wgf_dp_flush_signals(struct wgf_dp *dp)
{
    /* The common case, every batch of a bulk transfer: nothing to do, and no lock taken. */
    if (!__atomic_load_n(&dp->signal_due, __ATOMIC_RELAXED) &&
        !__atomic_load_n(&dp->timer_stale, __ATOMIC_RELAXED))
        return;
    pthread_mutex_lock(&dp->lock);
    bool signal = __atomic_exchange_n(&dp->signal_due, 0, __ATOMIC_RELAXED);
    bool rearm = __atomic_exchange_n(&dp->timer_stale, 0, __ATOMIC_RELAXED);
    uint64_t deadline = rearm ? next_deadline(dp) : 0;
    pthread_mutex_unlock(&dp->lock);
    if (signal)
        wgf_dp_signal(dp);
    /* With a test's clock the deadlines are not CLOCK_MONOTONIC: the test runs the timers. */
    if (rearm && dp->clock == NULL) {
        struct itimerspec when = {0};
        if (deadline != 0) { /* absolute; never 0, which would disarm */
            when.it_value.tv_sec = (time_t)(deadline / WGF_NSEC_PER_SEC);
            when.it_value.tv_nsec = (long)(deadline % WGF_NSEC_PER_SEC);
        }
        timerfd_settime(dp->timer_fd, TFD_TIMER_ABSTIME, &when, NULL);
    }
}
