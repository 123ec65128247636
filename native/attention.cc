// Fused scaled dot-product attention: softmax(scale * q k^T + masks) v, forward and backward.
//
// The forward pass works on blocks of query rows of one (batch, head), in parallel. A block's
// scores live in a per-thread [rows, Tk] scratch block; the causal and key-padding masks are
// applied to it as the softmax runs, so no [Tq, Tk] mask is ever built, and a causal block only
// computes the keys its rows can see. The backward pass takes one (batch, head) per thread (dK
// and dV sum over all its query rows) and recomputes the probabilities block by block from q, k
// and the saved row log-sum-exp. A row whose keys are all masked gets output 0, lse -inf and zero
// gradients, as in the reference backend.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <vector>

#include "common.h"
#include "vecmath.h"

namespace glimpse {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ---------------------------------------------------------------------------------------------
// Small matrix products. C[M, N] = alpha * A B (+ C when accumulate), where A(i, k) sits at
// A[i * rsa + k * csa] (so A may be read transposed), and B, C are row-major with unit column
// stride. The attention blocks are small (tens of rows, K = head size or a block of keys) and B
// is always unit-stride, so a register-blocked kernel without packing serves them better than
// the packed SGEMM of gemm.h (measured 10-20% faster at T = 50 and 577, D = 64).

struct MatA {
  const float* p;
  ptrdiff_t rs, cs;
};

void mm_portable(int M, int N, int K, float alpha, MatA A, const float* B, ptrdiff_t ldb, bool accumulate,
                 float* C, ptrdiff_t ldc) {
  for (int i = 0; i < M; i++) {
    float* c = C + i * ldc;
    if (!accumulate) std::fill(c, c + N, 0.0f);
    for (int k = 0; k < K; k++) {
      const float a = alpha * A.p[i * A.rs + k * A.cs];
      const float* b = B + k * ldb;
      for (int j = 0; j < N; j++) c[j] += a * b[j];
    }
  }
}

#ifdef GLIMPSE_X86

// An MR x (8 * NV) tile of C, accumulators in registers (the unroll pragmas let the compiler
// keep the arrays in ymm registers). Masked: lanes beyond m0 / m1 are neither read nor written.
template <int MR, int NV, bool Masked>
GLIMPSE_AVX2 void mm_tile_avx2(int K, float alpha, const float* a, ptrdiff_t rsa, ptrdiff_t csa, const float* b,
                               ptrdiff_t ldb, bool accumulate, float* c, ptrdiff_t ldc, __m256i m0, __m256i m1) {
  __m256 acc[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++)
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) acc[r][v] = _mm256_setzero_ps();
  for (int k = 0; k < K; k++) {
    const float* bk = b + k * ldb;
    __m256 bv[NV];
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++)
      bv[v] = Masked ? _mm256_maskload_ps(bk + 8 * v, v ? m1 : m0) : _mm256_loadu_ps(bk + 8 * v);
    const float* ak = a + k * csa;
#pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
      const __m256 x = _mm256_broadcast_ss(ak + r * rsa);
#pragma GCC unroll 2
      for (int v = 0; v < NV; v++) acc[r][v] = _mm256_fmadd_ps(x, bv[v], acc[r][v]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha);
#pragma GCC unroll 8
  for (int r = 0; r < MR; r++) {
#pragma GCC unroll 2
    for (int v = 0; v < NV; v++) {
      float* cr = c + r * ldc + 8 * v;
      const __m256i m = v ? m1 : m0;
      __m256 x = _mm256_mul_ps(acc[r][v], va);
      if (accumulate) x = _mm256_add_ps(x, Masked ? _mm256_maskload_ps(cr, m) : _mm256_loadu_ps(cr));
      if (Masked)
        _mm256_maskstore_ps(cr, m, x);
      else
        _mm256_storeu_ps(cr, x);
    }
  }
}

using TileFn = void (*)(int, float, const float*, ptrdiff_t, ptrdiff_t, const float*, ptrdiff_t, bool, float*,
                        ptrdiff_t, __m256i, __m256i);

