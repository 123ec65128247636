// Packed, cache-blocked SGEMM in the style of GotoBLAS / BLIS.
//
// gemm_serial: for each NC-wide column panel of op(B) and each KC-deep slice of K, the slice of
// op(B) is packed into NR-wide micro-panels (k-major); then, for each MC-row block of op(A), the
// block is packed into MR-row micro-panels and the MR x NR micro-kernel runs over every (B panel,
// A panel) pair. One packed B micro-panel (KC x NR, 16 KB) stays in L1 while the kernel walks down
// the A block held in L2; the packed B slice sits in L2/L3. Packing makes every kernel load
// contiguous whatever the operands' strides, and zero-fills partial panels so the kernel always
// computes whole tiles; only edge tiles of C go through a small buffer.
//
// gemm splits C among the threads (see there); M = 1 and N = 1 take matrix-vector kernels instead,
// and few rows against a transposed B (a linear layer on a few tokens) a turned-around kernel that
// reads B in place (few_rows).

#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <new>

#include "common.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define GLIMPSE_GEMM_X86 1
#define GLIMPSE_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace glimpse {
namespace {

// Packs one micro-panel of R rows: dst[k * R + r] = src[r * sr + k * sk] for r < rows, 0 above.
using PackFn = void (*)(const float* src, int64_t sr, int64_t sk, int64_t rows, int64_t kc, float* dst);
// c[i * rsc + j] = alpha * sum_k a[k * MR + i] * b[k * ldb + j] (+ beta * c[i * rsc + j] unless beta == 0).
// b is a packed panel (ldb = NR) or, when A has one or two row panels, rows of B itself.
using KernelFn = void (*)(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t rsc,
                          float alpha, float beta);
// Matrix-vector products for M = 1 (and N = 1, transposed), where packing would cost more than it
// saves. Both write y[j * incy] = alpha * sum_k x[k] * B(k, j) (+ beta * y[j * incy] unless beta == 0).
// B rows contiguous: B(k, j) = b[k * ldb + j].
using GemvRowsFn = void (*)(int64_t n, int64_t k, float alpha, const float* x, int64_t incx, const float* b,
                            int64_t ldb, float beta, float* y, int64_t incy);
// B columns contiguous: B(k, j) = b[j * ldb + k]; x contiguous.
using GemvColsFn = void (*)(int64_t n, int64_t k, float alpha, const float* x, const float* b, int64_t ldb,
                            float beta, float* y, int64_t incy);
// Few rows of A against B stored as rows along k (B(k, j) = b[j * ldb + k]), both unit-stride in k:
// a tile of up to kDotMR x kDotNR dot products, c[i * rsc + j * csc] = alpha * sum_k a_i[k] * b_j[k]
// (+ beta * c unless beta == 0), a_i = a + i * lda for i < rows, b_j = b + j * ldb for j < cols.
using DotTileFn = void (*)(int64_t rows, int64_t cols, int64_t kc, const float* a, int64_t lda, const float* b,
                           int64_t ldb, float alpha, float beta, float* c, int64_t rsc, int64_t csc);
constexpr int64_t kDotMR = 4, kDotNR = 3;
// The micro-kernel with its broadcast operand read in place: c[i * ldc + j] = alpha * sum_k
// a[i * lda + k] * b(k, j) (+ beta * c unless beta == 0) for i < mr (rows of a, each contiguous
// along k) and j < nr * panels, b being `panels` packed panels ldp apart (b(k, j) =
// b[(j / nr) * ldp + k * nr + j % nr]); panels <= Kernels::rows_panels.
using RowsKernelFn = void (*)(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldp, int64_t panels,
                              float* c, int64_t ldc, float alpha, float beta);
// c[r * rsc + j * csc] = t[j * ldt + r] (+ beta * c unless beta == 0) for r < rows, j < cols: a
// block computed transposed, in a scratch t, written to C.
using StoreColumnsFn = void (*)(int64_t rows, int64_t cols, const float* t, int64_t ldt, float beta, float* c,
                                int64_t rsc, int64_t csc);

constexpr int kMaxMR = 8;

struct Kernels {
  int64_t mr, nr;
  KernelFn kernel;
  // kernel_rows[r]: the kernel for a last row panel of r < mr rows, which reads the panel at the
  // same stride (mr) and writes r rows of C only; null where there is none (the full kernel then
  // computes the zero-padded panel into a buffer).
  KernelFn kernel_rows[kMaxMR];
  RowsKernelFn rows_kernel;
  int64_t rows_panels;  // panels of B one rows_kernel call may take
  StoreColumnsFn store_columns;
  PackFn pack_a, pack_b;
  GemvRowsFn gemv_rows;
  GemvColsFn gemv_cols;
  DotTileFn dot_tile;
};

// Blocking, for Zen 3/4 (32 KB L1d, 512 KB-1 MB L2 per core, 32 MB L3) and alike: KC x NR of B
// (16 KB) fills half of L1d; MC x KC of A (144 KB) fits L2 with room for C tiles; KC x NC of B
// (at most 4 MB per thread) fits L3. Smaller or larger KC and MC measured no better.
constexpr int64_t kMaxKC = 256;
constexpr int64_t kMaxMC = 144;
constexpr int64_t kMaxNC = 4096;
constexpr int64_t kMaxTile = 128;  // >= MR * NR of every kernel
// Below this many multiply-adds a call stays on one thread: waking the pool costs more than it saves.
constexpr int64_t kParallelWork = 80 * 80 * 80;

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---- portable kernels: plain loops over fixed tile sizes that the compiler vectorises ----

constexpr int kPortableMR = 4, kPortableNR = 8;

template <int R>
void pack_portable(const float* src, int64_t sr, int64_t sk, int64_t rows, int64_t kc, float* dst) {
  if (rows == R && sr == 1) {
    for (int64_t k = 0; k < kc; k++)
      for (int r = 0; r < R; r++) dst[k * R + r] = src[k * sk + r];
  } else if (rows == R && sk == 1) {
    // Rows are contiguous along k: go 8 k at a time so reads stream and writes stay in a few lines.
    for (int64_t k0 = 0; k0 < kc; k0 += 8) {
      int64_t kn = std::min<int64_t>(8, kc - k0);
      for (int r = 0; r < R; r++)
        for (int64_t k = k0; k < k0 + kn; k++) dst[k * R + r] = src[r * sr + k];
    }
  } else {
    for (int64_t k = 0; k < kc; k++) {
      for (int64_t r = 0; r < rows; r++) dst[k * R + r] = src[r * sr + k * sk];
      for (int64_t r = rows; r < R; r++) dst[k * R + r] = 0.0f;
    }
  }
}

template <int MR, int NR>
void kernel_portable(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t rsc, float alpha,
                     float beta) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; k++, a += MR, b += ldb)
    for (int i = 0; i < MR; i++)
      for (int j = 0; j < NR; j++) acc[i][j] += a[i] * b[j];
  for (int i = 0; i < MR; i++) {
    float* ci = c + i * rsc;
    if (beta == 0.0f) {
      for (int j = 0; j < NR; j++) ci[j] = alpha * acc[i][j];
    } else {
      for (int j = 0; j < NR; j++) ci[j] = alpha * acc[i][j] + beta * ci[j];
    }
  }
}

