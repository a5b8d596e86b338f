/* The data plane's lifecycle and loops, plus statistics. wgf_dp_run splits the work over two
 * threads, one per direction: the caller's thread polls the TUN, the wake-up eventfd and the
 * timer fd (TUN -> UDP, the control calls' work: keepalives, staged flushes, and the timers), a
 * second thread it starts polls the UDP sockets (UDP -> TUN). Each side owns its buffers; peers
 * and keypairs stay behind dp->lock, which neither side holds while it seals, opens or makes a
 * system call. Only the send thread assigns counters and sends, so each peer's packets leave in
 * counter order. wgf_dp_run_once does both directions in one poll round on the calling thread.
 *
 * Reconfiguration (new sockets, a new MTU) pauses the loop threads at a round boundary: the
 * controller raises pause_requested and wakes both, each parks between rounds, the controller
 * swaps what they use, then lets them go. Nothing in a round is half done while they park. */
#define _GNU_SOURCE /* sendmmsg, recvmmsg */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "dataplane_internal.h"

static uint64_t monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * WGF_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
}

uint64_t wgf_dp_now(struct wgf_dp *dp)
{
    return dp->clock != NULL ? dp->clock(dp->clock_ctx) : monotonic_ns();
}

void wgf_dp_set_clock(struct wgf_dp *dp, wgf_dp_clock_fn fn, void *ctx)
{
    dp->clock = fn;
    dp->clock_ctx = ctx;
}

void wgf_dp_stat_max(uint64_t *field, uint64_t v)
{
    /* One thread writes each maximum (send: sendmmsg_max, receive: recvmmsg_max), so
     * load-compare-store is enough. */
    if (v > __atomic_load_n(field, __ATOMIC_RELAXED))
        __atomic_store_n(field, v, __ATOMIC_RELAXED);
}

static int set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

/* Each datagram's local address (sticky source) and TOS (ECN) come with it. */
static void enable_socket_reports(int udp4_fd, int udp6_fd)
{
    if (udp4_fd >= 0)
        wgf_dp_cmsg_enable(udp4_fd, AF_INET);
    if (udp6_fd >= 0)
        wgf_dp_cmsg_enable(udp6_fd, AF_INET6);
}

static size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* ---- buffers: sized by the MTU ---- */

struct buffers {
    size_t tx_buf_size, rx_buf_size;
    uint8_t *tx_mem, *rx_mem;
};

/* Every buffer is sized by the MTU in force, never by the largest one the data plane takes.
 * tx: header, the packet padded (never past round16(mtu)), tag; reading up to round16(mtu) + 16
 * bytes lets an oversized packet show itself. rx: a datagram from a peer whose MTU is larger
 * than ours is still accepted, up to WGF_DP_RX_MTU_FLOOR or our MTU, whichever is larger. The tx
 * block holds the batch, the staged pool and the keepalives' buffers; malloc maps a block this
 * large on its own, so the pool's pages cost memory only once packets are staged in them. */
static int buffers_alloc(struct buffers *b, unsigned mtu)
{
    unsigned rx_mtu = mtu > WGF_DP_RX_MTU_FLOOR ? mtu : WGF_DP_RX_MTU_FLOOR;
    b->tx_buf_size = WGF_DATA_HEADER_LEN + round16(mtu) + 2 * WGF_AEAD_TAG_LEN;
    b->rx_buf_size = WGF_DATA_HEADER_LEN + round16(rx_mtu) + WGF_AEAD_TAG_LEN;
    b->tx_mem = malloc((WGF_DP_BATCH + WGF_DP_STAGED_POOL) * b->tx_buf_size +
                       WGF_DP_BATCH * WGF_DATA_MIN_LEN);
    b->rx_mem = malloc(WGF_DP_BATCH * b->rx_buf_size);
    if (b->tx_mem == NULL || b->rx_mem == NULL) {
        free(b->tx_mem);
        free(b->rx_mem);
        return -ENOMEM;
    }
    return 0;
}

/* Points the batch, the keepalive and the rx buffers into b; the pool is filled by the caller
 * (it may hold staged packets). Returns the pool's first buffer. */