template <int MR>
TileFn tile_for(int nv, bool masked) {
  if (nv == 2) return masked ? mm_tile_avx2<MR, 2, true> : mm_tile_avx2<MR, 2, false>;
  return masked ? mm_tile_avx2<MR, 1, true> : mm_tile_avx2<MR, 1, false>;
}

TileFn tile_for(int rows, int nv, bool masked) {
  switch (rows) {
    case 1: return tile_for<1>(nv, masked);
    case 2: return tile_for<2>(nv, masked);
    case 3: return tile_for<3>(nv, masked);
    case 4: return tile_for<4>(nv, masked);
    case 5: return tile_for<5>(nv, masked);
    default: return tile_for<6>(nv, masked);
  }
}

GLIMPSE_AVX2 void mm_avx2(int M, int N, int K, float alpha, MatA A, const float* B, ptrdiff_t ldb, bool accumulate,
                          float* C, ptrdiff_t ldc) {
  // K in slices of at most 256 and, within a slice, column panels outside and row blocks inside:
  // one 16-column panel of B (at most 16 KiB) stays in L1 while every row block of A passes it.
  // A narrow last panel (N not a multiple of 16) uses one vector when 8 columns cover it.
  const int slices = std::max(1, (K + 255) / 256);
  const int kc_max = (K + slices - 1) / slices;
  for (int k0 = 0, sl = 0; sl < slices; sl++, k0 += kc_max) {
    const int kc = std::min(kc_max, K - k0);
    const bool acc = accumulate || k0 > 0;
    const float* a0 = A.p + k0 * A.cs;
    const float* b0 = B + k0 * ldb;
    for (int j = 0; j < N; j += 16) {
      const int width = std::min(16, N - j), nv = width > 8 ? 2 : 1;
      const bool masked = width != 8 * nv;
      const __m256i m0 = tail_mask256(nv == 1 ? width : 8), m1 = tail_mask256(nv == 2 ? width - 8 : 0);
      const TileFn full = tile_for(6, nv, masked);
      for (int i = 0; i < M; i += 6) {
        const TileFn fn = M - i >= 6 ? full : tile_for(M - i, nv, masked);
        fn(kc, alpha, a0 + i * A.rs, A.rs, A.cs, b0 + j, ldb, acc, C + i * ldc + j, ldc, m0, m1);
      }
    }
  }
}

#endif  // GLIMPSE_X86

void mm(int M, int N, int K, float alpha, MatA A, const float* B, ptrdiff_t ldb, bool accumulate, float* C,
        ptrdiff_t ldc) {
  if (M <= 0 || N <= 0) return;
#ifdef GLIMPSE_X86
  if (cpu_has_avx2_fma()) return mm_avx2(M, N, K, alpha, A, B, ldb, accumulate, C, ldc);
#endif
  mm_portable(M, N, K, alpha, A, B, ldb, accumulate, C, ldc);
}

// ---------------------------------------------------------------------------------------------
// Row operations of the softmax.

#ifdef GLIMPSE_X86

// The row's maximum, or NaN if it holds one (max_ps would drop it, as std::max does).
GLIMPSE_AVX2 float row_max_avx2(const float* s, int n) {
  __m256 m = _mm256_set1_ps(kNegInf), nan = _mm256_setzero_ps();
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 x = _mm256_loadu_ps(s + j);
    m = _mm256_max_ps(m, x);
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
  }
  float r = _mm256_movemask_ps(nan) ? std::numeric_limits<float>::quiet_NaN() : hmax256_ps(m);
  for (; j < n; j++) r = s[j] != s[j] ? s[j] : std::max(r, s[j]);
  return r;
}

// s[j] = exp(s[j] - shift) for j < n, shift being the row max (masked tail lanes are discarded);
// returns the sum of the results.
GLIMPSE_AVX2 float exp_shift_avx2(float* s, int n, float shift) {
  const __m256 vs = _mm256_set1_ps(shift);
  __m256 sum = _mm256_setzero_ps();
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 e = exp_nonpos256_ps(_mm256_sub_ps(_mm256_loadu_ps(s + j), vs));
    _mm256_storeu_ps(s + j, e);
    sum = _mm256_add_ps(sum, e);
  }
  if (j < n) {
    const __m256i m = tail_mask256(n - j);
    const __m256 e = _mm256_and_ps(exp_nonpos256_ps(_mm256_sub_ps(_mm256_maskload_ps(s + j, m), vs)), _mm256_castsi256_ps(m));
    _mm256_maskstore_ps(s + j, m, e);
    sum = _mm256_add_ps(sum, e);
  }
  return hsum256_ps(sum);
}