inline float combine(float acc, float alpha, float beta, float y) {
  return beta == 0.0f ? alpha * acc : alpha * acc + beta * y;
}

template <int MR, int NR>
void rows_kernel_portable(int64_t kc, const float* a, int64_t lda, const float* b, int64_t, int64_t, float* c,
                          int64_t ldc, float alpha, float beta) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; k++, b += NR)
    for (int i = 0; i < MR; i++)
      for (int j = 0; j < NR; j++) acc[i][j] += a[i * lda + k] * b[j];
  for (int i = 0; i < MR; i++)
    for (int j = 0; j < NR; j++) c[i * ldc + j] = combine(acc[i][j], alpha, beta, c[i * ldc + j]);
}

void store_columns_portable(int64_t rows, int64_t cols, const float* t, int64_t ldt, float beta, float* c,
                            int64_t rsc, int64_t csc) {
  for (int64_t r = 0; r < rows; r++)
    for (int64_t j = 0; j < cols; j++) {
      float& cv = c[r * rsc + j * csc];
      cv = combine(t[j * ldt + r], 1.0f, beta, cv);
    }
}

void gemv_rows_portable(int64_t n, int64_t k, float alpha, const float* x, int64_t incx, const float* b, int64_t ldb,
                        float beta, float* y, int64_t incy) {
  constexpr int64_t W = 32;
  for (int64_t j0 = 0; j0 < n; j0 += W) {
    const int64_t w = std::min(W, n - j0);
    float acc[W] = {};
    if (w == W) {
      for (int64_t p = 0; p < k; p++)
        for (int64_t j = 0; j < W; j++) acc[j] += x[p * incx] * b[p * ldb + j0 + j];
    } else {
      for (int64_t p = 0; p < k; p++)
        for (int64_t j = 0; j < w; j++) acc[j] += x[p * incx] * b[p * ldb + j0 + j];
    }
    for (int64_t j = 0; j < w; j++) y[(j0 + j) * incy] = combine(acc[j], alpha, beta, y[(j0 + j) * incy]);
  }
}

void gemv_cols_portable(int64_t n, int64_t k, float alpha, const float* x, const float* b, int64_t ldb, float beta,
                        float* y, int64_t incy) {
  constexpr int64_t L = 8;  // independent partial sums, which the compiler can keep in one vector
  for (int64_t j = 0; j < n; j++) {
    const float* bj = b + j * ldb;
    float part[L] = {};
    int64_t p = 0;
    for (; p + L <= k; p += L)
      for (int64_t l = 0; l < L; l++) part[l] += x[p + l] * bj[p + l];
    float acc = 0.0f;
    for (int64_t l = 0; l < L; l++) acc += part[l];
    for (; p < k; p++) acc += x[p] * bj[p];
    y[j * incy] = combine(acc, alpha, beta, y[j * incy]);
  }
}

void dot_tile_portable(int64_t rows, int64_t cols, int64_t kc, const float* a, int64_t lda, const float* b,
                       int64_t ldb, float alpha, float beta, float* c, int64_t rsc, int64_t csc) {
  for (int64_t i = 0; i < rows; i++)
    gemv_cols_portable(cols, kc, alpha, a + i * lda, b, ldb, beta, c + i * rsc, csc);
}

const Kernels kPortable = {kPortableMR,
                           kPortableNR,
                           kernel_portable<kPortableMR, kPortableNR>,
                           {},
                           rows_kernel_portable<kPortableMR, kPortableNR>,
                           1,
                           store_columns_portable,
                           pack_portable<kPortableMR>,
                           pack_portable<kPortableNR>,
                           gemv_rows_portable,
                           gemv_cols_portable,
                           dot_tile_portable};

// ---- AVX2 + FMA kernels ----
#ifdef GLIMPSE_GEMM_X86

constexpr int kAvxMR = 6, kAvxNR = 16;

// r[i] = row i of an 8 x 8 block; afterwards r[i] = column i.
GLIMPSE_AVX2 inline void transpose8(__m256 r[8]) {
  __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
  __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
  __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
  __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
  __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
  __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
  __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
  __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
  r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
  r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
  r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
  r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
  r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
  r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
  r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
  r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

GLIMPSE_AVX2 void pack16_avx2(const float* src, int64_t sr, int64_t sk, int64_t rows, int64_t kc, float* dst) {
  if (rows == 16 && sr == 1) {
    for (int64_t k = 0; k < kc; k++) {
      const float* s = src + k * sk;
      _mm256_store_ps(dst + k * 16, _mm256_loadu_ps(s));
      _mm256_store_ps(dst + k * 16 + 8, _mm256_loadu_ps(s + 8));
    }
  } else if (rows == 16 && sk == 1) {
    int64_t k = 0;
    for (; k + 8 <= kc; k += 8) {
      for (int h = 0; h < 2; h++) {
        __m256 r[8];
        for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + (h * 8 + i) * sr + k);
        transpose8(r);
        for (int i = 0; i < 8; i++) _mm256_store_ps(dst + (k + i) * 16 + h * 8, r[i]);
      }
    }
    for (; k < kc; k++)
      for (int r = 0; r < 16; r++) dst[k * 16 + r] = src[r * sr + k];
  } else {
    pack_portable<16>(src, sr, sk, rows, kc, dst);
  }
}

GLIMPSE_AVX2 void pack6_avx2(const float* src, int64_t sr, int64_t sk, int64_t rows, int64_t kc, float* dst) {
  if (rows == 6 && sk == 1) {
    int64_t k = 0;
    // Each 8-wide store of a 6-float column spills 2 floats into the next k's slot, which the
    // next store overwrites; the loop stops while a next k exists, so nothing lands past the panel.
    for (; k + 8 < kc; k += 8) {
      __m256 r[8];
      for (int i = 0; i < 6; i++) r[i] = _mm256_loadu_ps(src + i * sr + k);
      r[6] = r[7] = _mm256_setzero_ps();
      transpose8(r);
      for (int i = 0; i < 8; i++) _mm256_storeu_ps(dst + (k + i) * 6, r[i]);
    }
    for (; k < kc; k++)
      for (int r = 0; r < 6; r++) dst[k * 6 + r] = src[r * sr + k];
  } else {
    pack_portable<6>(src, sr, sk, rows, kc, dst);
  }
}

GLIMPSE_AVX2 inline void store_row_avx2(__m256 va, float beta, float* ci, __m256 lo, __m256 hi) {
  lo = _mm256_mul_ps(lo, va);
  hi = _mm256_mul_ps(hi, va);
  if (beta != 0.0f) {
    const __m256 vb = _mm256_set1_ps(beta);
    lo = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci), lo);
    hi = _mm256_fmadd_ps(vb, _mm256_loadu_ps(ci + 8), hi);
  }
  _mm256_storeu_ps(ci, lo);
  _mm256_storeu_ps(ci + 8, hi);
}