static uint8_t *buffers_use(struct wgf_dp *dp, const struct buffers *b)
{
    dp->tx_buf_size = b->tx_buf_size;
    dp->rx_buf_size = b->rx_buf_size;
    dp->tx_mem = b->tx_mem;
    dp->rx_mem = b->rx_mem;
    for (size_t i = 0; i < WGF_DP_BATCH; i++) {
        dp->tx_bufs[i] = b->tx_mem + i * b->tx_buf_size;
        dp->rx_bufs[i] = b->rx_mem + i * b->rx_buf_size;
    }
    uint8_t *pool = b->tx_mem + WGF_DP_BATCH * b->tx_buf_size;
    dp->keepalive_bufs = pool + WGF_DP_STAGED_POOL * b->tx_buf_size;
    return pool;
}

int wgf_dp_new(struct wgf_dp **out, int tun_fd, int udp4_fd, int udp6_fd, unsigned mtu)
{
    *out = NULL;
    if (tun_fd < 0 || mtu < WGF_DP_MTU_MIN || mtu > WGF_DP_MTU_MAX)
        return -EINVAL;
    int err;
    const int fds[3] = {tun_fd, udp4_fd, udp6_fd};
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0 && (err = set_nonblocking(fds[i])) != 0)
            return err;

    struct wgf_dp *dp = calloc(1, sizeof(*dp));
    if (dp == NULL)
        return -ENOMEM;
    enable_socket_reports(udp4_fd, udp6_fd);
    dp->tun_fd = tun_fd;
    /* Not a TUN (a test's socketpair: one packet per read and write) counts as a plain one. */
    dp->tun_vnet_hdr = wgf_dp_tun_vnet_hdr(tun_fd) == 1;
    dp->udp4_fd = udp4_fd;
    dp->udp6_fd = udp6_fd;
    dp->mtu = mtu;
    dp->wake_fd = dp->event_fd = dp->rx_wake_fd = dp->timer_fd = -1;
    dp->threads = WGF_DP_THREADS_DEFAULT;
    dp->limits = (struct wgf_dp_time_limits){
        .rekey_after_time_ns = WGF_REKEY_AFTER_TIME_NS,
        .reject_after_time_ns = WGF_REJECT_AFTER_TIME_NS,
        .keepalive_timeout_ns = WGF_KEEPALIVE_TIMEOUT_NS,
        .rekey_timeout_ns = WGF_REKEY_TIMEOUT_NS,
        .activity_report_ns = WGF_ACTIVITY_REPORT_NS,
    };
    dp->rekey_on_receive_age_ns =
        WGF_REJECT_AFTER_TIME_NS - WGF_KEEPALIVE_TIMEOUT_NS - WGF_REKEY_TIMEOUT_NS;
    pthread_mutex_init(&dp->lock, NULL);
    pthread_mutex_init(&dp->queue_lock, NULL);
    pthread_mutex_init(&dp->admit_lock, NULL);
    pthread_mutex_init(&dp->control_lock, NULL);
    pthread_mutex_init(&dp->pause_lock, NULL);
    pthread_cond_init(&dp->pause_cond, NULL);

    struct buffers b;
    if (buffers_alloc(&b, mtu) != 0) {
        wgf_dp_free(dp);
        return -ENOMEM;
    }
    uint8_t *pool_mem = buffers_use(dp, &b);
    dp->pool = calloc(WGF_DP_STAGED_POOL, sizeof(*dp->pool));
    dp->queue = calloc(WGF_DP_HANDSHAKE_QUEUE, sizeof(*dp->queue));
    dp->allowedips = wgf_allowedips_new();
    dp->index = wgf_index_table_new();
    dp->ratelimiter = malloc(sizeof(*dp->ratelimiter));
    dp->reply_limiter = malloc(sizeof(*dp->reply_limiter));
    if (dp->ratelimiter != NULL)
        wgf_ratelimiter_init(dp->ratelimiter, 0);
    if (dp->reply_limiter != NULL)
        wgf_ratelimiter_init(dp->reply_limiter, 1);
    dp->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    dp->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    dp->rx_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    dp->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (dp->wake_fd < 0 || dp->event_fd < 0 || dp->rx_wake_fd < 0 || dp->timer_fd < 0) {
        err = -errno;
        wgf_dp_free(dp);
        return err;
    }
    if (!dp->pool || !dp->queue || !dp->allowedips || !dp->index || !dp->ratelimiter ||
        !dp->reply_limiter) {
        wgf_dp_free(dp);
        return -ENOMEM;
    }
    for (size_t i = 0; i < WGF_DP_STAGED_POOL; i++)
        dp->pool[dp->pool_free++] = pool_mem + i * dp->tx_buf_size;
    *out = dp;
    return 0;
}

