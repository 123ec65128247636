// Packed, cache-blocked SGEMM in the style of GotoBLAS / BLIS.
//
// For each NC-wide column panel of op(B) and each KC-deep slice of K, the slice of op(B) is packed
// into NR-wide micro-panels (k-major), shared by all threads. Threads then take row blocks of op(A)
// from a shared counter, pack each into MR-row micro-panels in their own buffer, and run the
// MR x NR micro-kernel over every (B micro-panel, A micro-panel) pair. One packed B micro-panel
// (KC x NR) stays in L1 while the kernel walks down the A block held in L2; the B slice sits in L3.
// Packing makes every kernel load contiguous and aligned whatever the operands' strides, and
// zero-fills partial panels so the kernel always computes whole tiles.

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
// c[i * rsc + j] = alpha * sum_k a[k * MR + i] * b[k * NR + j] (+ beta * c[i * rsc + j] unless beta == 0).
using KernelFn = void (*)(int64_t kc, const float* a, const float* b, float* c, int64_t rsc, float alpha,
                          float beta);

struct Kernels {
  int64_t mr, nr;
  KernelFn kernel;
  PackFn pack_a, pack_b;
};

// Blocking. KC x NR of B (16 KB at NR = 16) fills half of a 32 KB L1d; MC x KC of A (~150 KB) fits
// L2 with room for the C tiles; KC x NC of B (4 MB) fits the shared L3.
constexpr int64_t kMaxKC = 256;
constexpr int64_t kMaxMC = 144;
constexpr int64_t kMaxNC = 4096;
constexpr int64_t kMaxTile = 128;  // >= MR * NR of every kernel
// Below this many multiply-adds a call stays on one thread: waking the pool costs more than it saves.
constexpr int64_t kParallelWork = 48 * 48 * 48;

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
void kernel_portable(int64_t kc, const float* a, const float* b, float* c, int64_t rsc, float alpha, float beta) {
  float acc[MR][NR] = {};
  for (int64_t k = 0; k < kc; k++, a += MR, b += NR)
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

const Kernels kPortable = {kPortableMR, kPortableNR, kernel_portable<kPortableMR, kPortableNR>,
                           pack_portable<kPortableMR>, pack_portable<kPortableNR>};

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

// 6 x 16 tile in 12 ymm accumulators; per k: two aligned loads of B, six broadcasts of A, 12 FMAs.
GLIMPSE_AVX2 void kernel_6x16_avx2(int64_t kc, const float* a, const float* b, float* c, int64_t rsc, float alpha,
                                   float beta) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int i = 0; i < 6; i++) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * rsc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * rsc + 15), _MM_HINT_T0);
  }
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; k++) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 x;
    x = _mm256_broadcast_ss(a + 0);
    c00 = _mm256_fmadd_ps(x, b0, c00);
    c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(x, b0, c10);
    c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(x, b0, c20);
    c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(x, b0, c30);
    c31 = _mm256_fmadd_ps(x, b1, c31);
    x = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(x, b0, c40);
    c41 = _mm256_fmadd_ps(x, b1, c41);
    x = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(x, b0, c50);
    c51 = _mm256_fmadd_ps(x, b1, c51);
    a += 6;
    b += 16;
  }
  const __m256 va = _mm256_set1_ps(alpha);
  store_row_avx2(va, beta, c, c00, c01);
  store_row_avx2(va, beta, c + rsc, c10, c11);
  store_row_avx2(va, beta, c + 2 * rsc, c20, c21);
  store_row_avx2(va, beta, c + 3 * rsc, c30, c31);
  store_row_avx2(va, beta, c + 4 * rsc, c40, c41);
  store_row_avx2(va, beta, c + 5 * rsc, c50, c51);
}

const Kernels kAvx2 = {kAvxMR, kAvxNR, kernel_6x16_avx2, pack6_avx2, pack16_avx2};
#endif

