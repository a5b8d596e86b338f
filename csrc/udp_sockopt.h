/* The UDP socket options of <linux/udp.h> that an older libc's <netinet/udp.h> may lack: the
 * offloads (offload_udp.c) and the per-datagram control messages (dataplane_cmsg.c) both use
 * them. Include after <netinet/udp.h>. */
#ifndef WGF_UDP_SOCKOPT_H
#define WGF_UDP_SOCKOPT_H

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#endif
