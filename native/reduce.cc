// Reductions and row normalisations on dense float32 data: reduce (sum, max, min, argmax, argmin
// over the middle axis of [outer, n, inner]), softmax and log-softmax, their gradient, layer norm
// and its gradient.
//
// All of them are memory-bound, so each kernel reads a row from memory once and runs its later
// passes over the row while it is still in cache, and outputs too big for the cache are written
// with non-temporal stores. reduce's sums accumulate in double. The sums inside softmax and layer
// norm accumulate in float vector lanes within blocks of kSumBlock elements and add the block sums
// in double: that stays within a few float ulps of a float64 sum of their (positive or centred)
// terms for any length, at the cost of float arithmetic.
//
// Every kernel has an AVX2/FMA version and a portable one (plain loops, accumulating in double);
// cpu_has_avx2_fma() picks one per call.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "common.h"
#include "rowops.h"
#include "vecmath.h"

namespace glimpse {
namespace {

using namespace rowops;

constexpr int64_t kPiece = 1 << 15;     // elements per parallel task, and per part of a long row
constexpr int64_t kTile = 16384;        // columns per task of a column (inner > 1) reduction
constexpr int64_t kGradRowBlock = 32;   // rows summed in float into dgamma/dbeta before double
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

int64_t div_up(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Rows per parallel chunk so that a chunk holds about kPiece elements.
int64_t row_grain(int64_t n) { return std::max<int64_t>(1, kPiece / std::max<int64_t>(1, n)); }

// v replaces the running extremum cur: strictly better, or the first NaN (which then sticks).
template <bool kIsMax>
bool better(float v, float cur) {
  return (kIsMax ? v > cur : v < cur) || (v != v && cur == cur);
}

// ---------------------------------------------------------------------------------------------
// Argument checks: every element a kernel touches must lie inside its typed array.
// ---------------------------------------------------------------------------------------------

int64_t checked_mul(int64_t a, int64_t b) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) throw ArgError("sizes must be non-negative and not overflow");
  return r;
}

void check_span(const Array& a, napi_typedarray_type type, int64_t offset, int64_t count, const char* what) {
  if (a.type != type) {
    throw ArgError(std::string(what) + " must be a " + (type == napi_int32_array ? "Int32Array" : "Float32Array"));
  }
  if (offset < 0 || count < 0 || offset > static_cast<int64_t>(a.length) ||
      count > static_cast<int64_t>(a.length) - offset) {
    throw ArgError(std::string(what) + ": " + std::to_string(count) + " elements at offset " + std::to_string(offset) +
                   " do not fit its " + std::to_string(a.length));
  }
}

const float* in_f32(const SpanArg& a, int64_t count, const char* what) {
  check_span(a.data, napi_float32_array, a.offset, count, what);
  return a.data.f32() + a.offset;
}

float* out_f32(const Array& a, int64_t count, const char* what) {
  check_span(a, napi_float32_array, 0, count, what);
  return a.f32();
}

// ---------------------------------------------------------------------------------------------
// Portable row primitives
// ---------------------------------------------------------------------------------------------

template <bool kIsMax>
float extremum_scalar(const float* x, int64_t n) {
  float m = kIsMax ? -kInf : kInf;
  for (int64_t j = 0; j < n; j++) {
    if (x[j] != x[j]) return x[j];
    if (kIsMax ? x[j] > m : x[j] < m) m = x[j];
  }
  return m;
}

template <bool kIsMax>
int64_t arg_extremum_scalar(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t j = 0; j < n; j++) {
    if (x[j] != x[j]) return j;
    if (kIsMax ? x[j] > x[best] : x[j] < x[best]) best = j;
  }
  return best;
}

#ifdef GLIMPSE_X86

// reduce's sums accumulate every element in double (exact for any realistic length of floats of
// similar size), so the result is the float64 sum rounded once, as in the reference.
GLIMPSE_AVX2 double sum_double_avx2(const float* x, int64_t n) {
  __m256d a0 = _mm256_setzero_pd(), a1 = a0, a2 = a0, a3 = a0;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __m256 v = _mm256_loadu_ps(x + j), w = _mm256_loadu_ps(x + j + 8);
    a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
    a2 = _mm256_add_pd(a2, _mm256_cvtps_pd(_mm256_castps256_ps128(w)));
    a3 = _mm256_add_pd(a3, _mm256_cvtps_pd(_mm256_extractf128_ps(w, 1)));
  }
  for (; j < n; j += 8) {
    __m256 v = _mm256_maskload_ps(x + j, tail_mask256(std::min<int64_t>(8, n - j)));
    a0 = _mm256_add_pd(a0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    a1 = _mm256_add_pd(a1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  }
  __m256d d = _mm256_add_pd(_mm256_add_pd(a0, a1), _mm256_add_pd(a2, a3));
  __m128d h = _mm_add_pd(_mm256_castpd256_pd128(d), _mm256_extractf128_pd(d, 1));
  return _mm_cvtsd_f64(_mm_add_sd(h, _mm_unpackhi_pd(h, h)));
}

// Max or min that propagates NaN: max_ps(v, m) returns m when either is NaN, which keeps a NaN
// already in m; the blend takes a NaN that arrives in v.
template <bool kIsMax>
GLIMPSE_AVX2 inline __m256 extremum_step(__m256 m, __m256 v) {
  __m256 e = kIsMax ? _mm256_max_ps(v, m) : _mm256_min_ps(v, m);
  return _mm256_blendv_ps(e, v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}

template <bool kIsMax>
GLIMPSE_AVX2 float extremum_avx2(const float* x, int64_t n) {
  const __m256 init = _mm256_set1_ps(kIsMax ? -kInf : kInf);
  __m256 m0 = init, m1 = init, m2 = init, m3 = init;
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) {
    m0 = extremum_step<kIsMax>(m0, _mm256_loadu_ps(x + j));
    m1 = extremum_step<kIsMax>(m1, _mm256_loadu_ps(x + j + 8));
    m2 = extremum_step<kIsMax>(m2, _mm256_loadu_ps(x + j + 16));
    m3 = extremum_step<kIsMax>(m3, _mm256_loadu_ps(x + j + 24));
  }
  for (; j + 8 <= n; j += 8) m0 = extremum_step<kIsMax>(m0, _mm256_loadu_ps(x + j));
  if (j < n) {
    // Lanes past the end repeat the row's first element, which cannot change the result.
    __m256i m = tail_mask256(n - j);
    m1 = extremum_step<kIsMax>(m1, _mm256_blendv_ps(_mm256_set1_ps(x[0]), _mm256_maskload_ps(x + j, m),
                                                     _mm256_castsi256_ps(m)));
  }
  m0 = extremum_step<kIsMax>(extremum_step<kIsMax>(m0, m1), extremum_step<kIsMax>(m2, m3));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, m0);
  return extremum_scalar<kIsMax>(lanes, 8);
}