// R x 16 tiles (R <= 6) in 2R ymm accumulators, named so that they stay in registers; per k: two
// loads of B, R broadcasts of A, 2R FMAs. At R = 6 it runs at ~97% of the FMA peak with its operands
// in L1/L2. The packed A panel has 6 rows whatever R (R < 6: a last, partial panel), and each row
// gets the same multiply-adds in the same order at every R. With kInPlace, A's rows are read where
// they are (row i at a + i * lda) instead of from a packed panel.
template <int R, bool kInPlace>
GLIMPSE_AVX2 inline void tile_rx16_avx2(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                                        __m256 acc[12]) {
  static_assert(R >= 1 && R <= kAvxMR, "1 to 6 rows");
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  const int64_t step = kInPlace ? lda : 1;  // between rows
  const float* a3 = a + 3 * step;
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; k++) {
    const __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
    __m256 x;
    x = _mm256_broadcast_ss(a);
    c00 = _mm256_fmadd_ps(x, b0, c00);
    c01 = _mm256_fmadd_ps(x, b1, c01);
    if constexpr (R > 1) {
      x = _mm256_broadcast_ss(a + step);
      c10 = _mm256_fmadd_ps(x, b0, c10);
      c11 = _mm256_fmadd_ps(x, b1, c11);
    }
    if constexpr (R > 2) {
      x = _mm256_broadcast_ss(a + 2 * step);
      c20 = _mm256_fmadd_ps(x, b0, c20);
      c21 = _mm256_fmadd_ps(x, b1, c21);
    }
    if constexpr (R > 3) {
      x = _mm256_broadcast_ss(a3);
      c30 = _mm256_fmadd_ps(x, b0, c30);
      c31 = _mm256_fmadd_ps(x, b1, c31);
    }
    if constexpr (R > 4) {
      x = _mm256_broadcast_ss(a3 + step);
      c40 = _mm256_fmadd_ps(x, b0, c40);
      c41 = _mm256_fmadd_ps(x, b1, c41);
    }
    if constexpr (R > 5) {
      x = _mm256_broadcast_ss(a3 + 2 * step);
      c50 = _mm256_fmadd_ps(x, b0, c50);
      c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    a += kInPlace ? 1 : kAvxMR;
    a3 += kInPlace ? 1 : kAvxMR;
    b += ldb;
  }
  acc[0] = c00, acc[1] = c01, acc[2] = c10, acc[3] = c11, acc[4] = c20, acc[5] = c21;
  acc[6] = c30, acc[7] = c31, acc[8] = c40, acc[9] = c41, acc[10] = c50, acc[11] = c51;
}

template <int R>
GLIMPSE_AVX2 void kernel_rx16_avx2(int64_t kc, const float* a, const float* b, int64_t ldb, float* c, int64_t rsc,
                                   float alpha, float beta) {
  for (int i = 0; i < R; i++) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * rsc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * rsc + 15), _MM_HINT_T0);
  }
  __m256 acc[12];
  tile_rx16_avx2<R, false>(kc, a, 0, b, ldb, acc);
  const __m256 va = _mm256_set1_ps(alpha);
  for (int i = 0; i < R; i++) store_row_avx2(va, beta, c + i * rsc, acc[2 * i], acc[2 * i + 1]);
}

GLIMPSE_AVX2 void rows_kernel_6x16_avx2(int64_t kc, const float* a, int64_t lda, const float* b, int64_t, int64_t,
                                        float* c, int64_t ldc, float alpha, float beta) {
  __m256 acc[12];
  tile_rx16_avx2<kAvxMR, true>(kc, a, lda, b, kAvxNR, acc);
  const __m256 va = _mm256_set1_ps(alpha);
  for (int i = 0; i < kAvxMR; i++) store_row_avx2(va, beta, c + i * ldc, acc[2 * i], acc[2 * i + 1]);
}

// 8 x 8 blocks through registers; t may be read past `rows` up to the next multiple of 8 (ldt
// leaves room), and those lanes are never stored.
GLIMPSE_AVX2 void store_columns_avx2(int64_t rows, int64_t cols, const float* t, int64_t ldt, float beta, float* c,
                                     int64_t rsc, int64_t csc) {
  if (csc != 1 || ldt % 8 != 0) return store_columns_portable(rows, cols, t, ldt, beta, c, rsc, csc);
  const __m256 vb = _mm256_set1_ps(beta);
  int64_t j = 0;
  for (; j + 8 <= cols; j += 8)
    for (int64_t r = 0; r < rows; r += 8) {
      __m256 v[8];
      for (int q = 0; q < 8; q++) v[q] = _mm256_load_ps(t + (j + q) * ldt + r);
      transpose8(v);  // v[q]: row r + q, columns j..j+7
      for (int64_t q = 0; q < std::min<int64_t>(8, rows - r); q++) {
        float* cr = c + (r + q) * rsc + j;
        __m256 x = v[q];
        if (beta != 0.0f) x = _mm256_fmadd_ps(vb, _mm256_loadu_ps(cr), x);
        _mm256_storeu_ps(cr, x);
      }
    }
  if (j < cols) store_columns_portable(rows, cols - j, t + j * ldt, ldt, beta, c + j, rsc, 1);
}

GLIMPSE_AVX2 void gemv_rows_avx2(int64_t n, int64_t k, float alpha, const float* x, int64_t incx, const float* b,
                                 int64_t ldb, float beta, float* y, int64_t incy) {
  int64_t j0 = 0;
  for (; j0 + 64 <= n; j0 += 64) {
    __m256 acc[8];
    for (int i = 0; i < 8; i++) acc[i] = _mm256_setzero_ps();
    for (int64_t p = 0; p < k; p++) {
      const __m256 xp = _mm256_set1_ps(x[p * incx]);
      const float* bp = b + p * ldb + j0;
      for (int i = 0; i < 8; i++) acc[i] = _mm256_fmadd_ps(xp, _mm256_loadu_ps(bp + 8 * i), acc[i]);
    }
    alignas(32) float out[64];
    for (int i = 0; i < 8; i++) _mm256_store_ps(out + 8 * i, acc[i]);
    for (int j = 0; j < 64; j++) y[(j0 + j) * incy] = combine(out[j], alpha, beta, y[(j0 + j) * incy]);
  }
  for (; j0 + 8 <= n; j0 += 8) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t p = 0; p < k; p++)
      acc = _mm256_fmadd_ps(_mm256_set1_ps(x[p * incx]), _mm256_loadu_ps(b + p * ldb + j0), acc);
    alignas(32) float out[8];
    _mm256_store_ps(out, acc);
    for (int j = 0; j < 8; j++) y[(j0 + j) * incy] = combine(out[j], alpha, beta, y[(j0 + j) * incy]);
  }
  if (j0 < n) gemv_rows_portable(n - j0, k, alpha, x, incx, b + j0, ldb, beta, y + j0 * incy, incy);
}

