/* The data plane's lifecycle and loops, plus statistics. wgf_dp_run splits the work over two
 * threads, one per direction: the caller's thread polls the TUN and the wake-up eventfd (TUN ->
 * UDP and the control calls' work: keepalives, staged flushes), a second thread it starts polls
 * the UDP sockets (UDP -> TUN). Each side owns its buffers; peers and keypairs stay behind
 * dp->lock, which neither side holds while it seals, opens or makes a system call. Only the send
 * thread assigns counters and sends, so each peer's packets leave in counter order.
 * wgf_dp_run_once does both directions in one poll round on the calling thread. */
#define _GNU_SOURCE /* sendmmsg, recvmmsg */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "dataplane_internal.h"

uint64_t wgf_dp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * WGF_NSEC_PER_SEC + (uint64_t)ts.tv_nsec;
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

static size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

int wgf_dp_new(struct wgf_dp **out, int tun_fd, int udp4_fd, int udp6_fd, unsigned mtu)
{
    *out = NULL;
    if (tun_fd < 0 || (udp4_fd < 0 && udp6_fd < 0) || mtu < WGF_DP_MTU_MIN ||
        mtu > WGF_DP_MTU_MAX)
        return -EINVAL;
    int err;
    const int fds[3] = {tun_fd, udp4_fd, udp6_fd};
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0 && (err = set_nonblocking(fds[i])) != 0)
            return err;

    struct wgf_dp *dp = calloc(1, sizeof(*dp));
    if (dp == NULL)
        return -ENOMEM;
    dp->tun_fd = tun_fd;
    dp->udp4_fd = udp4_fd;
    dp->udp6_fd = udp6_fd;
    dp->mtu = mtu;
    dp->wake_fd = dp->event_fd = dp->rx_wake_fd = -1;
    dp->threads = WGF_DP_THREADS_DEFAULT;
    dp->limits = (struct wgf_dp_time_limits){
        .rekey_after_time_ns = WGF_REKEY_AFTER_TIME_NS,
        .reject_after_time_ns = WGF_REJECT_AFTER_TIME_NS,
        .keepalive_timeout_ns = WGF_KEEPALIVE_TIMEOUT_NS,
        .rekey_timeout_ns = WGF_REKEY_TIMEOUT_NS,
    };
    dp->rekey_on_receive_age_ns =
        WGF_REJECT_AFTER_TIME_NS - WGF_KEEPALIVE_TIMEOUT_NS - WGF_REKEY_TIMEOUT_NS;
    pthread_mutex_init(&dp->lock, NULL);
    pthread_mutex_init(&dp->queue_lock, NULL);

    /* tx: header, the packet padded (never past round16(mtu)), tag; reading up to
     * round16(mtu) + 16 bytes lets an oversized packet show itself. rx: a datagram from a peer
     * whose MTU is larger than ours is still accepted, up to WGF_DP_MTU_MAX. */
    dp->tx_buf_size = WGF_DATA_HEADER_LEN + round16(mtu) + 2 * WGF_AEAD_TAG_LEN;
    dp->rx_buf_size = WGF_DATA_HEADER_LEN + round16(WGF_DP_MTU_MAX) + WGF_AEAD_TAG_LEN;
    size_t n_tx = WGF_DP_BATCH + WGF_DP_STAGED_POOL;
    size_t total = n_tx * dp->tx_buf_size + WGF_DP_BATCH * dp->rx_buf_size +
                   WGF_DP_BATCH * WGF_DATA_MIN_LEN;
    dp->buf_mem = malloc(total);
    dp->pool = calloc(WGF_DP_STAGED_POOL, sizeof(*dp->pool));
    dp->queue = calloc(WGF_DP_CONTROL_QUEUE, sizeof(*dp->queue));
    dp->allowedips = wgf_allowedips_new();
    dp->index = wgf_index_table_new();
    dp->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    dp->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    dp->rx_wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (dp->wake_fd < 0 || dp->event_fd < 0 || dp->rx_wake_fd < 0) {
        err = -errno;
        wgf_dp_free(dp);
        return err;
    }
    if (!dp->buf_mem || !dp->pool || !dp->queue || !dp->allowedips || !dp->index) {
        wgf_dp_free(dp);
        return -ENOMEM;
    }
    uint8_t *b = dp->buf_mem;
    for (size_t i = 0; i < WGF_DP_BATCH; i++, b += dp->tx_buf_size)
        dp->tx_bufs[i] = b;
    for (size_t i = 0; i < WGF_DP_STAGED_POOL; i++, b += dp->tx_buf_size)
        dp->pool[dp->pool_free++] = b;
    for (size_t i = 0; i < WGF_DP_BATCH; i++, b += dp->rx_buf_size)
        dp->rx_bufs[i] = b;
    dp->keepalive_bufs = b;
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
        l.keepalive_timeout_ns + l.rekey_timeout_ns >= l.reject_after_time_ns)
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
    if (dp->wake_fd >= 0)
        close(dp->wake_fd);
    if (dp->event_fd >= 0)
        close(dp->event_fd);
    if (dp->rx_wake_fd >= 0)
        close(dp->rx_wake_fd);
    if (dp->queue != NULL) /* handshake messages are public, but cheap to wipe */
        wgf_memzero(dp->queue, WGF_DP_CONTROL_QUEUE * sizeof(*dp->queue));
    free(dp->queue);
    free(dp->pool);
    free(dp->buf_mem);
    pthread_mutex_destroy(&dp->lock);
    pthread_mutex_destroy(&dp->queue_lock);
    free(dp);
}