template <bool kIsMax>
GLIMPSE_AVX2 int64_t arg_extremum_avx2(const float* x, int64_t n) {
  if (n < 16) return arg_extremum_scalar<kIsMax>(x, n);
  // Each lane keeps its own first strict extremum; NaNs are only noted here, and if there are
  // any, a scan finds the first (the answer then).
  __m256 best = _mm256_loadu_ps(x);
  __m256i best_idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256i idx = best_idx;
  __m256 nan = _mm256_cmp_ps(best, best, _CMP_UNORD_Q);
  const __m256i step = _mm256_set1_epi32(8);
  int64_t j = 8;
  for (; j + 8 <= n; j += 8) {
    __m256 v = _mm256_loadu_ps(x + j);
    idx = _mm256_add_epi32(idx, step);
    __m256 gt = _mm256_cmp_ps(v, best, kIsMax ? _CMP_GT_OQ : _CMP_LT_OQ);
    best = _mm256_blendv_ps(best, v, gt);
    best_idx = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(best_idx), _mm256_castsi256_ps(idx), gt));
    nan = _mm256_or_ps(nan, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
  }
  if (_mm256_movemask_ps(nan)) {
    for (int64_t k = 0;; k++)
      if (x[k] != x[k]) return k;
  }
  alignas(32) int32_t lane_idx[8];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lane_idx), best_idx);
  int64_t r = lane_idx[0];
  for (int l = 1; l < 8; l++) {
    const int64_t k = lane_idx[l];
    if (better<kIsMax>(x[k], x[r]) || (x[k] == x[r] && k < r)) r = k;
  }
  for (; j < n; j++)
    if (better<kIsMax>(x[j], x[r])) r = j;
  return r;
}

#endif  // GLIMPSE_X86

double row_sum(bool avx, const float* x, int64_t n) {
#ifdef GLIMPSE_X86
  if (avx) return sum_double_avx2(x, n);
#endif
  return sum_scalar(x, n);
}

template <bool kIsMax>
float row_extremum(bool avx, const float* x, int64_t n) {
#ifdef GLIMPSE_X86
  if (avx) return extremum_avx2<kIsMax>(x, n);
#endif
  return extremum_scalar<kIsMax>(x, n);
}

template <bool kIsMax>
int64_t row_arg_extremum(bool avx, const float* x, int64_t n) {
#ifdef GLIMPSE_X86
  if (avx) return arg_extremum_avx2<kIsMax>(x, n);
#endif
  return arg_extremum_scalar<kIsMax>(x, n);
}

// ---------------------------------------------------------------------------------------------
// reduce
// ---------------------------------------------------------------------------------------------

// What one task produces for one output element: a double sum, a float extremum, or the value
// and index of an arg-extremum (the value, so that merging needs no reads of x).
struct ArgPartial {
  float val;
  int64_t idx;
};
template <int kOp>
using Partial =
    std::conditional_t<kOp == kSum, double, std::conditional_t<kOp == kMax || kOp == kMin, float, ArgPartial>>;

constexpr bool is_arg(int op) { return op == kArgMax || op == kArgMin; }

// acc followed by next, a partial of a later range of the axis.
template <int kOp>
Partial<kOp> merge(Partial<kOp> acc, Partial<kOp> next) {
  if constexpr (kOp == kSum) return acc + next;
  else if constexpr (kOp == kMax || kOp == kMin) return better<kOp == kMax>(next, acc) ? next : acc;
  else return better<kOp == kArgMax>(next.val, acc.val) ? next : acc;
}

template <int kOp>
void finish(const Array& out, int64_t k, Partial<kOp> v) {
  if constexpr (is_arg(kOp)) out.i32()[k] = static_cast<int32_t>(v.idx);
  else out.f32()[k] = static_cast<float>(v);
}

// The partial of x[0..n), indices counted from `first`.
template <int kOp>
Partial<kOp> reduce_range(bool avx, const float* x, int64_t n, int64_t first) {
  if constexpr (kOp == kSum) {
    return row_sum(avx, x, n);
  } else if constexpr (kOp == kMax || kOp == kMin) {
    return row_extremum<kOp == kMax>(avx, x, n);
  } else {
    const int64_t j = row_arg_extremum<kOp == kArgMax>(avx, x, n);
    return {x[j], first + j};
  }
}

