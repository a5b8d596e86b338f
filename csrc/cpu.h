/* Run-time CPU feature detection for picking the AEAD implementation. A feature counts only if
 * the CPU has it AND the OS saves its register state across context switches (XCR0), so a kernel
 * or hypervisor that hides AVX-512 state makes us fall back instead of faulting. */
#ifndef WGF_CPU_H
#define WGF_CPU_H

/* 1 if AVX2 can be used (CPU flag + OS saves XMM/YMM state). */
int wgf_cpu_has_avx2(void);
/* 1 if AVX-512 F+VL+BW can be used (CPU flags + OS saves opmask/ZMM state). */
int wgf_cpu_has_avx512(void);

#endif
