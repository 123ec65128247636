// Fused scaled dot-product attention: softmax(scale * q k^T + masks) v, forward and backward.
//
// One work unit is a block of query rows of one (batch, head). Its scores live in a per-thread
// [rows, Tk] scratch block; the causal and key-padding masks are applied to that block as the
// softmax runs, so no [Tq, Tk] mask is ever built. The backward pass recomputes the probabilities
// from q, k and the saved row log-sum-exp instead of storing them.
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common.h"

namespace glimpse {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ---------------------------------------------------------------------------------------------
// Small matrix products. C[M, N] = alpha * A B (+ C when accumulate), where A(i, k) sits at
// A[i * rsa + k * csa] (so A may be read transposed), and B, C are row-major with unit column
// stride. The attention blocks are small (tens of rows, K = head size or a block of keys), so a
// register-blocked kernel without packing serves them better than a general SGEMM.

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

__attribute__((target("avx2,fma"))) inline __m256i tail_mask(int n) {
  // Lanes [0, n) set, for n in [0, 8].
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lanes);
}

// MR rows x 16 columns of C; Full: all 16 columns exist, else masks m0, m1 pick the valid ones.
template <int MR, bool Full>
__attribute__((target("avx2,fma"))) inline void mm_tile_avx2(int K, float alpha, const float* a, ptrdiff_t rsa,
                                                             ptrdiff_t csa, const float* b, ptrdiff_t ldb,
                                                             bool accumulate, float* c, ptrdiff_t ldc, __m256i m0,
                                                             __m256i m1) {
  __m256 acc0[MR], acc1[MR];
  for (int r = 0; r < MR; r++) acc0[r] = acc1[r] = _mm256_setzero_ps();
  for (int k = 0; k < K; k++) {
    const float* bk = b + k * ldb;
    const __m256 b0 = Full ? _mm256_loadu_ps(bk) : _mm256_maskload_ps(bk, m0);
    const __m256 b1 = Full ? _mm256_loadu_ps(bk + 8) : _mm256_maskload_ps(bk + 8, m1);
    const float* ak = a + k * csa;
    for (int r = 0; r < MR; r++) {
      const __m256 av = _mm256_broadcast_ss(ak + r * rsa);
      acc0[r] = _mm256_fmadd_ps(av, b0, acc0[r]);
      acc1[r] = _mm256_fmadd_ps(av, b1, acc1[r]);
    }
  }
  const __m256 va = _mm256_set1_ps(alpha);
  for (int r = 0; r < MR; r++) {
    float* cr = c + r * ldc;
    __m256 c0 = _mm256_mul_ps(acc0[r], va), c1 = _mm256_mul_ps(acc1[r], va);
    if (Full) {
      if (accumulate) {
        c0 = _mm256_add_ps(c0, _mm256_loadu_ps(cr));
        c1 = _mm256_add_ps(c1, _mm256_loadu_ps(cr + 8));
      }
      _mm256_storeu_ps(cr, c0);
      _mm256_storeu_ps(cr + 8, c1);
    } else {
      if (accumulate) {
        c0 = _mm256_add_ps(c0, _mm256_maskload_ps(cr, m0));
        c1 = _mm256_add_ps(c1, _mm256_maskload_ps(cr + 8, m1));
      }
      _mm256_maskstore_ps(cr, m0, c0);
      _mm256_maskstore_ps(cr + 8, m1, c1);
    }
  }
}

template <bool Full>
__attribute__((target("avx2,fma"))) void mm_panel_avx2(int M, int K, float alpha, MatA A, const float* b,
                                                       ptrdiff_t ldb, bool accumulate, float* c, ptrdiff_t ldc,
                                                       __m256i m0, __m256i m1) {
  int i = 0;
  for (; i + 6 <= M; i += 6)
    mm_tile_avx2<6, Full>(K, alpha, A.p + i * A.rs, A.rs, A.cs, b, ldb, accumulate, c + i * ldc, ldc, m0, m1);
  const float* a = A.p + i * A.rs;
  float* ci = c + i * ldc;
  switch (M - i) {
    case 5: mm_tile_avx2<5, Full>(K, alpha, a, A.rs, A.cs, b, ldb, accumulate, ci, ldc, m0, m1); break;
    case 4: mm_tile_avx2<4, Full>(K, alpha, a, A.rs, A.cs, b, ldb, accumulate, ci, ldc, m0, m1); break;
    case 3: mm_tile_avx2<3, Full>(K, alpha, a, A.rs, A.cs, b, ldb, accumulate, ci, ldc, m0, m1); break;
    case 2: mm_tile_avx2<2, Full>(K, alpha, a, A.rs, A.cs, b, ldb, accumulate, ci, ldc, m0, m1); break;
    case 1: mm_tile_avx2<1, Full>(K, alpha, a, A.rs, A.cs, b, ldb, accumulate, ci, ldc, m0, m1); break;
    default: break;
  }
}