GLIMPSE_AVX2 inline float hsum_avx2(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

GLIMPSE_AVX2 void gemv_cols_avx2(int64_t n, int64_t k, float alpha, const float* x, const float* b, int64_t ldb,
                                 float beta, float* y, int64_t incy) {
  int64_t j = 0;
  // Four columns at a time share each load of x; two partial sums per column hide the FMA latency.
  for (; j + 4 <= n; j += 4) {
    const float* bj[4] = {b + j * ldb, b + (j + 1) * ldb, b + (j + 2) * ldb, b + (j + 3) * ldb};
    __m256 lo[4], hi[4];
    for (int c = 0; c < 4; c++) lo[c] = hi[c] = _mm256_setzero_ps();
    int64_t p = 0;
    for (; p + 16 <= k; p += 16) {
      const __m256 x0 = _mm256_loadu_ps(x + p), x1 = _mm256_loadu_ps(x + p + 8);
      for (int c = 0; c < 4; c++) {
        lo[c] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(bj[c] + p), lo[c]);
        hi[c] = _mm256_fmadd_ps(x1, _mm256_loadu_ps(bj[c] + p + 8), hi[c]);
      }
    }
    for (int c = 0; c < 4; c++) {
      float acc = hsum_avx2(_mm256_add_ps(lo[c], hi[c]));
      for (int64_t q = p; q < k; q++) acc += x[q] * bj[c][q];
      y[(j + c) * incy] = combine(acc, alpha, beta, y[(j + c) * incy]);
    }
  }
  if (j < n) gemv_cols_portable(n - j, k, alpha, x, b + j * ldb, ldb, beta, y + j * incy, incy);
}

// R rows of A x 3 rows of B in 3R ymm accumulators; per 8 k: R + 3 loads, 3R FMAs. A k tail under
// 8 is read with masked loads (lanes past kc read as 0, and touch no memory).
template <int R>
GLIMPSE_AVX2 void dot_tile_rx3_avx2(int64_t kc, const float* a, int64_t lda, const float* const b[3], float alpha,
                                    float beta, float* c, int64_t rsc, int64_t csc) {
  __m256 acc[R][3];
  for (int i = 0; i < R; i++)
    for (int j = 0; j < 3; j++) acc[i][j] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    const __m256 b0 = _mm256_loadu_ps(b[0] + k), b1 = _mm256_loadu_ps(b[1] + k), b2 = _mm256_loadu_ps(b[2] + k);
    for (int i = 0; i < R; i++) {
      const __m256 x = _mm256_loadu_ps(a + i * lda + k);
      acc[i][0] = _mm256_fmadd_ps(x, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(x, b1, acc[i][1]);
      acc[i][2] = _mm256_fmadd_ps(x, b2, acc[i][2]);
    }
  }
  if (k < kc) {
    const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(kc - k)),
                                            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256 b0 = _mm256_maskload_ps(b[0] + k, mask), b1 = _mm256_maskload_ps(b[1] + k, mask),
                 b2 = _mm256_maskload_ps(b[2] + k, mask);
    for (int i = 0; i < R; i++) {
      const __m256 x = _mm256_maskload_ps(a + i * lda + k, mask);
      acc[i][0] = _mm256_fmadd_ps(x, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(x, b1, acc[i][1]);
      acc[i][2] = _mm256_fmadd_ps(x, b2, acc[i][2]);
    }
  }
  for (int i = 0; i < R; i++)
    for (int j = 0; j < 3; j++) {
      float& cv = c[i * rsc + j * csc];
      cv = combine(hsum_avx2(acc[i][j]), alpha, beta, cv);
    }
}

GLIMPSE_AVX2 void dot_tile_avx2(int64_t rows, int64_t cols, int64_t kc, const float* a, int64_t lda, const float* b,
                                int64_t ldb, float alpha, float beta, float* c, int64_t rsc, int64_t csc) {
  if (cols < 3) {  // a narrow edge: one dot product per row and column
    for (int64_t i = 0; i < rows; i++)
      gemv_cols_avx2(cols, kc, alpha, a + i * lda, b, ldb, beta, c + i * rsc, csc);
    return;
  }
  const float* const bj[3] = {b, b + ldb, b + 2 * ldb};
  switch (rows) {
    case 4: dot_tile_rx3_avx2<4>(kc, a, lda, bj, alpha, beta, c, rsc, csc); break;
    case 3: dot_tile_rx3_avx2<3>(kc, a, lda, bj, alpha, beta, c, rsc, csc); break;
    case 2: dot_tile_rx3_avx2<2>(kc, a, lda, bj, alpha, beta, c, rsc, csc); break;
    default: dot_tile_rx3_avx2<1>(kc, a, lda, bj, alpha, beta, c, rsc, csc); break;
  }
}

const Kernels kAvx2 = {kAvxMR,
                       kAvxNR,
                       kernel_rx16_avx2<kAvxMR>,
                       {nullptr, kernel_rx16_avx2<1>, kernel_rx16_avx2<2>, kernel_rx16_avx2<3>, kernel_rx16_avx2<4>,
                        kernel_rx16_avx2<5>},
                       rows_kernel_6x16_avx2,
                       1,
                       store_columns_avx2,
                       pack6_avx2,
                       pack16_avx2,
                       gemv_rows_avx2,
                       gemv_cols_avx2,
                       dot_tile_avx2};

// ---- AVX-512: the few-rows kernel only ----
// With 32 vector registers a tile can span three packed panels of B (6 x 48, 18 accumulators), so
// each group of weight rows streams through the kernel once instead of once per panel: ViT-B/32's
// batch-1 products with K = 768 measured ~80 GFLOP/s on the 6 x 16 AVX2 kernel and ~100-115 with
// this one (Zen 4, which runs 512-bit FMAs at the 256-bit rate: the gain is fewer instructions and
// passes, not wider arithmetic). The packed GEMM stays on the AVX2 kernel, already near the peak.
#define GLIMPSE_AVX512 __attribute__((target("avx512f,avx2,fma")))