// inner == 1: each output reduces a contiguous row. Rows longer than kPiece are cut into parts
// reduced in parallel and merged in order, so the result depends on the shape only.
template <int kOp>
void reduce_rows(bool avx, const float* x, int64_t outer, int64_t n, const Array& out) {
  const int64_t parts = std::max<int64_t>(1, div_up(n, kPiece));
  if (parts == 1) {
    parallel_for(outer, row_grain(n), [&](int64_t b, int64_t e) {
      for (int64_t o = b; o < e; o++) finish<kOp>(out, o, reduce_range<kOp>(avx, x + o * n, n, 0));
    });
    return;
  }
  std::vector<Partial<kOp>> part(outer * parts);
  parallel_for(outer * parts, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; t++) {
      const int64_t o = t / parts, begin = (t % parts) * kPiece;
      part[t] = reduce_range<kOp>(avx, x + o * n + begin, std::min(kPiece, n - begin), begin);
    }
  });
  for (int64_t o = 0; o < outer; o++) {
    Partial<kOp> acc = part[o * parts];
    for (int64_t p = 1; p < parts; p++) acc = merge<kOp>(acc, part[o * parts + p]);
    finish<kOp>(out, o, acc);
  }
}

// Strided reduction of `rows` rows of w columns (row stride `stride`) into acc[0..w), with
// indices counted from `first`.
template <int kOp>
void reduce_columns_scalar(const float* x, int64_t rows, int64_t stride, int64_t w, int64_t first, Partial<kOp>* acc) {
  if constexpr (kOp == kSum) {
    std::fill(acc, acc + w, 0.0);
    for (int64_t r = 0; r < rows; r++)
      for (int64_t i = 0; i < w; i++) acc[i] += x[r * stride + i];
  } else if constexpr (kOp == kMax || kOp == kMin) {
    std::copy(x, x + w, acc);
    for (int64_t r = 1; r < rows; r++)
      for (int64_t i = 0; i < w; i++)
        if (better<kOp == kMax>(x[r * stride + i], acc[i])) acc[i] = x[r * stride + i];
  } else {
    for (int64_t i = 0; i < w; i++) acc[i] = {x[i], first};
    for (int64_t r = 1; r < rows; r++)
      for (int64_t i = 0; i < w; i++)
        if (better<kOp == kArgMax>(x[r * stride + i], acc[i].val)) acc[i] = {x[r * stride + i], first + r};
  }
}

#ifdef GLIMPSE_X86
// Accumulators that fit in L1 take one row at a time, so x is read strictly in order. Wider ones
// take four rows at a time, in order, so each accumulator vector is loaded and stored once per
// four rows instead of streaming through L2 for every row.
template <int kOp>
GLIMPSE_AVX2 void reduce_columns_avx2(const float* x, int64_t rows, int64_t stride, int64_t w, int64_t first,
                                      Partial<kOp>* acc) {
  constexpr int64_t kBytesPerColumn = kOp == kMax || kOp == kMin ? 4 : 8;
  const int64_t step = w * kBytesPerColumn < 16384 ? 1 : 4;
  const int64_t wv = w & ~int64_t{7};
  if constexpr (kOp == kSum) {
    std::fill(acc, acc + w, 0.0);
    for (int64_t r = 0; r < rows; r += step) {
      const int64_t k = std::min(step, rows - r);
      const float* p = x + r * stride;
      for (int64_t i = 0; i < wv; i += 8) {
        __m256d lo = _mm256_loadu_pd(acc + i), hi = _mm256_loadu_pd(acc + i + 4);
        for (int64_t q = 0; q < k; q++) {
          __m256 v = _mm256_loadu_ps(p + q * stride + i);
          lo = _mm256_add_pd(lo, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
          hi = _mm256_add_pd(hi, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
        }
        _mm256_storeu_pd(acc + i, lo);
        _mm256_storeu_pd(acc + i + 4, hi);
      }
      for (int64_t i = wv; i < w; i++)
        for (int64_t q = 0; q < k; q++) acc[i] += p[q * stride + i];
    }
  } else if constexpr (kOp == kMax || kOp == kMin) {
    constexpr bool kIsMax = kOp == kMax;
    std::copy(x, x + w, acc);
    for (int64_t r = 1; r < rows; r += step) {
      const int64_t k = std::min(step, rows - r);
      const float* p = x + r * stride;
      for (int64_t i = 0; i < wv; i += 8) {
        __m256 m = _mm256_loadu_ps(acc + i);
        for (int64_t q = 0; q < k; q++) m = extremum_step<kIsMax>(m, _mm256_loadu_ps(p + q * stride + i));
        _mm256_storeu_ps(acc + i, m);
      }
      for (int64_t i = wv; i < w; i++)
        for (int64_t q = 0; q < k; q++)
          if (better<kIsMax>(p[q * stride + i], acc[i])) acc[i] = p[q * stride + i];
    }
  } else {
    constexpr bool kIsMax = kOp == kArgMax;
    // Values and int32 row numbers (from `first`) in separate arrays for the vector lanes.
    std::vector<float> vals(x, x + w);
    std::vector<int32_t> idx(w, 0);
    for (int64_t r = 1; r < rows; r += step) {
      const int64_t k = std::min(step, rows - r);
      const float* p = x + r * stride;
      for (int64_t i = 0; i < wv; i += 8) {
        __m256 b = _mm256_loadu_ps(vals.data() + i);
        __m256 bi = _mm256_castsi256_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx.data() + i)));
        for (int64_t q = 0; q < k; q++) {
          __m256 v = _mm256_loadu_ps(p + q * stride + i);
          __m256 v_nan = _mm256_cmp_ps(v, v, _CMP_UNORD_Q), b_nan = _mm256_cmp_ps(b, b, _CMP_UNORD_Q);
          __m256 upd = _mm256_or_ps(_mm256_cmp_ps(v, b, kIsMax ? _CMP_GT_OQ : _CMP_LT_OQ), _mm256_andnot_ps(b_nan, v_nan));
          b = _mm256_blendv_ps(b, v, upd);
          bi = _mm256_blendv_ps(bi, _mm256_castsi256_ps(_mm256_set1_epi32(static_cast<int32_t>(r + q))), upd);
        }
        _mm256_storeu_ps(vals.data() + i, b);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx.data() + i), _mm256_castps_si256(bi));
      }
      for (int64_t i = wv; i < w; i++) {
        for (int64_t q = 0; q < k; q++) {
          if (better<kIsMax>(p[q * stride + i], vals[i])) {
            vals[i] = p[q * stride + i];
            idx[i] = static_cast<int32_t>(r + q);
          }
        }
      }
    }
    for (int64_t i = 0; i < w; i++) acc[i] = {vals[i], first + idx[i]};
  }
}
#endif