__attribute__((target("avx2,fma"))) void mm_avx2(int M, int N, int K, float alpha, MatA A, const float* B,
                                                 ptrdiff_t ldb, bool accumulate, float* C, ptrdiff_t ldc) {
  const __m256i all = _mm256_set1_epi32(-1);
  int j = 0;
  for (; j + 16 <= N; j += 16) mm_panel_avx2<true>(M, K, alpha, A, B + j, ldb, accumulate, C + j, ldc, all, all);
  if (j < N) {
    const int rest = N - j;
    mm_panel_avx2<false>(M, K, alpha, A, B + j, ldb, accumulate, C + j, ldc, tail_mask(std::min(rest, 8)),
                         tail_mask(std::max(rest - 8, 0)));
  }
}

void mm(int M, int N, int K, float alpha, MatA A, const float* B, ptrdiff_t ldb, bool accumulate, float* C,
        ptrdiff_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (cpu_has_avx2_fma())
    mm_avx2(M, N, K, alpha, A, B, ldb, accumulate, C, ldc);
  else
    mm_portable(M, N, K, alpha, A, B, ldb, accumulate, C, ldc);
}

// ---------------------------------------------------------------------------------------------
// Row operations of the softmax.

// exp(x) in float32: 2^n * e^r with |r| <= ln2/2 and a degree-7 Taylor polynomial for e^r
// (truncation error below 1e-8 relative). Results below the smallest normal float flush to 0,
// which also maps -inf (masked scores) to 0.
__attribute__((target("avx2,fma"))) inline __m256 exp_avx2(__m256 x) {
  const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-87.3365478515625f);
  const __m256 xc = _mm256_min_ps(hi, _mm256_max_ps(lo, x));  // operand order keeps NaN
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 5040);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  const __m256 y = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
  return _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), y);
}

__attribute__((target("avx2,fma"))) float row_max_avx2(const float* s, int n) {
  __m256 m = _mm256_set1_ps(kNegInf);
  int j = 0;
  for (; j + 8 <= n; j += 8) m = _mm256_max_ps(m, _mm256_loadu_ps(s + j));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m);
  float r = lanes[0];
  for (int t = 1; t < 8; t++) r = std::max(r, lanes[t]);
  for (; j < n; j++) r = std::max(r, s[j]);
  return r;
}

// s[j] = exp(s[j] - shift) for j < n; returns the sum of the results.
__attribute__((target("avx2,fma"))) float exp_shift_avx2(float* s, int n, float shift) {
  const __m256 vs = _mm256_set1_ps(shift);
  __m256 sum = _mm256_setzero_ps();
  int j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(s + j), vs));
    _mm256_storeu_ps(s + j, e);
    sum = _mm256_add_ps(sum, e);
  }
  if (j < n) {
    const __m256i m = tail_mask(n - j);
    const __m256 e = _mm256_and_ps(exp_avx2(_mm256_sub_ps(_mm256_maskload_ps(s + j, m), vs)), _mm256_castsi256_ps(m));
    _mm256_maskstore_ps(s + j, m, e);
    sum = _mm256_add_ps(sum, e);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  return ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
}