template <int P>
GLIMPSE_AVX512 void rows_6x16p_avx512(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldp, float* c,
                                      int64_t ldc, float alpha, float beta) {
  __m512 acc[kAvxMR][P];
  for (int i = 0; i < kAvxMR; i++)
    for (int p = 0; p < P; p++) acc[i][p] = _mm512_setzero_ps();
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; k++) {
    __m512 bv[P];
    for (int p = 0; p < P; p++) bv[p] = _mm512_loadu_ps(b + p * ldp + 16 * k);
#pragma GCC unroll 6
    for (int i = 0; i < kAvxMR; i++) {
      const __m512 x = _mm512_set1_ps(a[i * lda + k]);
      for (int p = 0; p < P; p++) acc[i][p] = _mm512_fmadd_ps(x, bv[p], acc[i][p]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int i = 0; i < kAvxMR; i++)
    for (int p = 0; p < P; p++) {
      float* ci = c + i * ldc + 16 * p;
      __m512 v = _mm512_mul_ps(acc[i][p], va);
      if (beta != 0.0f) v = _mm512_fmadd_ps(vb, _mm512_loadu_ps(ci), v);
      _mm512_storeu_ps(ci, v);
    }
}

GLIMPSE_AVX512 void rows_kernel_avx512(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldp,
                                       int64_t panels, float* c, int64_t ldc, float alpha, float beta) {
  switch (panels) {
    case 3: return rows_6x16p_avx512<3>(kc, a, lda, b, ldp, c, ldc, alpha, beta);
    case 2: return rows_6x16p_avx512<2>(kc, a, lda, b, ldp, c, ldc, alpha, beta);
    default: return rows_6x16p_avx512<1>(kc, a, lda, b, ldp, c, ldc, alpha, beta);
  }
}

Kernels with_avx512(Kernels ks) {
  ks.rows_kernel = rows_kernel_avx512;
  ks.rows_panels = 3;
  return ks;
}
const Kernels kAvx512 = with_avx512(kAvx2);
#endif

const Kernels& kernels() {
#ifdef GLIMPSE_GEMM_X86
  if (cpu_has_avx512f()) return kAvx512;
  if (cpu_has_avx2_fma()) return kAvx2;
#endif
  return kPortable;
}

// Grow-only 64-byte aligned scratch, one per thread that calls sgemm; it holds the packing
// buffers of every thread working on that call, so a worker never allocates (and never throws).
struct Scratch {
  float* p = nullptr;
  size_t cap = 0;
  float* get(size_t n) {
    if (n > cap) {
      std::free(p);
      p = nullptr;
      cap = 0;
      size_t bytes = (n * sizeof(float) + 63) / 64 * 64;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p) throw std::bad_alloc();
      cap = n;
    }
    return p;
  }
  ~Scratch() { std::free(p); }
};
thread_local Scratch scratch;
// few_rows' packed A, apart from `scratch`: a thread that packs there for a call may be computing a
// part of another call whose buffers `scratch` holds (gemm_batched runs gemm_serial on the caller too).
thread_local Scratch few_scratch;

struct Operand {
  const float* p;
  int64_t rs, cs;
};

// The epilogue of a (sub-)problem and where its C sits in the whole C, whose coordinates the
// epilogue takes; without fn, nothing. A problem with an epilogue has a row-major C (csC == 1).
struct Epi {
  const GemmEpilogue* fn = nullptr;
  int64_t row0 = 0, col0 = 0;
  Epi at(int64_t rows, int64_t cols) const { return {fn, row0 + rows, col0 + cols}; }
  // The block of rows x cols at c, which is C(r, col) of this problem.
  void operator()(float* c, int64_t ldc, int64_t r, int64_t rows, int64_t col, int64_t cols) const {
    if (fn && rows > 0 && cols > 0) (*fn)(c, ldc, row0 + r, rows, col0 + col, cols);
  }
};

// Block sizes for a problem: the largest allowed, evened out so the last block is not a sliver.
struct Blocking {
  int64_t mc, nc, kc;
  Blocking(const Kernels& ks, int64_t M, int64_t N, int64_t K)
      : mc(ceil_div(ceil_div(M, ceil_div(M, kMaxMC)), ks.mr) * ks.mr),
        nc(ceil_div(ceil_div(N, ceil_div(N, kMaxNC)), ks.nr) * ks.nr),
        kc(ceil_div(K, ceil_div(K, kMaxKC))) {}
};

// Floats of packed A and of packed B that gemm_serial needs for any problem up to M x N x K
// (mc and nc are not monotonic in M and N, their bounds are), rounded to whole cache lines.
struct BufferSizes {
  int64_t a, b;
  BufferSizes(const Kernels& ks, int64_t M, int64_t N, int64_t K) {
    const int64_t kc = Blocking(ks, M, N, K).kc;
    a = ceil_div(std::min(ceil_div(M, ks.mr), ceil_div(kMaxMC, ks.mr)) * ks.mr * kc, 16) * 16;
    b = ceil_div(std::min(ceil_div(N, ks.nr), ceil_div(kMaxNC, ks.nr)) * ks.nr * kc, 16) * 16;
  }
};

void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t rsC, int64_t csC) {
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      float& c = C[i * rsC + j * csC];
      c = beta == 0.0f ? 0.0f : beta * c;
    }
}

// M == 1 (or N == 1, as the transposed product) without packing, when the matrix operand has a
// unit stride: then it is read once, straight from memory. Returns false when it does not apply.
bool gemv(const Kernels& ks, bool parallel, int64_t M, int64_t N, int64_t K, float alpha, Operand A, Operand B,
          float beta, float* C, int64_t rsC, int64_t csC, Epi epi) {
  if (N == 1 && M > 1) {  // C^T = B^T A^T; the epilogue takes row-major blocks, so it runs on the column after
    if (!gemv(ks, parallel, N, M, K, alpha, {B.p, B.cs, B.rs}, {A.p, A.cs, A.rs}, beta, C, csC, rsC, {})) return false;
    epi(C, rsC, 0, M, 0, 1);
    return true;
  }
  if (M != 1) return false;
  const bool rows = B.cs == 1, cols = !rows && B.rs == 1 && A.cs == 1;
  if (!rows && !cols) return false;
  constexpr int64_t kChunk = 64;  // columns per task, a multiple of the kernels' widths
  auto run = [&](int64_t c0, int64_t c1) {
    const int64_t j0 = c0 * kChunk, j1 = std::min(N, c1 * kChunk);
    if (rows)
      ks.gemv_rows(j1 - j0, K, alpha, A.p, A.cs, B.p + j0, B.rs, beta, C + j0 * csC, csC);
    else
      ks.gemv_cols(j1 - j0, K, alpha, A.p, B.p + j0 * B.cs, B.cs, beta, C + j0 * csC, csC);
    epi(C + j0, rsC, 0, 1, j0, j1 - j0);
  };
  const int64_t chunks = ceil_div(N, kChunk);
  if (parallel && double(N) * double(K) >= double(kParallelWork))
    parallel_for(chunks, std::max<int64_t>(1, kParallelWork / (kChunk * K)), run);
  else
    run(0, chunks);
  return true;
}

// Few rows of A (M <= kFewM, e.g. the tokens of one image) against B = W^T for a row-major weight
// W [N, K] (B.rs == 1), A's rows contiguous too. Each element of W is used M times only, so the
// product streams W from memory once and must not spend more on it than the multiply-adds: packing
// W (a transposition) would. The kernel is turned around instead, computing tiles of C^T = W A^T:
// groups of MR rows of W are its broadcast operand, read in place (a group stays in L1/L2 while the
// A panels pass it), and A^T is packed once per call into NR-row panels that all threads share.
// Rows of A past the last whole panel, and a last partial group of W, take dot products. The
// threads claim runs of groups; each fetches its next group's lines into L2 while computing one.
// A run's block of C^T is built in a per-thread scratch, whole tile rows at a time, and written to
// C once at the end of the run: tiles stored straight into C would scatter short pieces of rows a
// whole row of C apart (a multiple of 4 KB for N = 1024, 2048, 3072), which the stores pay for.
// GLIMPSE_GEMM_NO_SMALLM=1 turns the path off, to compare against the packed one.
constexpr int64_t kFewM = 64, kFewMinK = 512;
// K is cut into slices only when very long: whole rows of 3072 (A^T then in L3, a group in L2)
// measured faster than slices of 768 or 1024.
constexpr int64_t kFewKC = 4096;
constexpr int64_t kFewRunGroups = 8;  // groups of W rows per claim

