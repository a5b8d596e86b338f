/* The batch: how many packets the data plane moves per TUN drain, recvmmsg and sendmmsg, and so
 * the length of every per-batch array, the data plane's and the offloads' alike (one constant,
 * so that they cannot disagree). A build may override it to measure other sizes:
 *   make -C csrc clean test DEFS=-DWGF_DP_BATCH=256
 *   CFLAGS=-DWGF_DP_BATCH=256 python setup.py build_ext --inplace --force */
#ifndef WGF_BATCH_H
#define WGF_BATCH_H

#ifndef WGF_DP_BATCH
#define WGF_DP_BATCH 128
#endif
/* A coalesced TUN write takes one iovec per packet plus one for the headers, and writev takes at
 * most IOV_MAX (1024); sendmmsg and recvmmsg take at most UIO_MAXIOV (1024) messages. */
#define WGF_DP_BATCH_LIMIT 1023
#if WGF_DP_BATCH < 1 || WGF_DP_BATCH > WGF_DP_BATCH_LIMIT
#error "WGF_DP_BATCH must be between 1 and WGF_DP_BATCH_LIMIT (1023)"
#endif

#endif