// ds[j] = p[j] * (ds[j] - sum_j p[j] ds[j]): the softmax backward for one row, in place on ds.
__attribute__((target("avx2,fma"))) void softmax_grad_row_avx2(const float* p, float* ds, int n) {
  __m256 dot = _mm256_setzero_ps();
  int j = 0;
  for (; j + 8 <= n; j += 8) dot = _mm256_fmadd_ps(_mm256_loadu_ps(p + j), _mm256_loadu_ps(ds + j), dot);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, dot);
  float d = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
  for (int t = j; t < n; t++) d += p[t] * ds[t];
  const __m256 vd = _mm256_set1_ps(d);
  for (j = 0; j + 8 <= n; j += 8)
    _mm256_storeu_ps(ds + j, _mm256_mul_ps(_mm256_loadu_ps(p + j), _mm256_sub_ps(_mm256_loadu_ps(ds + j), vd)));
  for (; j < n; j++) ds[j] = p[j] * (ds[j] - d);
}

float row_max(const float* s, int n) {
  if (cpu_has_avx2_fma()) return row_max_avx2(s, n);
  float r = kNegInf;
  for (int j = 0; j < n; j++) r = std::max(r, s[j]);
  return r;
}

float exp_shift(float* s, int n, float shift) {
  if (cpu_has_avx2_fma()) return exp_shift_avx2(s, n, shift);
  float sum = 0;
  for (int j = 0; j < n; j++) {
    s[j] = std::exp(s[j] - shift);
    sum += s[j];
  }
  return sum;
}

void softmax_grad_row(const float* p, float* ds, int n) {
  if (cpu_has_avx2_fma()) return softmax_grad_row_avx2(p, ds, n);
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

  // Keys a query row can see, ignoring padding: [0, visible(i)).
  int64_t visible(int64_t i) const { return causal ? std::min(Tk, i + 1) : Tk; }
};

// Throws unless every element of the view [dims[0], ..., dims[n-1]] lies inside the array.
void check_view(const Array& a, int64_t offset, const int64_t* dims, const int64_t* strides, int n, const char* what) {
  int64_t lo = offset, hi = offset;
  for (int d = 0; d < n; d++) {
    if (dims[d] < 0) throw ArgError(std::string(what) + ": negative size");
    if (dims[d] == 0) return;
    const int64_t span = (dims[d] - 1) * strides[d];
    (span < 0 ? lo : hi) += span;
  }
  if (lo < 0 || hi >= static_cast<int64_t>(a.length))
    throw ArgError(std::string(what) + ": the view reaches outside its array of " + std::to_string(a.length) +
                   " elements");
}

Array float_arg(napi_env env, napi_value v, size_t pos, const char* what) {
  Array a = array_arg(env, v, pos);
  if (a.type != napi_float32_array) throw ArgError(std::string(what) + " must be a Float32Array");
  return a;
}

Strided4 view_arg(napi_env env, const std::vector<napi_value>& a, size_t pos, int64_t B, int64_t H, int64_t T,
                  int64_t D, const char* what) {
  const Array arr = float_arg(env, a[pos], pos, what);
  const int64_t offset = int_arg(env, a[pos + 1], pos + 1);
  const std::vector<int64_t> s = ints_arg(env, a[pos + 2], pos + 2);
  if (s.size() != 3) throw ArgError(std::string(what) + ": expected 3 strides (batch, head, sequence)");
  const int64_t dims[4] = {B, H, T, D}, strides[4] = {s[0], s[1], s[2], 1};
  check_view(arr, offset, dims, strides, 4, what);
  return {arr.f32() + offset, s[0], s[1], s[2]};
}

// Argument layout shared by both kernels:
//   0 q, 1 qOffset, 2 qStrides[3], 3 k, 4 kOffset, 5 kStrides, 6 v, 7 vOffset, 8 vStrides,
//   9 keyOk (Uint8Array [B*Tk] or null), 10 dims [B, H, Tq, Tk, D, Dv], 11 causal, 12 scale
constexpr size_t kCommonArgs = 13;

