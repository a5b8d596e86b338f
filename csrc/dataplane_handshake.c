/* Handshake datagrams meet the DoS defence here, on the receive thread, before anything is
 * queued for Python (the kernel's order, receive.c and cookie.c):
 *
 *   1. no private key: every handshake datagram is dropped (no_identity);
 *   2. a response or cookie reply must name an index of ours: a response a handshake in flight,
 *      a cookie reply a handshake in flight or a keypair (a responder's response became its
 *      keypair at once) (unknown_handshake_index);
 *   3. an initiation or response must carry a valid mac1 (bad_mac1);
 *   4. under load, one without a valid mac2 is answered with a cookie reply and dropped
 *      (cookie_required); one with a valid mac2 must get a token from its source's bucket
 *      (rate_limited);
 *   5. what is left goes to the control queue (control_queue_full when it has no room).
 *
 * "Under load" is the kernel's notion: the queue for Python holds WGF_DP_UNDER_LOAD_QUEUE
 * datagrams or more, and for WGF_DP_UNDER_LOAD_AFTER_NS after it last did. Every datagram ends
 * in exactly one drop counter or in handshake_messages_up.
 *
 * Decision (beyond the kernel): cookie replies are limited per source address and port with the
 * same token bucket (20 per second, bursts of 5; reply_limiter). Sending a reply costs several
 * times what checking a datagram does (the kernel's send path, and on a veth the receiver's
 * too), so a flood of valid-mac1 initiations from one process answered in full kept the
 * receive thread too busy to read the real peer's datagrams; the real peer sends from its own
 * port once per REKEY_TIMEOUT and is always answered. The table lets unknown sources through
 * when full: then every datagram is answered, as the kernel does. */
#define _GNU_SOURCE /* sendmmsg, struct mmsghdr */
#include <string.h>

#include "dataplane_internal.h"

static size_t queue_length(struct wgf_dp *dp)
{
    pthread_mutex_lock(&dp->queue_lock);
    size_t n = dp->queue_count;
    pthread_mutex_unlock(&dp->queue_lock);
    return n;
}

/* The source as cookies hash it: IP bytes || port (network order); returns its length. */
static size_t source_bytes(const union wgf_dp_endpoint *ep, uint8_t out[WGF_COOKIE_SOURCE_MAX],
                           int *family, const uint8_t **ip)
{
    if (ep->sa.sa_family == AF_INET) {
        memcpy(out, &ep->in4.sin_addr, 4);
        memcpy(out + 4, &ep->in4.sin_port, 2);
        *family = 4;
        *ip = out;
        return 6;
    }
    memcpy(out, &ep->in6.sin6_addr, 16);
    memcpy(out + 16, &ep->in6.sin6_port, 2);
    *family = 6;
    *ip = out;
    return 18;
}

/* Under admit_lock. */
static bool under_load(struct wgf_dp *dp, uint64_t now)
{
    if (queue_length(dp) >= WGF_DP_UNDER_LOAD_QUEUE) {
        dp->last_under_load_ns = now;
        return true;
    }
    return dp->last_under_load_ns != 0 && now - dp->last_under_load_ns < WGF_DP_UNDER_LOAD_AFTER_NS;
}

/* Whether index is one of ours that a message of this type may name. */
static bool index_is_ours(struct wgf_dp *dp, uint32_t type, uint32_t index)
{
    struct wgf_index_entry e;
    if (wgf_index_table_lookup(dp->index, index, &e) != 0)
        return false;
    return type == WGF_MSG_COOKIE_REPLY || e.keypair == WGF_DP_INDEX_HANDSHAKE;
}

void wgf_dp_send_cookie_replies(struct wgf_dp *dp)
{
    struct mmsghdr msgs[WGF_DP_BATCH];
    struct iovec iov[WGF_DP_BATCH];
    size_t n = dp->n_replies;
    dp->n_replies = 0;
    for (int family = AF_INET; n > 0; family = AF_INET6) {
        int fd = family == AF_INET ? dp->udp4_fd : dp->udp6_fd;
        unsigned m = 0;
        for (size_t i = 0; i < n; i++) {
            if (dp->reply_to[i].sa.sa_family != family)
                continue;
            iov[m] = (struct iovec){.iov_base = dp->replies[i], .iov_len = WGF_COOKIE_REPLY_LEN};
            memset(&msgs[m], 0, sizeof(msgs[m]));
            msgs[m].msg_hdr.msg_name = &dp->reply_to[i];
            msgs[m].msg_hdr.msg_namelen =
                family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
            msgs[m].msg_hdr.msg_iov = &iov[m];
            msgs[m].msg_hdr.msg_iovlen = 1;
            wgf_dp_cmsg_build(&msgs[m].msg_hdr, dp->reply_cmsg[m], family, &dp->reply_from[i], 0, 0);
            m++;
        }
        if (m > 0 && fd >= 0) {
            int sent = sendmmsg(fd, msgs, m, MSG_DONTWAIT);
            if (sent > 0)
                WGF_DP_STAT_ADD(dp, cookie_replies_sent, sent);
        }
        if (family == AF_INET6)
            break;
    }
}