// inner > 1: outputs are columns. A task reduces a tile of up to kTile columns over a range of
// the axis, reading whole rows of the tile, so memory is read in long contiguous runs. When
// outer * tiles gives too few tasks to share among threads, the axis is also cut into parts (of
// at least 16 rows, so the partials stay small next to x) that are merged in order afterwards.
// Both choices depend on the shape only.
template <int kOp>
void reduce_columns(bool avx, const float* x, int64_t outer, int64_t n, int64_t inner, const Array& out) {
  const int64_t tiles = div_up(inner, kTile);
  const int64_t tile_w = std::min(inner, kTile);
  int64_t parts = 1;
  if (outer * tiles < 16) {
    parts = std::min({div_up(16, outer * tiles), n / 16, div_up(checked_mul(n, tile_w), kPiece)});
    parts = std::max<int64_t>(1, parts);
  }
  const int64_t part_len = div_up(n, parts);
  parts = div_up(n, part_len);
  std::vector<Partial<kOp>> part(parts > 1 ? outer * parts * inner : 0);
  const int64_t tasks = outer * tiles * parts;
  const int64_t grain = std::max<int64_t>(1, kPiece / std::max<int64_t>(1, part_len * tile_w));
  parallel_for(tasks, grain, [&](int64_t b, int64_t e) {
    std::vector<Partial<kOp>> acc(tile_w);
    for (int64_t t = b; t < e; t++) {
      const int64_t p = t % parts, tile = (t / parts) % tiles, o = t / (parts * tiles);
      const int64_t i0 = tile * kTile, w = std::min(kTile, inner - i0);
      const int64_t j0 = p * part_len, rows = std::min(part_len, n - j0);
      const float* src = x + (o * n + j0) * inner + i0;
#ifdef GLIMPSE_X86
      if (avx) reduce_columns_avx2<kOp>(src, rows, inner, w, j0, acc.data());
      else
#endif
        reduce_columns_scalar<kOp>(src, rows, inner, w, j0, acc.data());
      if (parts == 1) {
        for (int64_t i = 0; i < w; i++) finish<kOp>(out, o * inner + i0 + i, acc[i]);
      } else {
        std::copy(acc.begin(), acc.begin() + w, part.begin() + (o * parts + p) * inner + i0);
      }
    }
  });
  if (parts == 1) return;
  for (int64_t o = 0; o < outer; o++) {
    Partial<kOp>* acc = part.data() + o * parts * inner;
    for (int64_t p = 1; p < parts; p++) {
      const Partial<kOp>* next = acc + p * inner;
      for (int64_t i = 0; i < inner; i++) acc[i] = merge<kOp>(acc[i], next[i]);
    }
    for (int64_t i = 0; i < inner; i++) finish<kOp>(out, o * inner + i, acc[i]);
  }
}

template <int kOp>
void reduce_op(bool avx, const float* x, int64_t outer, int64_t n, int64_t inner, const Array& out) {
  if (inner == 1) reduce_rows<kOp>(avx, x, outer, n, out);
  else reduce_columns<kOp>(avx, x, outer, n, inner, out);
}

// reduce(op, x, xOffset, outer, n, inner, out): op is a ReduceOp (codes.h); out is an Int32Array
// for argmax and argmin.
struct ReduceArgs {
  int64_t op;
  SpanArg x;
  int64_t outer, n, inner;
  Array out;
};
const Signature<ReduceArgs> kReduce{"reduce", {
    arg::code("op", &ReduceArgs::op, kReduceOps),
    arg::f32_span("x", &ReduceArgs::x),
    arg::integer("outer", &ReduceArgs::outer),
    arg::integer("n", &ReduceArgs::n),
    arg::integer("inner", &ReduceArgs::inner),
    arg::array("out", &ReduceArgs::out),
}};