Problem problem_args(napi_env env, const std::vector<napi_value>& a) {
  Problem p;
  const std::vector<int64_t> dims = ints_arg(env, a[10], 10);
  if (dims.size() != 6) throw ArgError("dims must be [B, H, Tq, Tk, D, Dv]");
  for (int64_t d : dims)
    if (d < 0 || d > (int64_t(1) << 31) - 1) throw ArgError("dims must be non-negative 32-bit sizes");
  p.B = dims[0], p.H = dims[1], p.Tq = dims[2], p.Tk = dims[3], p.D = dims[4], p.Dv = dims[5];
  p.q = view_arg(env, a, 0, p.B, p.H, p.Tq, p.D, "q");
  p.k = view_arg(env, a, 3, p.B, p.H, p.Tk, p.D, "k");
  p.v = view_arg(env, a, 6, p.B, p.H, p.Tk, p.Dv, "v");
  p.key_ok = nullptr;
  if (!is_null(env, a[9])) {
    const Array m = array_arg(env, a[9], 9);
    if (m.type != napi_uint8_array) throw ArgError("keyOk must be a Uint8Array");
    if (static_cast<int64_t>(m.length) < p.B * p.Tk) throw ArgError("keyOk must hold B * Tk elements");
    p.key_ok = m.u8();
  }
  p.causal = bool_arg(env, a[11], 11);
  p.scale = static_cast<float>(number_arg(env, a[12], 12));
  // Score blocks of up to 64 rows, fewer when rows are long, so a block stays near 256 KiB.
  p.block = std::max<int64_t>(8, std::min<int64_t>(64, 65536 / std::max<int64_t>(p.Tk, 1)));
  p.nblocks = (p.Tq + p.block - 1) / p.block;
  return p;
}

Array out_arg(napi_env env, napi_value v, size_t pos, int64_t needed, const char* what) {
  Array a = float_arg(env, v, pos, what);
  if (static_cast<int64_t>(a.length) < needed)
    throw ArgError(std::string(what) + " must hold " + std::to_string(needed) + " elements, it has " +
                   std::to_string(a.length));
  return a;
}

// dst[d * ld + j] = src[j * st + d] for j < rows, d < cols: keys as columns, for the B operand.
void transpose_rows(const float* src, int64_t st, int64_t rows, int64_t cols, float* dst, int64_t ld) {
  for (int64_t j = 0; j < rows; j++)
    for (int64_t d = 0; d < cols; d++) dst[d * ld + j] = src[j * st + d];
}

// Turns row r of a score block (global query row i, `width` computed columns) into unnormalised
// probabilities exp(s - max) with masked keys at 0; returns the row max (-inf if all masked)
// and stores the row sum in *sum.
float masked_exp_row(const Problem& p, int64_t b, int64_t i, float* row, int64_t width, float* sum) {
  const int64_t n = p.visible(i);
  if (p.key_ok) {
    const uint8_t* ok = p.key_ok + b * p.Tk;
    for (int64_t j = 0; j < n; j++)
      if (!ok[j]) row[j] = kNegInf;
  }
  const float mx = row_max(row, static_cast<int>(n));
  if (mx == kNegInf) {
    std::fill(row, row + width, 0.0f);
    *sum = 0;
    return mx;
  }
  *sum = exp_shift(row, static_cast<int>(n), mx);
  std::fill(row + n, row + width, 0.0f);
  return mx;
}