const Kernels& kernels() {
#ifdef GLIMPSE_GEMM_X86
  if (cpu_has_avx2_fma()) return kAvx2;
#endif
  return kPortable;
}

// Grow-only 64-byte aligned scratch, one per thread that calls sgemm.
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
thread_local Scratch scratch_a, scratch_b;

void scale_c(int64_t M, int64_t N, float beta, float* C, int64_t rsC, int64_t csC) {
  for (int64_t i = 0; i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      float& c = C[i * rsC + j * csC];
      c = beta == 0.0f ? 0.0f : beta * c;
    }
}

void gemm(const Kernels& ks, bool allow_parallel, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
          int64_t rsA, int64_t csA, const float* B, int64_t rsB, int64_t csB, float beta, float* C, int64_t rsC,
          int64_t csC) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C, rsC, csC);
    return;
  }
  const int64_t MR = ks.mr, NR = ks.nr;
  const int64_t kc_max = ceil_div(K, ceil_div(K, kMaxKC));  // equal slices: no thin last slice
  const int64_t nc_max = ceil_div(ceil_div(N, ceil_div(N, kMaxNC)), NR) * NR;
  const int64_t threads = allow_parallel && M * N * K >= kParallelWork ? num_threads() : 1;

  // Work items: row blocks (a multiple of the thread count, so equal shares), times column parts
  // when there are fewer row blocks than threads.
  const int64_t units = ceil_div(M, MR);
  int64_t m_items = ceil_div(units, kMaxMC / MR);
  if (threads > 1) m_items = std::min(units, ceil_div(m_items, threads) * threads);
  const int64_t n_parts = m_items < threads ? std::min(ceil_div(threads, m_items), ceil_div(nc_max, NR)) : 1;
  const int64_t items = m_items * n_parts;
  const int64_t workers = std::min(threads, items);
  const int64_t a_slot = ceil_div(ceil_div(units, m_items) * MR * kc_max, 16) * 16;

  float* bbuf = scratch_b.get(static_cast<size_t>(nc_max * kc_max));
  float* abuf = scratch_a.get(static_cast<size_t>(a_slot * workers));

  for (int64_t jc = 0; jc < N; jc += nc_max) {
    const int64_t nc = std::min(nc_max, N - jc);
    const int64_t npanels = ceil_div(nc, NR);
    for (int64_t pc = 0; pc < K; pc += kc_max) {
      const int64_t kc = std::min(kc_max, K - pc);
      const float beta_k = pc == 0 ? beta : 1.0f;

      auto pack_b = [&](int64_t q0, int64_t q1) {
        for (int64_t q = q0; q < q1; q++)
          ks.pack_b(B + pc * rsB + (jc + q * NR) * csB, csB, rsB, std::min(NR, nc - q * NR), kc, bbuf + q * NR * kc);
      };
      if (workers > 1)
        parallel_for(npanels, std::max<int64_t>(1, 8192 / (kc * NR)), pack_b);
      else
        pack_b(0, npanels);

      std::atomic<int64_t> next{0};
      auto work = [&](int64_t slot, int64_t) {
        float* ab = abuf + slot * a_slot;
        int64_t packed = -1;
        for (;;) {
          const int64_t it = next.fetch_add(1, std::memory_order_relaxed);
          if (it >= items) break;
          const int64_t im = it / n_parts, jn = it % n_parts;
          const int64_t i0 = units * im / m_items * MR, i1 = std::min(M, units * (im + 1) / m_items * MR);
          if (im != packed) {
            for (int64_t i = i0; i < i1; i += MR)
              ks.pack_a(A + i * rsA + pc * csA, rsA, csA, std::min(MR, i1 - i), kc, ab + (i - i0) * kc);
            packed = im;
          }
          const int64_t q0 = npanels * jn / n_parts, q1 = npanels * (jn + 1) / n_parts;
          for (int64_t q = q0; q < q1; q++) {
            const float* bp = bbuf + q * NR * kc;
            const int64_t j = jc + q * NR, cols = std::min(NR, N - j);
            for (int64_t i = i0; i < i1; i += MR) {
              const float* ap = ab + (i - i0) * kc;
              const int64_t rows = std::min(MR, i1 - i);
              float* c = C + i * rsC + j * csC;
              if (rows == MR && cols == NR && csC == 1) {
                ks.kernel(kc, ap, bp, c, rsC, alpha, beta_k);
              } else {
                alignas(64) float tile[kMaxTile];
                ks.kernel(kc, ap, bp, tile, NR, alpha, 0.0f);
                for (int64_t r = 0; r < rows; r++)
                  for (int64_t s = 0; s < cols; s++) {
                    float& cv = c[r * rsC + s * csC];
                    cv = beta_k == 0.0f ? tile[r * NR + s] : tile[r * NR + s] + beta_k * cv;
                  }
              }
            }
          }
        }
      };
      if (workers > 1)
        parallel_for(workers, 1, work);
      else
        work(0, 1);
    }
  }
}