napi_value reduce_kernel(napi_env env, ReduceArgs& a) {
  const int64_t op = a.op, outer = a.outer, n = a.n, inner = a.inner;
  const Array& out = a.out;
  const int64_t count = checked_mul(checked_mul(outer, n), inner);
  const float* x = in_f32(a.x, count, "x");
  const bool arg = is_arg(static_cast<int>(op));
  check_span(out, arg ? napi_int32_array : napi_float32_array, 0, checked_mul(outer, inner), "out");
  if (op != kSum && n == 0 && outer * inner > 0) throw ArgError("cannot take a max, min or arg over an empty axis");
  if (arg && n > INT32_MAX) throw ArgError("axis too long for int32 indices");
  if (outer * inner == 0) return undefined(env);
  if (n == 0) {  // an empty sum
    std::fill(out.f32(), out.f32() + outer * inner, 0.0f);
    return undefined(env);
  }
  const bool avx = cpu_has_avx2_fma();
  switch (op) {
    case kSum: reduce_op<kSum>(avx, x, outer, n, inner, out); break;
    case kMax: reduce_op<kMax>(avx, x, outer, n, inner, out); break;
    case kMin: reduce_op<kMin>(avx, x, outer, n, inner, out); break;
    case kArgMax: reduce_op<kArgMax>(avx, x, outer, n, inner, out); break;
    case kArgMin: reduce_op<kArgMin>(avx, x, outer, n, inner, out); break;
  }
  return undefined(env);
}

// ---------------------------------------------------------------------------------------------
// softmax, log-softmax and their gradient, one row at a time
// ---------------------------------------------------------------------------------------------

// A row whose max is NaN or infinite comes out all NaN, as x - max does in PyTorch and the
// reference (-inf - -inf and inf - inf are NaN, and NaN reaches every element through the sum).
void softmax_row_scalar(const float* x, float* y, int64_t n, bool log) {
  const float m = extremum_scalar<true>(x, n);
  if (!std::isfinite(m)) {
    std::fill(y, y + n, kNaN);
    return;
  }
  double s = 0;
  for (int64_t j = 0; j < n; j++) {
    const float e = exp_s(x[j] - m);
    if (!log) y[j] = e;
    s += e;
  }
  if (log) {
    const float lse = static_cast<float>(std::log(s));
    for (int64_t j = 0; j < n; j++) y[j] = (x[j] - m) - lse;
  } else {
    const float inv = static_cast<float>(1.0 / s);
    for (int64_t j = 0; j < n; j++) y[j] *= inv;
  }
}

// In double throughout, so it also serves the AVX2 kernel for rows whose sums overflow float.
void softmax_grad_row_scalar(const float* y, const float* g, float* dx, int64_t n, bool log) {
  double s = 0;
  for (int64_t j = 0; j < n; j++) s += log ? g[j] : static_cast<double>(g[j]) * y[j];
  if (log) {
    for (int64_t j = 0; j < n; j++) dx[j] = static_cast<float>(g[j] - static_cast<double>(exp_s(y[j])) * s);
  } else {
    for (int64_t j = 0; j < n; j++) dx[j] = static_cast<float>(y[j] * (g[j] - s));
  }
}