// ds[j] = p[j] * (ds[j] - sum_j p[j] ds[j]): the softmax backward for one row, in place on ds.
GLIMPSE_AVX2 void softmax_grad_row_avx2(const float* p, float* ds, int n) {
  __m256 dot = _mm256_setzero_ps();
  int j = 0;
  for (; j + 8 <= n; j += 8) dot = _mm256_fmadd_ps(_mm256_loadu_ps(p + j), _mm256_loadu_ps(ds + j), dot);
  float d = hsum256_ps(dot);
  for (int t = j; t < n; t++) d += p[t] * ds[t];
  const __m256 vd = _mm256_set1_ps(d);
  for (j = 0; j + 8 <= n; j += 8)
    _mm256_storeu_ps(ds + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), _mm256_sub_ps(_mm256_loadu_ps(ds + j), vd)));
  for (; j < n; j++) ds[j] = p[j] * (ds[j] - d);
}

#endif  // GLIMPSE_X86

float row_max(const float* s, int n) {
#ifdef GLIMPSE_X86
  if (cpu_has_avx2_fma()) return row_max_avx2(s, n);
#endif
  float r = kNegInf;
  for (int j = 0; j < n; j++) r = s[j] != s[j] || r != r ? r + s[j] : std::max(r, s[j]);  // NaN sticks
  return r;
}

float exp_shift(float* s, int n, float shift) {
#ifdef GLIMPSE_X86
  if (cpu_has_avx2_fma()) return exp_shift_avx2(s, n, shift);
#endif
  float sum = 0;
  for (int j = 0; j < n; j++) {
    s[j] = exp_s(s[j] - shift);
    sum += s[j];
  }
  return sum;
}

void softmax_grad_row(const float* p, float* ds, int n) {
#ifdef GLIMPSE_X86
  if (cpu_has_avx2_fma()) return softmax_grad_row_avx2(p, ds, n);
#endif
  float d = 0;
  for (int j = 0; j < n; j++) d += p[j] * ds[j];
  for (int j = 0; j < n; j++) ds[j] = p[j] * (ds[j] - d);
}

// ---------------------------------------------------------------------------------------------
// Arguments.

struct Strided4 {  // a [B, H, T, D] view with unit stride on D
  const float* base;
  int64_t sb, sh, st;
  const float* at(int64_t b, int64_t h) const { return base + b * sb + h * sh; }
};

struct Problem {
  int64_t B, H, Tq, Tk, D, Dv;
  Strided4 q, k, v;
  const uint8_t* key_ok;  // [B, Tk] or null
  bool causal;
  float scale;
  // Query blocks per (batch, head).
  int64_t block, nblocks;
  // Row stride of the transposed keys and values: Tk rounded up to whole vectors, and off
  // multiples of 1 KiB so the rows a kernel walks do not all land in one cache set.
  int64_t ldt;

  // Keys a query row can see, ignoring padding: [0, visible(i)).
  int64_t visible(int64_t i) const { return causal ? std::min(Tk, i + 1) : Tk; }
};

// Throws unless every element of the view [dims[0], ..., dims[n-1]] lies inside the array.
// (128-bit arithmetic: sizes and strides come from JS and their products may not fit 64 bits.)
void check_view(const Array& a, int64_t offset, const int64_t* dims, const int64_t* strides, int n, const char* what) {
  __int128 lo = offset, hi = offset;
  for (int d = 0; d < n; d++) {
    if (dims[d] < 0) throw ArgError(std::string(what) + ": negative size");
    if (dims[d] == 0) return;
    const __int128 span = static_cast<__int128>(dims[d] - 1) * strides[d];
    (span < 0 ? lo : hi) += span;
  }
  if (lo < 0 || hi >= static_cast<__int128>(a.length))
    throw ArgError(std::string(what) + ": the view reaches outside its array of " + std::to_string(a.length) +
                   " elements");
}