void wgf_dp_admit_handshake(struct wgf_dp *dp, const uint8_t *msg, size_t len,
                            const union wgf_dp_endpoint *source, const struct wgf_dp_source *local)
{
    uint32_t type = wgf_get_le32(msg);
    uint8_t src[WGF_COOKIE_SOURCE_MAX];
    const uint8_t *ip;
    int family;
    size_t src_len = source_bytes(source, src, &family, &ip);
    int reason = -1;
    bool answer = false;
    uint8_t *reply = dp->replies[dp->n_replies];

    /* The receiver index: after the sender's in a response, first in a cookie reply. */
    if (type == WGF_MSG_RESPONSE && !index_is_ours(dp, type, wgf_get_le32(msg + 8)))
        reason = WGF_DROP_UNKNOWN_HANDSHAKE_INDEX;
    if (type == WGF_MSG_COOKIE_REPLY && !index_is_ours(dp, type, wgf_get_le32(msg + 4)))
        reason = WGF_DROP_UNKNOWN_HANDSHAKE_INDEX;
    pthread_mutex_lock(&dp->admit_lock);
    uint64_t now = wgf_dp_now(dp);
    if (!dp->cookies.has_key) {
        reason = WGF_DROP_NO_IDENTITY;
    } else if (reason < 0 && type != WGF_MSG_COOKIE_REPLY) {
        bool load = under_load(dp, now);
        enum wgf_mac_state st = wgf_cookie_check(&dp->cookies, msg, len, src, src_len, now, load);
        if (st == WGF_MAC_INVALID) {
            reason = WGF_DROP_BAD_MAC1;
        } else if (load && st != WGF_MAC_VALID_WITH_COOKIE) {
            reason = WGF_DROP_COOKIE_REQUIRED;
            uint16_t port = wgf_get_be16(src + src_len - 2);
            if (!wgf_ratelimiter_allow_port(dp->reply_limiter, family, ip, port, now))
                WGF_DP_STAT_ADD(dp, cookie_replies_limited, 1);
            else
                answer = dp->n_replies < WGF_DP_BATCH &&
                         wgf_cookie_make_reply(&dp->cookies, reply, msg, len, src, src_len,
                                               now) == 0;
        } else if (load && !wgf_ratelimiter_allow(dp->ratelimiter, family, ip, now)) {
            reason = WGF_DROP_RATE_LIMITED;
        }
    }
    pthread_mutex_unlock(&dp->admit_lock);
    if (reason >= 0) {
        WGF_DP_DROP(dp, reason, 1);
        if (answer) { /* sent with the batch's others (wgf_dp_send_cookie_replies) */
            dp->reply_from[dp->n_replies] = *local;
            dp->reply_to[dp->n_replies++] = *source;
        }
        return;
    }
    wgf_dp_queue_handshake(dp, msg, len, source, local);
}

int wgf_dp_set_identity(struct wgf_dp *dp, const uint8_t *public_key)
{
    pthread_mutex_lock(&dp->admit_lock);
    wgf_cookie_checker_set_public(&dp->cookies, public_key);
    pthread_mutex_unlock(&dp->admit_lock);
    pthread_mutex_lock(&dp->lock);
    dp->identity = public_key != NULL;
    wgf_dp_identity_changed(dp);
    pthread_mutex_unlock(&dp->lock);
    return 0;
}

int wgf_dp_under_load(struct wgf_dp *dp)
{
    pthread_mutex_lock(&dp->admit_lock);
    int load = under_load(dp, wgf_dp_now(dp));
    pthread_mutex_unlock(&dp->admit_lock);
    return load;
}

int wgf_dp_set_cookie_secret(struct wgf_dp *dp, const uint8_t secret[WGF_KEY_LEN])
{
    pthread_mutex_lock(&dp->admit_lock);
    wgf_cookie_checker_set_secret(&dp->cookies, secret, wgf_dp_now(dp));
    pthread_mutex_unlock(&dp->admit_lock);
    return 0;
}