#ifdef GLIMPSE_X86
// The max of the row's non-NaN elements (-inf if none): softmax needs no NaN check here, since a
// NaN element makes the sum of exponentials NaN and so every output.
GLIMPSE_AVX2 float max_skipping_nan_avx2(const float* x, int64_t n) {
  const __m256 lowest = _mm256_set1_ps(-kInf);
  __m256 m0 = lowest, m1 = lowest, m2 = lowest, m3 = lowest;
  int64_t j = 0;
  // max_ps(v, m) returns m when v is NaN.
  for (; j + 32 <= n; j += 32) {
    m0 = _mm256_max_ps(_mm256_loadu_ps(x + j), m0);
    m1 = _mm256_max_ps(_mm256_loadu_ps(x + j + 8), m1);
    m2 = _mm256_max_ps(_mm256_loadu_ps(x + j + 16), m2);
    m3 = _mm256_max_ps(_mm256_loadu_ps(x + j + 24), m3);
  }
  for (; j + 8 <= n; j += 8) m0 = _mm256_max_ps(_mm256_loadu_ps(x + j), m0);
  if (j < n) {
    const __m256 m = _mm256_castsi256_ps(tail_mask256(n - j));
    m1 = _mm256_max_ps(_mm256_blendv_ps(lowest, _mm256_maskload_ps(x + j, _mm256_castps_si256(m)), m), m1);
  }
  return hmax256_ps(_mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
}

// scratch: n floats for the exponentials, which the last pass scales into y.
GLIMPSE_AVX2 void softmax_row_avx2(const float* x, float* y, float* scratch, int64_t n, bool log, bool stream) {
  const float m = max_skipping_nan_avx2(x, n);
  if (!std::isfinite(m)) {
    std::fill(y, y + n, kNaN);
    return;
  }
  const __m256 mv = _mm256_set1_ps(m);
  // x - m <= 0, as exp_nonpos256_ps needs; the tail's masked-off lanes (0 - m) are discarded by keep().
  double s;
  if (log) {
    sums8<1, 2>(n, &s, [&](int64_t j, const auto& lanes, __m256* acc) GLIMPSE_AVX2 {
      acc[0] = _mm256_add_ps(acc[0], lanes.keep(exp_nonpos256_ps(_mm256_sub_ps(lanes.load(x + j), mv))));
    });
    const __m256 lse = _mm256_set1_ps(static_cast<float>(std::log(s)));
    write8(y, n, stream, [&](int64_t j, const auto& lanes) GLIMPSE_AVX2 {
      return _mm256_sub_ps(_mm256_sub_ps(lanes.load(x + j), mv), lse);
    });
  } else {
    sums8<1, 2>(n, &s, [&](int64_t j, const auto& lanes, __m256* acc) GLIMPSE_AVX2 {
      __m256 e = exp_nonpos256_ps(_mm256_sub_ps(lanes.load(x + j), mv));
      lanes.store(scratch + j, e);
      acc[0] = _mm256_add_ps(acc[0], lanes.keep(e));
    });
    const __m256 inv = _mm256_set1_ps(static_cast<float>(1.0 / s));
    write8(y, n, stream, [&](int64_t j, const auto& lanes) GLIMPSE_AVX2 {
      return _mm256_mul_ps(lanes.load(scratch + j), inv);
    });
  }
}

// Sums of g (log) or g*y in double lanes, and g - s in double: dx for a dominant entry is a
// difference of two numbers near 1, so a float sum would leave errors of the size of dx itself.
GLIMPSE_AVX2 double dot_or_sum_pd(const float* y, const float* g, int64_t n, bool log) {
  __m256d acc0 = _mm256_setzero_pd(), acc1 = _mm256_setzero_pd();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256 g8 = _mm256_loadu_ps(g + j);
    const __m256d glo = _mm256_cvtps_pd(_mm256_castps256_ps128(g8));
    const __m256d ghi = _mm256_cvtps_pd(_mm256_extractf128_ps(g8, 1));
    if (log) {
      acc0 = _mm256_add_pd(acc0, glo);
      acc1 = _mm256_add_pd(acc1, ghi);
    } else {
      const __m256 y8 = _mm256_loadu_ps(y + j);
      acc0 = _mm256_fmadd_pd(glo, _mm256_cvtps_pd(_mm256_castps256_ps128(y8)), acc0);
      acc1 = _mm256_fmadd_pd(ghi, _mm256_cvtps_pd(_mm256_extractf128_ps(y8, 1)), acc1);
    }
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(acc0, acc1));
  double s = (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
  for (; j < n; j++) s += log ? g[j] : static_cast<double>(g[j]) * y[j];
  return s;
}

// A sum that is not finite (inf or NaN in the data) sends the row to the portable code.
GLIMPSE_AVX2 void softmax_grad_row_avx2(const float* y, const float* g, float* dx, int64_t n, bool log, bool stream) {
  const double s = dot_or_sum_pd(y, g, n, log);
  if (!std::isfinite(static_cast<float>(s))) return softmax_grad_row_scalar(y, g, dx, n, log);
  const __m256d sd = _mm256_set1_pd(s);
  // dx = y (g - s), or g - exp(y) s for log-softmax; each half of the 8 lanes in double.
  auto half = [&](__m128 y4, __m128 g4) GLIMPSE_AVX2 {
    const __m256d yd = _mm256_cvtps_pd(y4), gd = _mm256_cvtps_pd(g4);
    return _mm256_cvtpd_ps(log ? _mm256_fnmadd_pd(yd, sd, gd) : _mm256_mul_pd(yd, _mm256_sub_pd(gd, sd)));
  };
  write8(dx, n, stream, [&](int64_t j, const auto& lanes) GLIMPSE_AVX2 {
    __m256 y8 = lanes.load(y + j);
    if (log) y8 = exp256_ps(y8);
    const __m256 g8 = lanes.load(g + j);
    return _mm256_set_m128(half(_mm256_extractf128_ps(y8, 1), _mm256_extractf128_ps(g8, 1)),
                           half(_mm256_castps256_ps128(y8), _mm256_castps256_ps128(g8)));
  });
}
#endif

void softmax_row(bool avx, const float* x, float* y, float* scratch, int64_t n, bool log, bool stream) {
#ifdef GLIMPSE_X86
  if (avx) return softmax_row_avx2(x, y, scratch, n, log, stream);
#endif
  softmax_row_scalar(x, y, n, log);
}

void softmax_grad_row(bool avx, const float* y, const float* g, float* dx, int64_t n, bool log, bool stream) {
#ifdef GLIMPSE_X86
  if (avx) return softmax_grad_row_avx2(y, g, dx, n, log, stream);
#endif
  softmax_grad_row_scalar(y, g, dx, n, log);
}

// softmax(x, xOffset, out, rows, n, log)
struct SoftmaxArgs {
  SpanArg x;
  Array out;
  int64_t rows, n;
  bool log;
};
const Signature<SoftmaxArgs> kSoftmax{"softmax", {
    arg::f32_span("x", &SoftmaxArgs::x),
    arg::f32("out", &SoftmaxArgs::out),
    arg::integer("rows", &SoftmaxArgs::rows),
    arg::integer("n", &SoftmaxArgs::n),
    arg::flag("log", &SoftmaxArgs::log),
}};

napi_value softmax_kernel(napi_env env, SoftmaxArgs& a) {
  const int64_t rows = a.rows, n = a.n;
  const bool log = a.log;
  const int64_t count = checked_mul(rows, n);
  const float* x = in_f32(a.x, count, "x");
  float* y = out_f32(a.out, count, "out");
  const bool avx = cpu_has_avx2_fma(), stream = avx && stream_output(count);
  parallel_for(rows, row_grain(n), [&](int64_t b, int64_t e) {
    std::vector<float> scratch(avx ? n : 0);
    for (int64_t r = b; r < e; r++) softmax_row(avx, x + r * n, y + r * n, scratch.data(), n, log, stream);
    fence_streams(stream);
  });
  return undefined(env);
}

// softmaxGrad(y, yOffset, g, gOffset, out, rows, n, log)
struct SoftmaxGradArgs {
  SpanArg y, g;
  Array out;
  int64_t rows, n;
  bool log;
};
const Signature<SoftmaxGradArgs> kSoftmaxGrad{"softmaxGrad", {
    arg::f32_span("y", &SoftmaxGradArgs::y),
    arg::f32_span("g", &SoftmaxGradArgs::g),
    arg::f32("out", &SoftmaxGradArgs::out),
    arg::integer("rows", &SoftmaxGradArgs::rows),
    arg::integer("n", &SoftmaxGradArgs::n),
    arg::flag("log", &SoftmaxGradArgs::log),
}};

napi_value softmax_grad_kernel(napi_env env, SoftmaxGradArgs& a) {
  const int64_t rows = a.rows, n = a.n;
  const bool log = a.log;
  const int64_t count = checked_mul(rows, n);
  const float* y = in_f32(a.y, count, "y");
  const float* g = in_f32(a.g, count, "g");
  float* dx = out_f32(a.out, count, "out");
  const bool avx = cpu_has_avx2_fma(), stream = avx && stream_output(count);
  parallel_for(rows, row_grain(n), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) softmax_grad_row(avx, y + r * n, g + r * n, dx + r * n, n, log, stream);
    fence_streams(stream);
  });
  return undefined(env);
}