// The arguments both kernels start with:
//   q, qOffset, qStrides [3], k, kOffset, kStrides, v, vOffset, vStrides,
//   keyOk (Uint8Array [B * Tk], 1 = the key may be attended to, or null), dims [B, H, Tq, Tk, D, Dv],
//   causal, scale
struct AttentionArgs {
  StridedArg q, k, v;
  Array key_ok;
  Ints dims;
  bool causal;
  double scale;
};

// The fields of a kernel's arguments S (an AttentionArgs and more): the common ones, then `more`.
template <class S>
std::vector<Field<S>> attention_fields(std::initializer_list<Field<S>> more) {
  std::vector<Field<S>> f = {
      arg::f32_strided<S>("q", &S::q),
      arg::f32_strided<S>("k", &S::k),
      arg::f32_strided<S>("v", &S::v),
      arg::optional(arg::array<S>("keyOk", &S::key_ok, napi_uint8_array)),
      arg::ints<S>("dims", &S::dims),
      arg::flag<S>("causal", &S::causal),
      arg::number<S>("scale", &S::scale),
  };
  f.insert(f.end(), more);
  return f;
}

// The [B, H, T, D] view x (strides of B, H and T), checked to lie inside its array.
Strided4 strided4(const StridedArg& x, int64_t B, int64_t H, int64_t T, int64_t D, const char* what) {
  const Ints& s = x.strides;
  if (s.size() != 3) throw ArgError(std::string(what) + ": expected 3 strides (batch, head, sequence)");
  const int64_t dims[4] = {B, H, T, D}, strides[4] = {s[0], s[1], s[2], 1};
  check_view(x.data, x.offset, dims, strides, 4, what);
  return {x.data.f32() + x.offset, s[0], s[1], s[2]};
}

Problem problem_args(const AttentionArgs& a) {
  Problem p;
  const Ints& dims = a.dims;
  if (dims.size() != 6) throw ArgError("dims must be [B, H, Tq, Tk, D, Dv]");
  for (int64_t d : dims)
    if (d < 0 || d > (int64_t(1) << 31) - 1) throw ArgError("dims must be non-negative 32-bit sizes");
  p.B = dims[0], p.H = dims[1], p.Tq = dims[2], p.Tk = dims[3], p.D = dims[4], p.Dv = dims[5];
  p.q = strided4(a.q, p.B, p.H, p.Tq, p.D, "q");
  p.k = strided4(a.k, p.B, p.H, p.Tk, p.D, "k");
  p.v = strided4(a.v, p.B, p.H, p.Tk, p.Dv, "v");
  p.key_ok = nullptr;
  if (!a.key_ok.null) {
    if (static_cast<int64_t>(a.key_ok.length) < p.B * p.Tk) throw ArgError("keyOk must hold B * Tk elements");
    p.key_ok = a.key_ok.u8();
  }
  p.causal = a.causal;
  p.scale = static_cast<float>(a.scale);
  // Score blocks of up to 64 rows, fewer when rows are long, so a block stays near 256 KiB.
  p.block = std::max<int64_t>(8, std::min<int64_t>(64, 65536 / std::max<int64_t>(p.Tk, 1)));
  p.nblocks = (p.Tq + p.block - 1) / p.block;
  p.ldt = (p.Tk + 15) / 16 * 16;
  if (p.ldt % 256 == 0) p.ldt += 16;
  return p;
}

// An output of dims[0] * ... * dims[3] elements (at least).
float* out_floats(const Array& a, std::initializer_list<int64_t> dims, const char* what) {
  __int128 needed = 1;
  for (int64_t d : dims) needed *= d;
  if (static_cast<__int128>(a.length) < needed)
    throw ArgError(std::string(what) + " must hold " +
                   (needed <= INT64_MAX ? std::to_string(static_cast<int64_t>(needed)) : std::string("2^63 or more")) +
                   " elements, it has " + std::to_string(a.length));
  return a.f32();
}

