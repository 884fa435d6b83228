/* This CPU's int8 (VNNI) and float32 (FMA) multiply-add peak on one core, measured: bench/int8_roofline.py --peak.

Why: a roofline needs the peak the instructions actually reach here, not only the datasheet's arithmetic (clock
under a hypervisor is not visible; Zen 4 runs a 512-bit op as two 256-bit halves). Independent accumulators
(ACCS of them) hide each instruction's latency, so the loop runs at the issue rate:
- vpdpbusd zmm: 64 u8 x s8 products added into 16 int32 lanes per instruction;
- vfmadd231ps zmm: 16 float32 multiply-adds per instruction.
Prints "vnni <G multiply-adds/s>" and "fma <G multiply-adds/s>" for one thread.
Build: gcc -O3 -funroll-loops -mavx512f -mavx512vnni bench/vnni_peak.c -o vnni_peak (at -O2 gcc keeps the
accumulators in memory and measures a store-load chain instead: half the rate) */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#define ACCS 12
#define ITERS 20000000L

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

int main(void) {
    __m512i acc[ACCS], a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(-2);
    __m512 facc[ACCS], fa = _mm512_set1_ps(1.0f), fb = _mm512_set1_ps(1e-9f);
    for (int i = 0; i < ACCS; i++) { acc[i] = _mm512_setzero_si512(); facc[i] = _mm512_setzero_ps(); }
    double best_i = 1e30, best_f = 1e30;
    for (int round = 0; round < 3; round++) {
        double t = now();
        for (long n = 0; n < ITERS; n++)
            for (int i = 0; i < ACCS; i++) acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
        t = now() - t;
        best_i = t < best_i ? t : best_i;
        t = now();
        for (long n = 0; n < ITERS; n++)
            for (int i = 0; i < ACCS; i++) facc[i] = _mm512_fmadd_ps(fa, fb, facc[i]);
        t = now() - t;
        best_f = t < best_f ? t : best_f;
    }
    int sink = 0;  /* keep the results alive */
    float fsink = 0;
    for (int i = 0; i < ACCS; i++) { sink += _mm512_reduce_add_epi32(acc[i]); fsink += _mm512_reduce_add_ps(facc[i]); }
    printf("vnni %.1f\nfma %.1f\n(sink %d %g)\n", ITERS * ACCS * 64.0 / best_i / 1e9, ITERS * ACCS * 16.0 / best_f / 1e9,
           sink, fsink);
    return 0;
}