bool few_rows_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("GLIMPSE_GEMM_NO_SMALLM");
    return !(e && e[0] == '1');
  }();
  return on;
}

// Prefetches into L2 part `part` of `parts` of the cache lines of `rows` rows of `len` floats, ld
// apart: each row is named by its first float and every 16th after it, clamped to its last.
void prefetch_rows(const float* src, int64_t ld, int64_t rows, int64_t len, int64_t part, int64_t parts) {
  const int64_t per_row = len / 16 + 1, total = rows * per_row;
  const int64_t t0 = total * part / parts, t1 = total * (part + 1) / parts;
  int64_t row = t0 / per_row, col = t0 % per_row;  // one division per call, not per line
  for (int64_t t = t0; t < t1; t++) {
    __builtin_prefetch(src + row * ld + std::min(16 * col, len - 1), 0, 2);
    if (++col == per_row) col = 0, row++;
  }
}

bool few_rows(const Kernels& ks, bool parallel, int64_t M, int64_t N, int64_t K, float alpha, Operand A, Operand B,
              float beta, float* C, int64_t rsC, int64_t csC, Epi epi) {
  if (M > kFewM || K < kFewMinK || B.rs != 1 || A.cs != 1 || !few_rows_enabled()) return false;
  const int64_t MR = ks.mr, NR = ks.nr;
  const int64_t kc = ceil_div(K, ceil_div(K, kFewKC));
  const int64_t slices = ceil_div(K, kc);
  const int64_t panels = M / NR;
  const int64_t groups = ceil_div(N, MR), runs = ceil_div(groups, kFewRunGroups);
  parallel = parallel && runs > 1 && double(M) * double(N) * double(K) >= double(kParallelWork);
  // A^T, slice by slice: panel t of slice s at apack + (s * panels + t) * NR * kc; then each
  // thread's block of C^T for a run: column j of C (in the run) at ct + j * ldt.
  const int64_t apack_size = ceil_div(std::max<int64_t>(1, slices * panels * NR * kc), 16) * 16;
  const int64_t ldt = ceil_div(M, 8) * 8, ct_size = ceil_div(kFewRunGroups * MR * ldt, 16) * 16;
  const int64_t slots = parallel ? num_threads() : 1;
  float* apack = few_scratch.get(static_cast<size_t>(apack_size + slots * ct_size));
  for (int64_t s = 0; s < slices; s++)
    for (int64_t t = 0; t < panels; t++)
      ks.pack_b(A.p + t * NR * A.rs + s * kc, A.rs, 1, NR, std::min(kc, K - s * kc), apack + (s * panels + t) * NR * kc);

  std::atomic<int64_t> next{0};
  auto work = [&](int64_t slot, int64_t) {
    float* ct = apack + apack_size + slot * ct_size;
    for (int64_t run; (run = next.fetch_add(1, std::memory_order_relaxed)) < runs;) {
      const int64_t g0 = run * kFewRunGroups, g1 = std::min(groups, g0 + kFewRunGroups);
      const int64_t j0 = g0 * MR, j1 = std::min(N, g1 * MR);
      for (int64_t s = 0; s < slices; s++) {
        const int64_t pc = s * kc, kn = std::min(kc, K - pc);
        const float beta_k = s == 0 ? 0.0f : 1.0f;  // later slices add to what the first wrote
        for (int64_t g = g0; g < g1; g++) {
          const int64_t n0 = g * MR, wrows = std::min(MR, N - n0);
          const float* w = B.p + n0 * B.cs + pc;  // row i of the group at w + i * B.cs
          float* cg = ct + (n0 - j0) * ldt;       // its columns of C^T
          // What comes next in this run: the next group, or the first one of the next slice.
          const int64_t gn = g + 1 < g1 ? g + 1 : g0, pn = g + 1 < g1 ? pc : pc + kc;
          const bool fetch = pn < K;
          const int64_t whole = wrows == MR ? panels : 0;  // A panels this group takes with the kernel
          const int64_t calls = ceil_div(whole, ks.rows_panels);  // of the kernel, then the dot products
          const int64_t units = calls + ceil_div(M - whole * NR, kDotMR);
          for (int64_t u = 0; u < units; u++) {
            if (fetch)
              prefetch_rows(B.p + gn * MR * B.cs + pn, B.cs, std::min(MR, N - gn * MR), std::min(kc, K - pn), u, units);
            if (u < calls) {
              const int64_t p0 = u * ks.rows_panels;
              ks.rows_kernel(kn, w, B.cs, apack + (s * panels + p0) * NR * kc, NR * kc, std::min(ks.rows_panels, whole - p0),
                             cg + p0 * NR, ldt, alpha, beta_k);
            } else {
              const int64_t r = whole * NR + (u - calls) * kDotMR;
              for (int64_t i = 0; i < wrows; i += kDotNR)
                ks.dot_tile(std::min(kDotMR, M - r), std::min(kDotNR, wrows - i), kn, A.p + r * A.rs + pc, A.rs,
                            w + i * B.cs, B.cs, alpha, beta_k, cg + i * ldt + r, 1, ldt);
            }
          }
        }
      }
      ks.store_columns(M, j1 - j0, ct, ldt, beta, C + j0 * csC, rsC, csC);
      epi(C + j0, rsC, 0, M, j0, j1 - j0);
    }
  };
  if (parallel)
    parallel_for(slots, 1, work);
  else
    work(0, 1);
  return true;
}

