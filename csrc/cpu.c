/* CPU feature detection: __builtin_cpu_supports for the instruction sets, CPUID.OSXSAVE and
 * XGETBV(XCR0) for whether the OS enabled the register state those instructions need. */
#include "cpu.h"

#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* XCR0 bits (Intel SDM vol. 1, 13.3). */
#define XCR0_SSE (1u << 1)       /* XMM state */
#define XCR0_AVX (1u << 2)       /* upper halves of YMM */
#define XCR0_OPMASK (1u << 5)    /* k0..k7 */
#define XCR0_ZMM_HI256 (1u << 6) /* upper halves of ZMM0..15 */
#define XCR0_HI16_ZMM (1u << 7)  /* ZMM16..31 */
#define CPUID1_ECX_OSXSAVE (1u << 27)

static uint64_t os_enabled_state(void)
{
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & CPUID1_ECX_OSXSAVE))
        return 0; /* no XGETBV: the OS manages no extended state */
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (uint64_t)hi << 32 | lo;
}

int wgf_cpu_has_avx2(void)
{
    const uint64_t need = XCR0_SSE | XCR0_AVX;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && (os_enabled_state() & need) == need;
}

int wgf_cpu_has_avx512(void)
{
    const uint64_t need = XCR0_SSE | XCR0_AVX | XCR0_OPMASK | XCR0_ZMM_HI256 | XCR0_HI16_ZMM;
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512bw") && (os_enabled_state() & need) == need;
}

#else

int wgf_cpu_has_avx2(void)
{
    return 0;
}

int wgf_cpu_has_avx512(void)
{
    return 0;
}

#endif