// ---------------------------------------------------------------------------------------------
// layer norm and its gradient
// ---------------------------------------------------------------------------------------------

// dx for one row; dg/db (either may be null) accumulate g * xhat and g. In double, so it also
// serves the AVX2 kernel for rows whose sums overflow float.
void layer_norm_grad_row_scalar(const float* x, const float* g, const float* gamma, float* dx, float* dg, float* db,
                                int64_t n, float mean, float rstd) {
  auto xhat = [&](int64_t j) { return (static_cast<double>(x[j]) - mean) * rstd; };
  auto ghat = [&](int64_t j) { return gamma ? static_cast<double>(g[j]) * gamma[j] : g[j]; };
  double a = 0, b = 0;
  for (int64_t j = 0; j < n; j++) {
    a += ghat(j);
    b += ghat(j) * xhat(j);
  }
  const double c1 = rstd * a / n, c2 = rstd * b / n;
  for (int64_t j = 0; j < n; j++) {
    const double xh = xhat(j);
    dx[j] = static_cast<float>(ghat(j) * rstd - c1 - xh * c2);
    if (dg) dg[j] += static_cast<float>(g[j] * xh);
    if (db) db[j] += g[j];
  }
}

#ifdef GLIMPSE_X86
GLIMPSE_AVX2 void layer_norm_grad_row_avx2(const float* x, const float* g, const float* gamma, float* dx, float* dg,
                                           float* db, int64_t n, float mean, float rstd, bool stream) {
  const __m256 mv = _mm256_set1_ps(mean), rv = _mm256_set1_ps(rstd);
  double s[2];
  sums8<2>(n, s, [&](int64_t j, const auto& lanes, __m256* acc) GLIMPSE_AVX2 {
    __m256 xh = lanes.keep(_mm256_mul_ps(_mm256_sub_ps(lanes.load(x + j), mv), rv));
    __m256 gh = lanes.load(g + j);  // masked lanes load as 0
    if (gamma) gh = _mm256_mul_ps(gh, lanes.load(gamma + j));
    acc[0] = _mm256_add_ps(acc[0], gh);
    acc[1] = _mm256_fmadd_ps(gh, xh, acc[1]);
  });
  // As in softmax_grad_row_avx2: terms that are not finite as floats are redone in double.
  const float c1f = static_cast<float>(rstd * s[0] / n), c2f = static_cast<float>(rstd * s[1] / n);
  if (!std::isfinite(c1f) || !std::isfinite(c2f)) return layer_norm_grad_row_scalar(x, g, gamma, dx, dg, db, n, mean, rstd);
  const __m256 c1 = _mm256_set1_ps(c1f), c2 = _mm256_set1_ps(c2f);
  write8(dx, n, stream, [&](int64_t j, const auto& lanes) GLIMPSE_AVX2 {
    __m256 xh = _mm256_mul_ps(_mm256_sub_ps(lanes.load(x + j), mv), rv);
    __m256 gv = lanes.load(g + j);
    __m256 gh = gamma ? _mm256_mul_ps(gv, lanes.load(gamma + j)) : gv;
    if (dg) lanes.store(dg + j, _mm256_fmadd_ps(gv, xh, lanes.load(dg + j)));
    if (db) lanes.store(db + j, _mm256_add_ps(gv, lanes.load(db + j)));
    return _mm256_fnmadd_ps(xh, c2, _mm256_fmsub_ps(gh, rv, c1));
  });
}
#endif

RowStats layer_norm_row(bool avx, const float* x, const float* gamma, const float* beta, float* y, int64_t n,
                        double eps, bool stream) {
#ifdef GLIMPSE_X86
  if (avx) {
    const RowStats st = stats_avx2(x, n, eps);
    layer_norm_row_avx2(x, gamma, beta, y, n, st, stream);
    return st;
  }
#endif
  const RowStats st = stats_scalar(x, n, eps);
  layer_norm_row_scalar(x, gamma, beta, y, n, st);
  return st;
}

void layer_norm_grad_row(bool avx, const float* x, const float* g, const float* gamma, float* dx, float* dg, float* db,
                         int64_t n, float mean, float rstd, bool stream) {
#ifdef GLIMPSE_X86
  if (avx) return layer_norm_grad_row_avx2(x, g, gamma, dx, dg, db, n, mean, rstd, stream);
#endif
  layer_norm_grad_row_scalar(x, g, gamma, dx, dg, db, n, mean, rstd);
}

// layerNorm(x, xOffset, gamma | null, gammaOffset, beta | null, betaOffset, rows, n, eps, out, mean, rstd)
const Signature<LayerNormArgs> kLayerNorm{"layerNorm", layer_norm_fields(false)};

