/* Wiping key material. */
#ifndef WGF_MEMZERO_H
#define WGF_MEMZERO_H

#include <stddef.h>

/* Overwrites len bytes with zeros in a way the compiler may not elide. */
void wgf_memzero(void *p, size_t len);

#endif