int wgf_dp_set_time_limits(struct wgf_dp *dp, const struct wgf_dp_time_limits *limits)
{
    const struct wgf_dp_time_limits l = *limits;
    /* Each term is below reject_after_time once checked, so the sum cannot wrap. */
    if (l.rekey_after_time_ns == 0 || l.rekey_after_time_ns >= l.reject_after_time_ns ||
        l.keepalive_timeout_ns >= l.reject_after_time_ns ||
        l.rekey_timeout_ns >= l.reject_after_time_ns ||
        l.keepalive_timeout_ns + l.rekey_timeout_ns >= l.reject_after_time_ns ||
        l.activity_report_ns == 0)
        return -EINVAL;
    pthread_mutex_lock(&dp->lock);
    dp->limits = l;
    dp->rekey_on_receive_age_ns =
        l.reject_after_time_ns - l.keepalive_timeout_ns - l.rekey_timeout_ns;
    pthread_mutex_unlock(&dp->lock);
    return 0;
}

void wgf_dp_get_time_limits(struct wgf_dp *dp, struct wgf_dp_time_limits *out)
{
    pthread_mutex_lock(&dp->lock);
    *out = dp->limits;
    pthread_mutex_unlock(&dp->lock);
}

void wgf_dp_free(struct wgf_dp *dp)
{
    if (dp == NULL)
        return;
    if (dp->peers != NULL || dp->peer_cap != 0)
        wgf_dp_peers_free_all(dp);
    wgf_dp_offload_free(dp);
    wgf_allowedips_free(dp->allowedips);
    wgf_index_table_free(dp->index);
    const int fds[4] = {dp->wake_fd, dp->event_fd, dp->rx_wake_fd, dp->timer_fd};
    for (int i = 0; i < 4; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (dp->queue != NULL) /* handshake messages are public, but cheap to wipe */
        wgf_memzero(dp->queue, WGF_DP_HANDSHAKE_QUEUE * sizeof(*dp->queue));
    free(dp->queue);
    wgf_cookie_checker_wipe(&dp->cookies); /* the cookie secret dies with the data plane */
    if (dp->ratelimiter != NULL)
        wgf_memzero(dp->ratelimiter, sizeof(*dp->ratelimiter));
    free(dp->ratelimiter);
    free(dp->reply_limiter);
    free(dp->pool);
    free(dp->tx_mem);
    free(dp->rx_mem);
    pthread_mutex_destroy(&dp->lock);
    pthread_mutex_destroy(&dp->queue_lock);
    pthread_mutex_destroy(&dp->admit_lock);
    pthread_mutex_destroy(&dp->control_lock);
    pthread_mutex_destroy(&dp->pause_lock);
    pthread_cond_destroy(&dp->pause_cond);
    free(dp);
}

static void wake(int fd)
{
    uint64_t one = 1;
    ssize_t r = write(fd, &one, sizeof(one)); /* a full counter (EAGAIN) still wakes */
    (void)r;
}

static void drain(int fd)
{
    uint64_t v;
    ssize_t r = read(fd, &v, sizeof(v));
    (void)r;
}

void wgf_dp_stop(struct wgf_dp *dp)
{
    __atomic_store_n(&dp->stop, 1, __ATOMIC_RELEASE);
    wake(dp->wake_fd);
    wake(dp->rx_wake_fd);
}

static bool stopping(struct wgf_dp *dp)
{
    return __atomic_load_n(&dp->stop, __ATOMIC_ACQUIRE) ||
           __atomic_load_n(&dp->halt, __ATOMIC_ACQUIRE);
}

/* ---- pausing the loop for reconfiguration ---- */

/* A loop thread between rounds: wait here while a controller holds the loop paused. */
static void park_if_asked(struct wgf_dp *dp)
{
    if (!__atomic_load_n(&dp->pause_requested, __ATOMIC_ACQUIRE))
        return;
    pthread_mutex_lock(&dp->pause_lock);
    dp->loops_parked++;
    pthread_cond_broadcast(&dp->pause_cond);
    while (dp->pause_requested)
        pthread_cond_wait(&dp->pause_cond, &dp->pause_lock);
    dp->loops_parked--;
    pthread_mutex_unlock(&dp->pause_lock);
}

static void loop_enter(struct wgf_dp *dp)
{
    pthread_mutex_lock(&dp->pause_lock);
    dp->loops_active++;
    pthread_mutex_unlock(&dp->pause_lock);
}

static void loop_leave(struct wgf_dp *dp)
{
    pthread_mutex_lock(&dp->pause_lock);
    dp->loops_active--;
    pthread_cond_broadcast(&dp->pause_cond); /* a controller may be waiting for it */
    pthread_mutex_unlock(&dp->pause_lock);
}

/* Returns with every running loop thread parked (or none running) and control_lock held. */
static void pause_loops(struct wgf_dp *dp)
{
    pthread_mutex_lock(&dp->control_lock);
    pthread_mutex_lock(&dp->pause_lock);
    __atomic_store_n(&dp->pause_requested, 1, __ATOMIC_RELEASE);
    wake(dp->wake_fd);
    wake(dp->rx_wake_fd);
    while (dp->loops_parked < dp->loops_active)
        pthread_cond_wait(&dp->pause_cond, &dp->pause_lock);
    pthread_mutex_unlock(&dp->pause_lock);
}

static void resume_loops(struct wgf_dp *dp)
{
    pthread_mutex_lock(&dp->pause_lock);
    __atomic_store_n(&dp->pause_requested, 0, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&dp->pause_cond);
    pthread_mutex_unlock(&dp->pause_lock);
    pthread_mutex_unlock(&dp->control_lock);
}

int wgf_dp_set_sockets(struct wgf_dp *dp, int udp4_fd, int udp6_fd)
{
    const int fds[2] = {udp4_fd, udp6_fd};
    for (int i = 0; i < 2; i++)
        if (fds[i] >= 0 && set_nonblocking(fds[i]) != 0)
            return -EINVAL;
    enable_socket_reports(udp4_fd, udp6_fd);
    pause_loops(dp);
    dp->udp4_fd = udp4_fd;
    dp->udp6_fd = udp6_fd;
    wgf_dp_offload_sockets_changed(dp);
    resume_loops(dp);
    return 0;
}

int wgf_dp_set_mtu(struct wgf_dp *dp, unsigned mtu)
{
    if (mtu < WGF_DP_MTU_MIN || mtu > WGF_DP_MTU_MAX)
        return -EINVAL;
    struct buffers b;
    if (buffers_alloc(&b, mtu) != 0)
        return -ENOMEM;
    pause_loops(dp);
    uint8_t *old_tx = dp->tx_mem, *old_rx = dp->rx_mem;
    uint8_t *pool_mem = buffers_use(dp, &b);
    pthread_mutex_lock(&dp->lock);
    dp->mtu = mtu;
    /* Staged packets move into buffers of the new size, oldest first; one that no longer fits
     * the MTU could never be sent. The pool is rebuilt from what is left. */
    size_t next = 0;
    for (size_t i = 0; i < dp->peer_cap; i++) {
        struct wgf_dp_peer *p = dp->peers[i];
        if (p == NULL)
            continue;
        for (uint32_t k = p->staged_count; k > 0; k--) {
            size_t len;
            uint8_t *old = wgf_dp_unstage(dp, p, &len);
            if (len > mtu) {
                WGF_DP_DROP(dp, WGF_DROP_OVERSIZE, 1);
                continue;
            }
            uint8_t *fresh = pool_mem + next++ * dp->tx_buf_size;
            memcpy(fresh + WGF_DATA_HEADER_LEN, old + WGF_DATA_HEADER_LEN, len);
            uint32_t tail = (p->staged_head + p->staged_count) % WGF_DP_STAGED_MAX;
            p->staged[tail] = fresh;
            p->staged_len[tail] = (uint16_t)len;
            p->staged_count++;
            if (p->stranded)
                dp->stranded_staged++;
        }
    }
    dp->pool_free = 0;
    for (size_t i = next; i < WGF_DP_STAGED_POOL; i++)
        dp->pool[dp->pool_free++] = pool_mem + i * dp->tx_buf_size;
    pthread_mutex_unlock(&dp->lock);
    wgf_dp_offload_buffers_changed(dp);
    resume_loops(dp);
    free(old_tx);
    free(old_rx);
    return 0;
}

unsigned wgf_dp_get_mtu(struct wgf_dp *dp)
{
    pthread_mutex_lock(&dp->lock);
    unsigned mtu = dp->mtu;
    pthread_mutex_unlock(&dp->lock);
    return mtu;
}

/* ---- timers ---- */

void wgf_dp_run_timers(struct wgf_dp *dp)
{
    pthread_mutex_lock(&dp->lock);
    uint64_t now = wgf_dp_now(dp);
    if (dp->report_due_ns != 0 && now >= dp->report_due_ns) {
        dp->report_due_ns = 0;
        if (dp->ev_head != NULL)
            __atomic_store_n(&dp->signal_due, 1, __ATOMIC_RELAXED);
    }
    if (dp->next_zero_at_ns != 0 && now >= dp->next_zero_at_ns) {
        uint64_t next = 0;
        for (size_t i = 0; i < dp->peer_cap; i++) {
            struct wgf_dp_peer *p = dp->peers[i];
            uint64_t t = p != NULL ? wgf_dp_peer_zero_due(dp, p, now) : 0;
            if (t != 0 && (next == 0 || t < next))
                next = t;
        }
        dp->next_zero_at_ns = next;
    }
    __atomic_store_n(&dp->timer_stale, 1, __ATOMIC_RELAXED); /* one-shot: arm the next */
    pthread_mutex_unlock(&dp->lock);
    wgf_dp_flush_signals(dp);
}

/* ---- the loop ---- */

enum { ROUND_SEND = 1, ROUND_RECEIVE = 2 };

/* One poll round over the sources of the given directions: 0, 1 if stopped, or a negative
 * errno. The send direction owns the TUN fd, wake_fd and the timer fd; the receive direction
 * the UDP sockets (and rx_wake_fd when it runs on its own). */
static int run_round(struct wgf_dp *dp, int timeout_ms, unsigned dirs)
{
    enum { WAKE, TUN, TIMER, UDP4, UDP6 };
    const bool send = dirs & ROUND_SEND, receive = dirs & ROUND_RECEIVE;
    park_if_asked(dp);
    if (stopping(dp))
        return 1;
    /* Read after parking: a reconfiguration may just have replaced them. */
    struct pollfd fds[5] = {
        {.fd = send ? dp->wake_fd : dp->rx_wake_fd, .events = POLLIN},
        {.fd = send ? dp->tun_fd : -1, .events = POLLIN}, /* poll() skips negative fds */
        {.fd = send ? dp->timer_fd : -1, .events = POLLIN},
        {.fd = receive ? dp->udp4_fd : -1, .events = POLLIN},
        {.fd = receive ? dp->udp6_fd : -1, .events = POLLIN},
    };
    /* A half-split super-packet waits in our buffer, not in the TUN: poll will not say so. */
    bool split_pending = send && wgf_dp_split_pending(dp);
    if ((send && __atomic_load_n(&dp->work_pending, __ATOMIC_ACQUIRE)) || split_pending)
        timeout_ms = 0;
    int r = poll(fds, 5, timeout_ms);
    WGF_DP_STAT_ADD(dp, polls, 1);
    if (r < 0)
        return errno == EINTR ? 0 : -errno;
    if (fds[WAKE].revents & POLLIN) {
        drain(fds[WAKE].fd);
        WGF_DP_STAT_ADD(dp, wakeups, 1);
    }
    if (stopping(dp) || __atomic_load_n(&dp->pause_requested, __ATOMIC_ACQUIRE))
        return stopping(dp) ? 1 : 0; /* paused: the fds above may be gone; park first */
    /* A deleted TUN interface shows as POLLERR (then reads fail with EBADFD). */
    if (fds[TUN].revents & POLLNVAL)
        return -EBADF;
    if (fds[TUN].revents & (POLLERR | POLLHUP))
        return -ENODEV;
    if ((fds[UDP4].revents | fds[UDP6].revents) & POLLNVAL)
        return -EBADF;
    if (fds[TIMER].revents & POLLIN) {
        drain(dp->timer_fd);
        wgf_dp_run_timers(dp);
    }
    if (send && __atomic_load_n(&dp->work_pending, __ATOMIC_ACQUIRE))
        wgf_dp_do_pending_work(dp);
    if (fds[UDP4].revents & (POLLIN | POLLERR))
        wgf_dp_receive_udp(dp, dp->udp4_fd);
    if (fds[UDP6].revents & (POLLIN | POLLERR))
        wgf_dp_receive_udp(dp, dp->udp6_fd);
    if ((fds[TUN].revents & POLLIN) || split_pending)
        return wgf_dp_send_from_tun(dp);
    return 0;
}

/* A vnet-header TUN read as a plain one would take virtio headers for packets. */
static bool tun_mode_wrong(struct wgf_dp *dp)
{
    return dp->tun_vnet_hdr && !(wgf_dp_get_offloads(dp) & WGF_DP_OFFLOAD_TUN_VNET);
}

int wgf_dp_run_once(struct wgf_dp *dp, int timeout_ms)
{
    if (tun_mode_wrong(dp))
        return -EINVAL;
    pthread_mutex_lock(&dp->pause_lock);
    bool busy = dp->loops_active > 0 || dp->once_busy;
    if (!busy)
        dp->once_busy = 1;
    pthread_mutex_unlock(&dp->pause_lock);
    if (busy)
        return -EBUSY;
    int r = run_round(dp, timeout_ms, ROUND_SEND | ROUND_RECEIVE);
    pthread_mutex_lock(&dp->pause_lock);
    dp->once_busy = 0;
    pthread_mutex_unlock(&dp->pause_lock);
    return r;
}

/* Runs rounds until stopped; an error halts the other thread of the pair too. */
static int run_loop(struct wgf_dp *dp, unsigned dirs)
{
    loop_enter(dp);
    int r;
    while ((r = run_round(dp, -1, dirs)) == 0)
        ;
    if (r < 0) {
        __atomic_store_n(&dp->halt, 1, __ATOMIC_RELEASE);
        wake(dp->wake_fd);
        wake(dp->rx_wake_fd);
    }
    loop_leave(dp);
    return r < 0 ? r : 0;
}

static void *receive_thread(void *arg)
{
    struct wgf_dp *dp = arg;
    int r = run_loop(dp, ROUND_RECEIVE);
    __atomic_store_n(&dp->rx_error, r, __ATOMIC_RELEASE);
    return NULL;
}

int wgf_dp_set_threads(struct wgf_dp *dp, unsigned threads)
{
    if (threads < 1 || threads > 2)
        return -EINVAL;
    dp->threads = threads; /* read by the next wgf_dp_run */
    return 0;
}

unsigned wgf_dp_get_threads(struct wgf_dp *dp)
{
    return dp->threads;
}

int wgf_dp_run(struct wgf_dp *dp)
{
    pthread_mutex_lock(&dp->pause_lock);
    bool busy = dp->loops_active > 0 || dp->once_busy;
    pthread_mutex_unlock(&dp->pause_lock);
    if (busy)
        return -EBUSY;
    if (tun_mode_wrong(dp))
        return -EINVAL;
    /* Whatever a previous run left armed or flagged is looked at afresh. */
    __atomic_store_n(&dp->timer_stale, 1, __ATOMIC_RELAXED);
    wgf_dp_flush_signals(dp);
    if (dp->threads < 2)
        return run_loop(dp, ROUND_SEND | ROUND_RECEIVE);
    pthread_t rx;
    drain(dp->rx_wake_fd); /* a previous run's halt */
    __atomic_store_n(&dp->halt, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&dp->rx_error, 0, __ATOMIC_RELEASE);
    /* Signals stay with the caller's threads: the receive thread starts with all blocked. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int started = pthread_create(&rx, NULL, receive_thread, dp);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (started != 0)
        return run_loop(dp, ROUND_SEND | ROUND_RECEIVE); /* one thread still works */
    int r = run_loop(dp, ROUND_SEND);
    __atomic_store_n(&dp->halt, 1, __ATOMIC_RELEASE);
    wake(dp->rx_wake_fd);
    pthread_join(rx, NULL);
    __atomic_store_n(&dp->halt, 0, __ATOMIC_RELEASE);
    int rx_error = __atomic_load_n(&dp->rx_error, __ATOMIC_ACQUIRE);
    return r != 0 ? r : rx_error;
}

struct wgf_allowedips *wgf_dp_allowedips(struct wgf_dp *dp)
{
    return dp->allowedips;
}

struct wgf_index_table *wgf_dp_index_table(struct wgf_dp *dp)
{
    return dp->index;
}

void wgf_dp_get_stats(struct wgf_dp *dp, struct wgf_dp_stats *out)
{
    _Static_assert(sizeof(struct wgf_dp_stats) % sizeof(uint64_t) == 0, "all uint64_t");
    const uint64_t *src = (const uint64_t *)&dp->stats;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    pthread_mutex_lock(&dp->lock);
    out->staged_held = WGF_DP_STAGED_POOL - dp->pool_free;
    pthread_mutex_unlock(&dp->lock);
}

const char *wgf_dp_drop_name(int reason)
{
    static const char *const names[WGF_DROP_COUNT] = {
        [WGF_DROP_NO_PEER] = "no_peer",
        [WGF_DROP_OVERSIZE] = "oversize",
        [WGF_DROP_NO_ENDPOINT] = "no_endpoint",
        [WGF_DROP_NO_SOCKET] = "no_socket",
        [WGF_DROP_STAGED_OVERFLOW] = "staged_overflow",
        [WGF_DROP_STAGED_DISCARDED] = "staged_discarded",
        [WGF_DROP_UDP_SEND] = "udp_send",
        [WGF_DROP_TRUNCATED] = "truncated",
        [WGF_DROP_BAD_TYPE] = "bad_type",
        [WGF_DROP_BAD_SIZE] = "bad_size",
        [WGF_DROP_UNKNOWN_INDEX] = "unknown_index",
        [WGF_DROP_KEYPAIR_EXPIRED] = "keypair_expired",
        [WGF_DROP_REPLAY] = "replay",
        [WGF_DROP_AUTH] = "auth",
        [WGF_DROP_INNER_HEADER] = "inner_header",
        [WGF_DROP_SOURCE_NOT_ALLOWED] = "source_not_allowed",
        [WGF_DROP_TUN_WRITE] = "tun_write",
        [WGF_DROP_CONTROL_QUEUE_FULL] = "control_queue_full",
        [WGF_DROP_BAD_OFFLOAD] = "bad_offload",
        [WGF_DROP_NO_IDENTITY] = "no_identity",
        [WGF_DROP_UNKNOWN_HANDSHAKE_INDEX] = "unknown_handshake_index",
        [WGF_DROP_BAD_MAC1] = "bad_mac1",
        [WGF_DROP_COOKIE_REQUIRED] = "cookie_required",
        [WGF_DROP_RATE_LIMITED] = "rate_limited",
    };
    return reason >= 0 && reason < WGF_DROP_COUNT ? names[reason] : "unknown";
}