// The blocked algorithm on one thread; abuf and bbuf hold BufferSizes(ks, M, N, K).
void gemm_serial(const Kernels& ks, int64_t M, int64_t N, int64_t K, float alpha, Operand A, Operand B, float beta,
                 float* C, int64_t rsC, int64_t csC, float* abuf, float* bbuf, Epi epi) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, rsC, csC);
    epi(C, rsC, 0, M, 0, N);
    return;
  }
  if (gemv(ks, false, M, N, K, alpha, A, B, beta, C, rsC, csC, epi)) return;
  if (few_rows(ks, false, M, N, K, alpha, A, B, beta, C, rsC, csC, epi)) return;
  const int64_t MR = ks.mr, NR = ks.nr;
  const Blocking bl(ks, M, N, K);
  // With one or two row panels each element of B is used once or twice: then the kernel reads B's
  // rows where they are (when contiguous) rather than a packed copy; only a partial last panel is
  // packed. With more panels, packing wins: a panel read from rows a power-of-two apart thrashes L1.
  const bool direct_b = M <= 2 * MR && B.cs == 1;
  for (int64_t jc = 0; jc < N; jc += bl.nc) {
    const int64_t nc = std::min(bl.nc, N - jc);
    for (int64_t pc = 0; pc < K; pc += bl.kc) {
      const int64_t kc = std::min(bl.kc, K - pc);
      const float beta_k = pc == 0 ? beta : 1.0f;  // later slices add to what the first wrote
      for (int64_t j = direct_b ? nc / NR * NR : 0; j < nc; j += NR)
        ks.pack_b(B.p + pc * B.rs + (jc + j) * B.cs, B.cs, B.rs, std::min(NR, nc - j), kc, bbuf + j * kc);
      for (int64_t ic = 0; ic < M; ic += bl.mc) {
        const int64_t mc = std::min(bl.mc, M - ic);
        for (int64_t i = 0; i < mc; i += MR)
          ks.pack_a(A.p + (ic + i) * A.rs + pc * A.cs, A.rs, A.cs, std::min(MR, mc - i), kc, abuf + i * kc);
        for (int64_t j = 0; j < nc; j += NR) {
          const int64_t cols = std::min(NR, nc - j);
          const bool direct = direct_b && cols == NR;
          const float* bp = direct ? B.p + pc * B.rs + jc + j : bbuf + j * kc;
          const int64_t ldb = direct ? B.rs : NR;
          for (int64_t i = 0; i < mc; i += MR) {
            const float* ap = abuf + i * kc;
            const int64_t rows = std::min(MR, mc - i);
            float* c = C + (ic + i) * rsC + (jc + j) * csC;
            const KernelFn kernel = rows == MR ? ks.kernel : ks.kernel_rows[rows];
            if (kernel && cols == NR && csC == 1) {
              kernel(kc, ap, bp, ldb, c, rsC, alpha, beta_k);
            } else {
              alignas(64) float tile[kMaxTile];
              ks.kernel(kc, ap, bp, ldb, tile, NR, alpha, 0.0f);
              for (int64_t r = 0; r < rows; r++)
                for (int64_t s = 0; s < cols; s++) {
                  float& cv = c[r * rsC + s * csC];
                  cv = beta_k == 0.0f ? tile[r * NR + s] : tile[r * NR + s] + beta_k * cv;
                }
            }
          }
        }
        if (pc + kc == K) epi(C + ic * rsC + jc, rsC, ic, mc, jc, nc);  // this block of C is final
      }
    }
  }
}

// Threads split C into parts, by rows or by columns, and each computes its part on its own: packing
// the shared operand once per thread costs ~1% but leaves no barrier inside the product, which
// keeps the threads busy when other processes take the cores in turns. Rows are split when M >= N,
// so the operand packed twice (B) is the smaller one.
void gemm(const Kernels& ks, bool allow_parallel, int64_t M, int64_t N, int64_t K, float alpha, Operand A,
          Operand B, float beta, float* C, int64_t rsC, int64_t csC, Epi epi = {}) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, rsC, csC);
    epi(C, rsC, 0, M, 0, N);
    return;
  }
  if (gemv(ks, allow_parallel, M, N, K, alpha, A, B, beta, C, rsC, csC, epi)) return;
  if (few_rows(ks, allow_parallel, M, N, K, alpha, A, B, beta, C, rsC, csC, epi)) return;
  const int64_t threads =
      allow_parallel && double(M) * double(N) * double(K) >= double(kParallelWork) ? num_threads() : 1;
  const int64_t m_units = ceil_div(M, ks.mr), n_units = ceil_div(N, ks.nr);
  const bool by_rows = (M >= N && m_units >= threads) || n_units < threads;
  const int64_t units = by_rows ? m_units : n_units;
  const int64_t parts = std::min(threads, units);
  const int64_t unit = by_rows ? ks.mr : ks.nr;
  const int64_t part_max = ceil_div(units, parts) * unit;
  const BufferSizes bs(ks, by_rows ? std::min(M, part_max) : M, by_rows ? N : std::min(N, part_max), K);
  const int64_t slot = bs.a + bs.b;
  float* buf = scratch.get(static_cast<size_t>(slot * parts));

  std::atomic<int64_t> next{0};
  auto work = [&](int64_t s, int64_t) {
    float* abuf = buf + s * slot;
    for (int64_t p; (p = next.fetch_add(1, std::memory_order_relaxed)) < parts;) {
      const int64_t lo = units * p / parts * unit, hi = std::min(by_rows ? M : N, units * (p + 1) / parts * unit);
      if (by_rows)
        gemm_serial(ks, hi - lo, N, K, alpha, {A.p + lo * A.rs, A.rs, A.cs}, B, beta, C + lo * rsC, rsC, csC, abuf,
                    abuf + bs.a, epi.at(lo, 0));
      else
        gemm_serial(ks, M, hi - lo, K, alpha, A, {B.p + lo * B.cs, B.rs, B.cs}, beta, C + lo * csC, rsC, csC, abuf,
                    abuf + bs.a, epi.at(0, lo));
    }
  };
  if (parts > 1)
    parallel_for(parts, 1, work);
  else
    work(0, 1);
}

void gemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, Operand A, int64_t sA, Operand B,
                  int64_t sB, float beta, float* C, int64_t rsC, int64_t csC, int64_t sC) {
  if (batch <= 0) return;
  const Kernels& ks = kernels();
  const double work = double(M) * double(N) * double(std::max<int64_t>(K, 1));
  const int64_t threads = num_threads();
  // Whole problems per thread when they share out evenly or are too small to split well;
  // otherwise one problem at a time, split across the threads.
  const bool across = batch > 1 && threads > 1 && double(batch) * work >= double(kParallelWork) &&
                      (work < 128.0 * 128 * 128 || batch % threads == 0 || batch >= 4 * threads);
  if (!across) {
    for (int64_t p = 0; p < batch; p++)
      gemm(ks, true, M, N, K, alpha, {A.p + p * sA, A.rs, A.cs}, {B.p + p * sB, B.rs, B.cs}, beta, C + p * sC, rsC,
           csC);
    return;
  }
  const BufferSizes bs(ks, M, N, K);
  const int64_t slot = bs.a + bs.b;
  float* buf = scratch.get(static_cast<size_t>(slot * threads));
  std::atomic<int64_t> next{0};
  parallel_for(threads, 1, [&](int64_t s, int64_t) {
    float* abuf = buf + s * slot;
    for (int64_t p; (p = next.fetch_add(1, std::memory_order_relaxed)) < batch;)
      gemm_serial(ks, M, N, K, alpha, {A.p + p * sA, A.rs, A.cs}, {B.p + p * sB, B.rs, B.cs}, beta, C + p * sC, rsC,
                  csC, abuf, abuf + bs.a, {});
  });
}

// ---- N-API ----

constexpr int64_t kMaxDim = int64_t(1) << 40;