// A float scratch buffer whose start is aligned to a cache line.
class Buffer {
 public:
  explicit Buffer(int64_t n) : mem_(static_cast<size_t>(n) + 16) {}
  float* data() {
    const uintptr_t a = reinterpret_cast<uintptr_t>(mem_.data());
    return reinterpret_cast<float*>((a + 63) & ~uintptr_t(63));
  }

 private:
  std::vector<float> mem_;
};

// dst[d * ld + j] = src[j * st + d] for j < rows, d < cols: keys as columns, for the B operand.
#ifdef GLIMPSE_X86
GLIMPSE_AVX2 void transpose_rows_avx2(const float* src, int64_t st, int64_t rows, int64_t cols, float* dst,
                                      int64_t ld) {
  int64_t j = 0;
  for (; j + 8 <= rows; j += 8) {
    int64_t d = 0;
    for (; d + 8 <= cols; d += 8) {
      // 8 x 8 block: interleave pairs of rows, then pairs of pairs, then swap 128-bit halves.
      __m256 r[8], t[8];
      for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + (j + i) * st + d);
      for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
      }
      for (int i = 0; i < 8; i += 4) {
        r[i] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], _MM_SHUFFLE(3, 2, 3, 2));
        r[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(1, 0, 1, 0));
        r[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], _MM_SHUFFLE(3, 2, 3, 2));
      }
      for (int i = 0; i < 4; i++) {
        _mm256_storeu_ps(dst + (d + i) * ld + j, _mm256_permute2f128_ps(r[i], r[i + 4], 0x20));
        _mm256_storeu_ps(dst + (d + i + 4) * ld + j, _mm256_permute2f128_ps(r[i], r[i + 4], 0x31));
      }
    }
    for (; d < cols; d++)
      for (int i = 0; i < 8; i++) dst[d * ld + j + i] = src[(j + i) * st + d];
  }
  for (; j < rows; j++)
    for (int64_t d = 0; d < cols; d++) dst[d * ld + j] = src[j * st + d];
}
#endif

void transpose_rows(const float* src, int64_t st, int64_t rows, int64_t cols, float* dst, int64_t ld) {
#ifdef GLIMPSE_X86
  if (cpu_has_avx2_fma()) return transpose_rows_avx2(src, st, rows, cols, dst, ld);
#endif
  for (int64_t j = 0; j < rows; j++)
    for (int64_t d = 0; d < cols; d++) dst[d * ld + j] = src[j * st + d];
}

// Turns row r of a score block (global query row i, `width` computed columns) into unnormalised
// probabilities exp(s - max) with masked keys at 0; returns the row max (-inf if all masked)
// and stores the row sum in *sum. A NaN score makes the whole row NaN, as softmax does in
// PyTorch (a diverging run must show in its loss).
float masked_exp_row(const Problem& p, int64_t b, int64_t i, float* row, int64_t width, float* sum) {
  const int64_t n = p.visible(i);
  if (p.key_ok) {
    const uint8_t* ok = p.key_ok + b * p.Tk;
    for (int64_t j = 0; j < n; j++)
      if (!ok[j]) row[j] = kNegInf;
  }
  const float mx = row_max(row, static_cast<int>(n));
  if (mx != mx) {
    std::fill(row, row + width, mx);
    *sum = mx;
    return mx;
  }
  if (mx == kNegInf) {
    std::fill(row, row + width, 0.0f);
    *sum = 0;
    return mx;
  }
  *sum = exp_shift(row, static_cast<int>(n), mx);
  std::fill(row + n, row + width, 0.0f);
  return mx;
}

// Probabilities exp(s - lse) of one row, 0 for masked keys and for rows with lse = -inf, NaN for
// rows with lse = NaN.
void probs_row(const Problem& p, int64_t b, int64_t i, float lse, float* row, int64_t width) {
  const int64_t n = p.visible(i);
  if (lse == kNegInf || lse != lse) {
    std::fill(row, row + width, lse == kNegInf ? 0.0f : lse);
    return;
  }
  if (p.key_ok) {
    const uint8_t* ok = p.key_ok + b * p.Tk;
    for (int64_t j = 0; j < n; j++)
      if (!ok[j]) row[j] = kNegInf;
  }
  exp_shift(row, static_cast<int>(n), lse);
  std::fill(row + n, row + width, 0.0f);
}