// Probabilities exp(s - lse) of one row, 0 for masked keys and for rows with lse = -inf.
void probs_row(const Problem& p, int64_t b, int64_t i, float lse, float* row, int64_t width) {
  const int64_t n = p.visible(i);
  if (lse == kNegInf) {
    std::fill(row, row + width, 0.0f);
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
GLIMPSE_KERNEL(attention_forward) {
  auto a = args(env, info, kCommonArgs + 2);
  const Problem p = problem_args(env, a);
  float* out = out_arg(env, a[kCommonArgs], kCommonArgs, p.B * p.H * p.Tq * p.Dv, "out").f32();
  float* lse = out_arg(env, a[kCommonArgs + 1], kCommonArgs + 1, p.B * p.H * p.Tq, "lse").f32();

  const int64_t units = p.B * p.H * p.nblocks;
  const int64_t unit_flops = 2 * std::min(p.block, p.Tq) * p.Tk * (p.D + p.Dv) + 1;
  parallel_for(units, std::max<int64_t>(1, 400000 / unit_flops), [&](int64_t begin, int64_t end) {
    std::vector<float> kt(p.D * p.Tk), scores(p.block * p.Tk), inv(p.block);
    int64_t kt_of = -1;  // the (batch, head) whose keys kt holds
    for (int64_t u = begin; u < end; u++) {
      const int64_t bh = u / p.nblocks, b = bh / p.H, h = bh % p.H;
      const int64_t i0 = (u % p.nblocks) * p.block, i1 = std::min(p.Tq, i0 + p.block), rows = i1 - i0;
      const int64_t keys = block_keys(p, i1);
      float* o = out + (bh * p.Tq + i0) * p.Dv;
      float* l = lse + bh * p.Tq + i0;
      if (kt_of != bh) {
        transpose_rows(p.k.at(b, h), p.k.st, p.Tk, p.D, kt.data(), p.Tk);
        kt_of = bh;
      }
      const float* qb = p.q.at(b, h) + i0 * p.q.st;
      mm(rows, keys, p.D, p.scale, {qb, p.q.st, 1}, kt.data(), p.Tk, false, scores.data(), keys);
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

// attentionBackward(...common, lse, lseOffset, lseStrides[3], gOut, gOffset, gStrides[3], dq, dk, dv):
// dq dense [B, H, Tq, D], dk dense [B, H, Tk, D], dv dense [B, H, Tk, Dv] are overwritten.
GLIMPSE_KERNEL(attention_backward) {
  auto a = args(env, info, kCommonArgs + 9);
  const Problem p = problem_args(env, a);
  const size_t c = kCommonArgs;
  const Array lse_arr = float_arg(env, a[c], c, "lse");
  const int64_t lse_off = int_arg(env, a[c + 1], c + 1);
  const std::vector<int64_t> ls = ints_arg(env, a[c + 2], c + 2);
  if (ls.size() != 3) throw ArgError("lse: expected 3 strides");
  const int64_t lse_dims[3] = {p.B, p.H, p.Tq};
  check_view(lse_arr, lse_off, lse_dims, ls.data(), 3, "lse");
  const float* lse = lse_arr.f32() + lse_off;
  const Strided4 go = view_arg(env, a, c + 3, p.B, p.H, p.Tq, p.Dv, "gOut");
  float* dq = out_arg(env, a[c + 6], c + 6, p.B * p.H * p.Tq * p.D, "dq").f32();
  float* dk = out_arg(env, a[c + 7], c + 7, p.B * p.H * p.Tk * p.D, "dk").f32();
  float* dv = out_arg(env, a[c + 8], c + 8, p.B * p.H * p.Tk * p.Dv, "dv").f32();

  // dK and dV sum over every query row, so one (batch, head) is one unit: no two threads write
  // the same gradient rows, and the sums are deterministic.
  const int64_t unit_flops = 4 * p.Tq * p.Tk * (p.D + p.Dv) + 1;
  parallel_for(p.B * p.H, std::max<int64_t>(1, 400000 / unit_flops), [&](int64_t begin, int64_t end) {
    std::vector<float> kt(p.D * p.Tk), vt(p.Dv * p.Tk), probs(p.block * p.Tk), dscores(p.block * p.Tk);
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
      transpose_rows(kb, p.k.st, p.Tk, p.D, kt.data(), p.Tk);
      transpose_rows(p.v.at(b, h), p.v.st, p.Tk, p.Dv, vt.data(), p.Tk);
      for (int64_t i0 = 0; i0 < p.Tq; i0 += p.block) {
        const int64_t i1 = std::min(p.Tq, i0 + p.block), rows = i1 - i0;
        const int64_t keys = block_keys(p, i1);
        float* P = probs.data();
        float* dS = dscores.data();
        const float* qi = qb + i0 * p.q.st;
        const float* goi = gob + i0 * go.st;
        if (keys == 0) {
          std::fill(dqb + i0 * p.D, dqb + i1 * p.D, 0.0f);
          continue;
        }
        mm(rows, keys, p.D, p.scale, {qi, p.q.st, 1}, kt.data(), p.Tk, false, P, keys);
        for (int64_t r = 0; r < rows; r++) probs_row(p, b, i0 + r, lb[(i0 + r) * ls[2]], P + r * keys, keys);
        // dP = dO V^T, then dS = P * (dP - rowsum(P * dP)).
        mm(rows, keys, p.Dv, 1.0f, {goi, go.st, 1}, vt.data(), p.Tk, false, dS, keys);
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
  export_fn(env, exports, "attentionForward", attention_forward);
  export_fn(env, exports, "attentionBackward", attention_backward);
}

}  // namespace glimpse