// Throws unless every element the view x of these sizes can reach lies inside its array.
void check_reach(const StridedArg& x, const std::vector<int64_t>& sizes, const char* what) {
  const int64_t offset = x.offset;
  const Ints& strides = x.strides;
  if (strides.size() != sizes.size())
    throw ArgError(std::string(what) + ": expected " + std::to_string(sizes.size()) + " strides");
  for (int64_t n : sizes)
    if (n == 0) return;  // nothing is read or written
  const int64_t len = static_cast<int64_t>(x.data.length);
  const std::string err = std::string(what) + ": view (offset " + std::to_string(offset) +
                          ") reaches outside its array of " + std::to_string(len) + " elements";
  if (offset < 0 || offset >= len) throw ArgError(err);
  int64_t lo = offset, hi = offset;
  for (size_t d = 0; d < sizes.size(); d++) {
    const int64_t n = sizes[d], s = strides[d];
    if (n == 1 || s == 0) continue;
    const int64_t mag = s < 0 ? -s : s;
    if (mag >= len || n - 1 > (len - 1) / mag) throw ArgError(err);
    if (s > 0)
      hi += (n - 1) * s;
    else
      lo += (n - 1) * s;
  }
  if (lo < 0 || hi >= len) throw ArgError(err);
}

void check_sizes(std::initializer_list<int64_t> sizes) {
  for (int64_t d : sizes)
    if (d < 0 || d > kMaxDim) throw ArgError("sizes must be in [0, 2^40]");
}

// matmul(a, aOffset, aStrides, b, bOffset, bStrides, out, batch, M, N, K): for p < batch,
// out[p] = a[p] @ b[p] with a: [batch, M, K], b: [batch, K, N] read through offsets and
// [batch, row, column] strides (0 broadcasts), out dense [batch, M, N] from index 0. All float32.
struct MatmulArgs {
  StridedArg a, b;
  Array out;
  int64_t batch, M, N, K;
};
const Signature<MatmulArgs> kMatmul{"matmul", {
    arg::f32_strided("a", &MatmulArgs::a),
    arg::f32_strided("b", &MatmulArgs::b),
    arg::f32("out", &MatmulArgs::out),
    arg::integer("batch", &MatmulArgs::batch),
    arg::integer("M", &MatmulArgs::M),
    arg::integer("N", &MatmulArgs::N),
    arg::integer("K", &MatmulArgs::K),
}};

napi_value matmul(napi_env env, MatmulArgs& args) {
  const StridedArg &a = args.a, &b = args.b;
  const Array& out = args.out;
  const Ints &as = a.strides, &bs = b.strides;
  const int64_t batch = args.batch, M = args.M, N = args.N, K = args.K;
  check_sizes({batch, M, N, K});
  check_reach(a, {batch, M, K}, "a");
  check_reach(b, {batch, K, N}, "b");
  if (batch > 0 && M > 0 && N > 0) {
    const int64_t len = static_cast<int64_t>(out.length);
    if (M > len / N || batch > len / (M * N)) throw ArgError("out is shorter than batch * M * N");
  }
  const bool reads = batch > 0 && M > 0 && N > 0 && K > 0;
  gemm_batched(batch, M, N, K, 1.0f, {a.data.f32() + (reads ? a.offset : 0), as[1], as[2]}, as[0],
               {b.data.f32() + (reads ? b.offset : 0), bs[1], bs[2]}, bs[0], 0.0f, out.f32(), N, 1, M * N);
  return undefined(env);
}

// sgemm(a, aOffset, [rsA, csA], b, bOffset, [rsB, csB], c, cOffset, [rsC, csC], M, N, K, alpha, beta):
// the C++ sgemm_strided on typed arrays, c = alpha * a @ b + beta * c, for tests of the API that
// other kernels call. c's strides must be positive and keep its elements apart.
struct SgemmArgs {
  StridedArg a, b, c;
  int64_t M, N, K;
  double alpha, beta;
};
const Signature<SgemmArgs> kSgemm{"sgemm", {
    arg::f32_strided("a", &SgemmArgs::a),
    arg::f32_strided("b", &SgemmArgs::b),
    arg::f32_strided("c", &SgemmArgs::c),
    arg::integer("M", &SgemmArgs::M),
    arg::integer("N", &SgemmArgs::N),
    arg::integer("K", &SgemmArgs::K),
    arg::number("alpha", &SgemmArgs::alpha),
    arg::number("beta", &SgemmArgs::beta),
}};

napi_value sgemm_js(napi_env env, SgemmArgs& args) {
  const StridedArg &a = args.a, &b = args.b, &c = args.c;
  const Ints &as = a.strides, &bs = b.strides, &cs = c.strides;
  const int64_t M = args.M, N = args.N, K = args.K;
  const float alpha = static_cast<float>(args.alpha);
  const float beta = static_cast<float>(args.beta);
  check_sizes({M, N, K});
  check_reach(a, {M, K}, "a");
  check_reach(b, {K, N}, "b");
  check_reach(c, {M, N}, "c");
  {
    // Each element of c must have its own address: the larger stride steps over the other axis.
    std::vector<std::pair<int64_t, int64_t>> axes;  // (stride, size) of the axes longer than 1
    if (M > 1) axes.push_back({cs[0], M});
    if (N > 1) axes.push_back({cs[1], N});
    std::sort(axes.begin(), axes.end());
    bool apart = axes.empty() || axes[0].first > 0;
    if (apart && axes.size() == 2) apart = axes[1].first / axes[0].first >= axes[0].second;
    if (!apart) throw ArgError("c: strides must be positive and keep its elements apart");
  }
  const bool reads = M > 0 && N > 0 && K > 0;
  const bool writes = M > 0 && N > 0;
  gemm(kernels(), true, M, N, K, alpha, {a.data.f32() + (reads ? a.offset : 0), as[0], as[1]},
       {b.data.f32() + (reads ? b.offset : 0), bs[0], bs[1]}, beta, c.data.f32() + (writes ? c.offset : 0), cs[0],
       cs[1]);
  return undefined(env);
}

}  // namespace

void sgemm_strided(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rsA, int64_t csA,
                   const float* B, int64_t rsB, int64_t csB, float beta, float* C, int64_t rsC, int64_t csC) {
  gemm(kernels(), true, M, N, K, alpha, {A, rsA, csA}, {B, rsB, csB}, beta, C, rsC, csC);
}

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm(kernels(), true, M, N, K, alpha, {A, transA ? 1 : lda, transA ? lda : 1},
       {B, transB ? 1 : ldb, transB ? ldb : 1}, beta, C, ldc, 1);
}

void sgemm_epilogue(int64_t M, int64_t N, int64_t K, const float* A, int64_t rsA, int64_t csA, const float* B,
                    int64_t rsB, int64_t csB, float* C, int64_t ldc, const GemmEpilogue& epilogue) {
  gemm(kernels(), true, M, N, K, 1.0f, {A, rsA, csA}, {B, rsB, csB}, 0.0f, C, ldc, 1, {&epilogue});
}

void sgemm_batched(bool transA, bool transB, int64_t batch, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, int64_t strideA, const float* B, int64_t ldb, int64_t strideB,
                   float beta, float* C, int64_t ldc, int64_t strideC) {
  gemm_batched(batch, M, N, K, alpha, {A, transA ? 1 : lda, transA ? lda : 1}, strideA,
               {B, transB ? 1 : ldb, transB ? ldb : 1}, strideB, beta, C, ldc, 1, strideC);
}

void register_gemm(napi_env env, napi_value exports) {
  export_kernel<kMatmul, matmul>(env, exports);
  export_kernel<kSgemm, sgemm_js>(env, exports);
}

}  // namespace glimpse