napi_value layer_norm_kernel(napi_env env, LayerNormArgs& a) {
  const int64_t rows = a.rows, n = a.n;
  const double eps = a.eps;
  const int64_t count = checked_mul(rows, n);
  if (n == 0) throw ArgError("cannot normalise rows of 0 elements");
  const float* x = in_f32(a.x, count, "x");
  const float* gamma = a.gamma.data.null ? nullptr : in_f32(a.gamma, n, "gamma");
  const float* beta = a.beta.data.null ? nullptr : in_f32(a.beta, n, "beta");
  float* y = out_f32(a.out, count, "out");
  float* mean = out_f32(a.mean, rows, "mean");
  float* rstd = out_f32(a.rstd, rows, "rstd");
  const bool avx = cpu_has_avx2_fma(), stream = avx && stream_output(count);
  parallel_for(rows, row_grain(n), [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; r++) {
      const RowStats st = layer_norm_row(avx, x + r * n, gamma, beta, y + r * n, n, eps, stream);
      mean[r] = st.mean;
      rstd[r] = st.rstd;
    }
    fence_streams(stream);
  });
  return undefined(env);
}

// layerNormGrad(x, xOffset, g, gOffset, gamma | null, gammaOffset, mean, meanOffset, rstd, rstdOffset,
//               rows, n, dx, dgamma | null, dbeta | null)
//
// dgamma and dbeta sum over all rows. The rows are cut into one chunk per thread; each chunk sums
// blocks of kGradRowBlock rows in float, adds them into its own double partial, and the partials
// are added in chunk order: deterministic for a given thread count.
struct LayerNormGradArgs {
  SpanArg x, g, gamma, mean, rstd;
  int64_t rows, n;
  Array dx, dgamma, dbeta;
};
const Signature<LayerNormGradArgs> kLayerNormGrad{"layerNormGrad", {
    arg::f32_span("x", &LayerNormGradArgs::x),
    arg::f32_span("g", &LayerNormGradArgs::g),
    arg::optional(arg::f32_span("gamma", &LayerNormGradArgs::gamma)),
    arg::f32_span("mean", &LayerNormGradArgs::mean),
    arg::f32_span("rstd", &LayerNormGradArgs::rstd),
    arg::integer("rows", &LayerNormGradArgs::rows),
    arg::integer("n", &LayerNormGradArgs::n),
    arg::f32("dx", &LayerNormGradArgs::dx),
    arg::optional(arg::f32("dgamma", &LayerNormGradArgs::dgamma)),
    arg::optional(arg::f32("dbeta", &LayerNormGradArgs::dbeta)),
}};

napi_value layer_norm_grad_kernel(napi_env env, LayerNormGradArgs& a) {
  const int64_t rows = a.rows, n = a.n;
  const int64_t count = checked_mul(rows, n);
  if (n == 0) throw ArgError("cannot normalise rows of 0 elements");
  const float* x = in_f32(a.x, count, "x");
  const float* g = in_f32(a.g, count, "g");
  const float* gamma = a.gamma.data.null ? nullptr : in_f32(a.gamma, n, "gamma");
  const float* mean = in_f32(a.mean, rows, "mean");
  const float* rstd = in_f32(a.rstd, rows, "rstd");
  float* dx = out_f32(a.dx, count, "dx");
  float* dgamma = a.dgamma.null ? nullptr : out_f32(a.dgamma, n, "dgamma");
  float* dbeta = a.dbeta.null ? nullptr : out_f32(a.dbeta, n, "dbeta");
  const bool avx = cpu_has_avx2_fma(), stream = avx && stream_output(count);

  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(num_threads(), div_up(rows, row_grain(n))));
  const bool param_grads = dgamma || dbeta;
  // Per chunk: double partials of dgamma and dbeta, n each.
  std::vector<double> partial(param_grads ? chunks * 2 * n : 0, 0.0);
  parallel_for(chunks, 1, [&](int64_t cb, int64_t ce) {
    std::vector<float> block(param_grads ? 2 * n : 0);
    float* dg = dgamma ? block.data() : nullptr;
    float* db = dbeta ? block.data() + n : nullptr;
    for (int64_t c = cb; c < ce; c++) {
      const int64_t r0 = rows * c / chunks, r1 = rows * (c + 1) / chunks;
      double* pd = param_grads ? partial.data() + c * 2 * n : nullptr;
      for (int64_t r = r0; r < r1; r++) {
        layer_norm_grad_row(avx, x + r * n, g + r * n, gamma, dx + r * n, dg, db, n, mean[r], rstd[r], stream);
        if (param_grads && ((r - r0 + 1) % kGradRowBlock == 0 || r + 1 == r1)) {
          for (int64_t j = 0; j < 2 * n; j++) pd[j] += block[j];
          std::fill(block.begin(), block.end(), 0.0f);
        }
      }
    }
    fence_streams(stream);
  });
  if (!param_grads) return undefined(env);
  for (int64_t j = 0; j < n; j++) {
    double sg = 0, sb = 0;
    for (int64_t c = 0; c < chunks; c++) {
      sg += partial[c * 2 * n + j];
      sb += partial[c * 2 * n + n + j];
    }
    if (dgamma) dgamma[j] = static_cast<float>(sg);
    if (dbeta) dbeta[j] = static_cast<float>(sb);
  }
  return undefined(env);
}

}  // namespace

void register_reduce(napi_env env, napi_value exports) {
  export_kernel<kReduce, reduce_kernel>(env, exports);
  export_kernel<kSoftmax, softmax_kernel>(env, exports);
  export_kernel<kSoftmaxGrad, softmax_grad_kernel>(env, exports);
  export_kernel<kLayerNorm, layer_norm_kernel>(env, exports);
  export_kernel<kLayerNormGrad, layer_norm_grad_kernel>(env, exports);
}

}  // namespace glimpse