static void wake(int fd)
{
    uint64_t one = 1;
    ssize_t r = write(fd, &one, sizeof(one)); /* a full counter (EAGAIN) still wakes */
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

enum { ROUND_SEND = 1, ROUND_RECEIVE = 2 };

/* One poll round over the sources of the given directions: 0, 1 if stopped, or a negative
 * errno. The send direction owns the TUN fd and wake_fd; the receive direction the UDP sockets
 * (and rx_wake_fd when it runs on its own). */
static int run_round(struct wgf_dp *dp, int timeout_ms, unsigned dirs)
{
    enum { WAKE, TUN, UDP4, UDP6 };
    const bool send = dirs & ROUND_SEND, receive = dirs & ROUND_RECEIVE;
    struct pollfd fds[4] = {
        {.fd = send ? dp->wake_fd : dp->rx_wake_fd, .events = POLLIN},
        {.fd = send ? dp->tun_fd : -1, .events = POLLIN}, /* poll() skips negative fds */
        {.fd = receive ? dp->udp4_fd : -1, .events = POLLIN},
        {.fd = receive ? dp->udp6_fd : -1, .events = POLLIN},
    };
    if (stopping(dp))
        return 1;
    /* A half-split super-packet waits in our buffer, not in the TUN: poll will not say so. */
    bool split_pending = send && wgf_dp_split_pending(dp);
    if ((send && __atomic_load_n(&dp->work_pending, __ATOMIC_ACQUIRE)) || split_pending)
        timeout_ms = 0;
    int r = poll(fds, 4, timeout_ms);
    WGF_DP_STAT_ADD(dp, polls, 1);
    if (r < 0)
        return errno == EINTR ? 0 : -errno;
    if (fds[WAKE].revents & POLLIN) {
        uint64_t v;
        ssize_t n = read(fds[WAKE].fd, &v, sizeof(v));
        (void)n;
        WGF_DP_STAT_ADD(dp, wakeups, 1);
    }
    if (stopping(dp))
        return 1;
    /* A deleted TUN interface shows as POLLERR (then reads fail with EBADFD). */
    if (fds[TUN].revents & POLLNVAL)
        return -EBADF;
    if (fds[TUN].revents & (POLLERR | POLLHUP))
        return -ENODEV;
    if ((fds[UDP4].revents | fds[UDP6].revents) & POLLNVAL)
        return -EBADF;
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

int wgf_dp_run_once(struct wgf_dp *dp, int timeout_ms)
{
    return run_round(dp, timeout_ms, ROUND_SEND | ROUND_RECEIVE);
}

/* Runs rounds until stopped; an error halts the other thread of the pair too. */
static int run_loop(struct wgf_dp *dp, unsigned dirs)
{
    for (;;) {
        int r = run_round(dp, -1, dirs);
        if (r == 0)
            continue;
        if (r < 0) {
            __atomic_store_n(&dp->halt, 1, __ATOMIC_RELEASE);
            wake(dp->wake_fd);
            wake(dp->rx_wake_fd);
            return r;
        }
        return 0;
    }
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
    pthread_t rx;
    if (dp->threads < 2)
        return run_loop(dp, ROUND_SEND | ROUND_RECEIVE);
    uint64_t stale;
    ssize_t n = read(dp->rx_wake_fd, &stale, sizeof(stale)); /* a previous run's halt */
    (void)n;
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
    };
    return reason >= 0 && reason < WGF_DROP_COUNT ? names[reason] : "unknown";
}