// Keys any row of the query block [i0, i1) can see.
int64_t block_keys(const Problem& p, int64_t i1) { return p.causal ? std::min(p.Tk, i1) : p.Tk; }

// attentionForward(...common, out, lse): out dense [B, H, Tq, Dv], lse dense [B, H, Tq].
struct ForwardArgs : AttentionArgs {
  Array out, lse;
};
const Signature<ForwardArgs> kForward{"attentionForward", attention_fields<ForwardArgs>({
    arg::f32("out", &ForwardArgs::out),
    arg::f32("lse", &ForwardArgs::lse),
})};

napi_value attention_forward(napi_env env, ForwardArgs& a) {
  const Problem p = problem_args(a);
  float* out = out_floats(a.out, {p.B, p.H, p.Tq, p.Dv}, "out");
  float* lse = out_floats(a.lse, {p.B, p.H, p.Tq}, "lse");

  const int64_t units = p.B * p.H * p.nblocks;
  const int64_t unit_flops = 2 * std::min(p.block, p.Tq) * p.Tk * (p.D + p.Dv) + 1;
  parallel_for(units, std::max<int64_t>(1, 400000 / unit_flops), [&](int64_t begin, int64_t end) {
    Buffer kt(p.D * p.ldt), scores(p.block * p.Tk);
    std::vector<float> inv(p.block);
    int64_t kt_of = -1;  // the (batch, head) whose keys kt holds
    for (int64_t u = begin; u < end; u++) {
      const int64_t bh = u / p.nblocks, b = bh / p.H, h = bh % p.H;
      const int64_t i0 = (u % p.nblocks) * p.block, i1 = std::min(p.Tq, i0 + p.block), rows = i1 - i0;
      const int64_t keys = block_keys(p, i1);
      float* o = out + (bh * p.Tq + i0) * p.Dv;
      float* l = lse + bh * p.Tq + i0;
      if (kt_of != bh) {
        transpose_rows(p.k.at(b, h), p.k.st, p.Tk, p.D, kt.data(), p.ldt);
        kt_of = bh;
      }
      const float* qb = p.q.at(b, h) + i0 * p.q.st;
      mm(rows, keys, p.D, p.scale, {qb, p.q.st, 1}, kt.data(), p.ldt, false, scores.data(), keys);
      for (int64_t r = 0; r < rows; r++) {
        float sum;
        const float mx = masked_exp_row(p, b, i0 + r, scores.data() + r * keys, keys, &sum);
        l[r] = mx == kNegInf ? kNegInf : mx + std::log(sum);
        inv[r] = mx == kNegInf ? 0.0f : 1.0f / sum;
      }
      mm(rows, p.Dv, keys, 1.0f, {scores.data(), keys, 1}, p.v.at(b, h), p.v.st, false, o, p.Dv);
      for (int64_t r = 0; r < rows; r++)
        for (int64_t d = 0; d < p.Dv; d++) o[r * p.Dv + d] *= inv[r];
    }
  });
  return undefined(env);
}

// attentionBackward(...common, lse, lseOffset, lseStrides[3], gOut, gOutOffset, gOutStrides[3], dq, dk, dv):
// dq dense [B, H, Tq, D], dk dense [B, H, Tk, D], dv dense [B, H, Tk, Dv] are overwritten.
struct BackwardArgs : AttentionArgs {
  StridedArg lse, g_out;
  Array dq, dk, dv;
};
const Signature<BackwardArgs> kBackward{"attentionBackward", attention_fields<BackwardArgs>({
    arg::f32_strided("lse", &BackwardArgs::lse),
    arg::f32_strided("gOut", &BackwardArgs::g_out),
    arg::f32("dq", &BackwardArgs::dq),
    arg::f32("dk", &BackwardArgs::dk),
    arg::f32("dv", &BackwardArgs::dv),
})};