void gemm_batched(int64_t batch, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rsA,
                  int64_t csA, int64_t sA, const float* B, int64_t rsB, int64_t csB, int64_t sB, float beta, float* C,
                  int64_t rsC, int64_t csC, int64_t sC) {
  if (batch <= 0) return;
  const Kernels& ks = kernels();
  const int64_t work = M * N * std::max<int64_t>(K, 1);
  const int64_t threads = num_threads();
  // Whole problems per thread when they split evenly or are too small to share well; otherwise
  // one at a time, each spread over the pool.
  const bool across = batch > 1 && threads > 1 &&
                      (work < 128 * 128 * 128 || batch % threads == 0 || batch >= 4 * threads);
  auto one = [&](int64_t p, bool parallel) {
    gemm(ks, parallel, M, N, K, alpha, A + p * sA, rsA, csA, B + p * sB, rsB, csB, beta, C + p * sC, rsC, csC);
  };
  if (across) {
    parallel_for(batch, std::max<int64_t>(1, kParallelWork / std::max<int64_t>(work, 1)), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; p++) one(p, false);
    });
  } else {
    for (int64_t p = 0; p < batch; p++) one(p, true);
  }
}

// ---- N-API ----

constexpr int64_t kMaxDim = int64_t(1) << 40;

// Throws unless every element a view of these sizes and strides can reach lies inside arr.
void check_reach(const Array& arr, int64_t offset, const std::vector<int64_t>& sizes,
                 const std::vector<int64_t>& strides, const char* what) {
  if (strides.size() != sizes.size())
    throw ArgError(std::string(what) + ": expected " + std::to_string(sizes.size()) + " strides");
  for (int64_t n : sizes)
    if (n == 0) return;  // nothing is read or written
  const int64_t len = static_cast<int64_t>(arr.length);
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

Array f32_arg(napi_env env, napi_value v, size_t pos) {
  Array a = array_arg(env, v, pos);
  if (a.type != napi_float32_array) throw ArgError("argument " + std::to_string(pos) + " must be a Float32Array");
  return a;
}

// matmul(a, aOffset, aStrides, b, bOffset, bStrides, out, batch, M, N, K): for p < batch,
// out[p] = a[p] @ b[p] with a: [batch, M, K], b: [batch, K, N] read through offsets and
// [batch, row, column] strides (0 broadcasts), out dense [batch, M, N] from index 0. All float32.
GLIMPSE_KERNEL(matmul) {
  auto v = args(env, info, 11);
  Array a = f32_arg(env, v[0], 0), b = f32_arg(env, v[3], 3), out = f32_arg(env, v[6], 6);
  const int64_t a_off = int_arg(env, v[1], 1), b_off = int_arg(env, v[4], 4);
  const std::vector<int64_t> as = ints_arg(env, v[2], 2), bs = ints_arg(env, v[5], 5);
  const int64_t batch = int_arg(env, v[7], 7), M = int_arg(env, v[8], 8), N = int_arg(env, v[9], 9),
                K = int_arg(env, v[10], 10);
  check_sizes({batch, M, N, K});
  check_reach(a, a_off, {batch, M, K}, as, "a");
  check_reach(b, b_off, {batch, K, N}, bs, "b");
  if (batch > 0 && M > 0 && N > 0) {
    const int64_t len = static_cast<int64_t>(out.length);
    if (M > len / N || batch > len / (M * N)) throw ArgError("out is shorter than batch * M * N");
  }
  const bool reads = batch > 0 && M > 0 && N > 0 && K > 0;
  gemm_batched(batch, M, N, K, 1.0f, a.f32() + (reads ? a_off : 0), as[1], as[2], as[0],
               b.f32() + (reads ? b_off : 0), bs[1], bs[2], bs[0], 0.0f, out.f32(), N, 1, M * N);
  return undefined(env);
}

// sgemm(a, aOffset, [rsA, csA], b, bOffset, [rsB, csB], c, cOffset, [rsC, csC], M, N, K, alpha, beta):
// the C++ sgemm_strided on typed arrays, c = alpha * a @ b + beta * c, for tests of the API that
// other kernels call. c's strides must be positive and keep its elements apart.
GLIMPSE_KERNEL(sgemm_js) {
  auto v = args(env, info, 14);
  Array a = f32_arg(env, v[0], 0), b = f32_arg(env, v[3], 3), c = f32_arg(env, v[6], 6);
  const int64_t a_off = int_arg(env, v[1], 1), b_off = int_arg(env, v[4], 4), c_off = int_arg(env, v[7], 7);
  const std::vector<int64_t> as = ints_arg(env, v[2], 2), bs = ints_arg(env, v[5], 5), cs = ints_arg(env, v[8], 8);
  const int64_t M = int_arg(env, v[9], 9), N = int_arg(env, v[10], 10), K = int_arg(env, v[11], 11);
  const float alpha = static_cast<float>(number_arg(env, v[12], 12)), beta = static_cast<float>(number_arg(env, v[13], 13));
  check_sizes({M, N, K});
  check_reach(a, a_off, {M, K}, as, "a");
  check_reach(b, b_off, {K, N}, bs, "b");
  check_reach(c, c_off, {M, N}, cs, "c");
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
  gemm(kernels(), true, M, N, K, alpha, a.f32() + (reads ? a_off : 0), as[0], as[1], b.f32() + (reads ? b_off : 0),
       bs[0], bs[1], beta, c.f32() + (writes ? c_off : 0), cs[0], cs[1]);
  return undefined(env);
}

}  // namespace

void sgemm_strided(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rsA, int64_t csA,
                   const float* B, int64_t rsB, int64_t csB, float beta, float* C, int64_t rsC, int64_t csC) {
  gemm(kernels(), true, M, N, K, alpha, A, rsA, csA, B, rsB, csB, beta, C, rsC, csC);
}

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
           const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  gemm(kernels(), true, M, N, K, alpha, A, transA ? 1 : lda, transA ? lda : 1, B, transB ? 1 : ldb,
       transB ? ldb : 1, beta, C, ldc, 1);
}

void sgemm_batched(bool transA, bool transB, int64_t batch, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, int64_t strideA, const float* B, int64_t ldb, int64_t strideB,
                   float beta, float* C, int64_t ldc, int64_t strideC) {
  gemm_batched(batch, M, N, K, alpha, A, transA ? 1 : lda, transA ? lda : 1, strideA, B, transB ? 1 : ldb,
               transB ? ldb : 1, strideB, beta, C, ldc, 1, strideC);
}

void register_gemm(napi_env env, napi_value exports) {
  export_fn(env, exports, "matmul", matmul);
  export_fn(env, exports, "sgemm", sgemm_js);
}

}  // namespace glimpse
