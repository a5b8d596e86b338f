/* Wiping key material: a plain memset followed by a compiler barrier. */
#include <string.h>

#include "memzero.h"

void wgf_memzero(void *p, size_t len)
{
    memset(p, 0, len);
    /* The empty asm "reads" p's memory, so the memset cannot be dropped as a dead store. */
    __asm__ __volatile__("" : : "r"(p) : "memory");
}