napi_value attention_backward(napi_env env, BackwardArgs& a) {
  const Problem p = problem_args(a);
  const Ints& ls = a.lse.strides;
  if (ls.size() != 3) throw ArgError("lse: expected 3 strides");
  const int64_t lse_dims[3] = {p.B, p.H, p.Tq};
  check_view(a.lse.data, a.lse.offset, lse_dims, ls.data(), 3, "lse");
  const float* lse = a.lse.data.f32() + a.lse.offset;
  const Strided4 go = strided4(a.g_out, p.B, p.H, p.Tq, p.Dv, "gOut");
  float* dq = out_floats(a.dq, {p.B, p.H, p.Tq, p.D}, "dq");
  float* dk = out_floats(a.dk, {p.B, p.H, p.Tk, p.D}, "dk");
  float* dv = out_floats(a.dv, {p.B, p.H, p.Tk, p.Dv}, "dv");

  // dK and dV sum over every query row, so one (batch, head) is one unit: no two threads write
  // the same gradient rows, and the sums are deterministic.
  const int64_t unit_flops = 4 * p.Tq * p.Tk * (p.D + p.Dv) + 1;
  parallel_for(p.B * p.H, std::max<int64_t>(1, 400000 / unit_flops), [&](int64_t begin, int64_t end) {
    Buffer kt(p.D * p.ldt), vt(p.Dv * p.ldt), probs(p.block * p.Tk), dscores(p.block * p.Tk);
    for (int64_t bh = begin; bh < end; bh++) {
      const int64_t b = bh / p.H, h = bh % p.H;
      const float* kb = p.k.at(b, h);
      const float* qb = p.q.at(b, h);
      const float* gob = go.at(b, h);
      const float* lb = lse + b * ls[0] + h * ls[1];
      float* dqb = dq + bh * p.Tq * p.D;
      float* dkb = dk + bh * p.Tk * p.D;
      float* dvb = dv + bh * p.Tk * p.Dv;
      std::fill(dkb, dkb + p.Tk * p.D, 0.0f);
      std::fill(dvb, dvb + p.Tk * p.Dv, 0.0f);
      transpose_rows(kb, p.k.st, p.Tk, p.D, kt.data(), p.ldt);
      transpose_rows(p.v.at(b, h), p.v.st, p.Tk, p.Dv, vt.data(), p.ldt);
      for (int64_t i0 = 0; i0 < p.Tq; i0 += p.block) {
        const int64_t i1 = std::min(p.Tq, i0 + p.block), rows = i1 - i0;
        const int64_t keys = block_keys(p, i1);
        float* P = probs.data();
        float* dS = dscores.data();
        const float* qi = qb + i0 * p.q.st;
        const float* goi = gob + i0 * go.st;
        mm(rows, keys, p.D, p.scale, {qi, p.q.st, 1}, kt.data(), p.ldt, false, P, keys);
        for (int64_t r = 0; r < rows; r++) probs_row(p, b, i0 + r, lb[(i0 + r) * ls[2]], P + r * keys, keys);
        // dP = dO V^T, then dS = P * (dP - rowsum(P * dP)).
        mm(rows, keys, p.Dv, 1.0f, {goi, go.st, 1}, vt.data(), p.ldt, false, dS, keys);
        for (int64_t r = 0; r < rows; r++) softmax_grad_row(P + r * keys, dS + r * keys, static_cast<int>(keys));
        mm(keys, p.Dv, rows, 1.0f, {P, 1, keys}, goi, go.st, true, dvb, p.Dv);               // dV += P^T dO
        mm(rows, p.D, keys, p.scale, {dS, keys, 1}, kb, p.k.st, false, dqb + i0 * p.D, p.D);  // dQ = s dS K
        mm(keys, p.D, rows, p.scale, {dS, 1, keys}, qi, p.q.st, true, dkb, p.D);              // dK += s dS^T Q
      }
    }
  });
  return undefined(env);
}

}  // namespace

void register_attention(napi_env env, napi_value exports) {
  export_kernel<kForward, attention_forward>(env, exports);
  export_kernel<kBackward, attention_backward>(env, exports);
}

}  // namespace glimpse
