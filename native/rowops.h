// Row primitives for kernels that work on dense float32 rows held in cache: 8-lane loops with
// masked tails, blocked float/double sums, streaming row writes, and layer norm's row statistics
// and normalisation. Shared by the layer norm kernels (reduce.cc) and the fused ones (fused.cc),
// so that a fused layer norm is the same arithmetic as the plain one, bit for bit; so are their
// arguments (LayerNormArgs, at the end).
//
// Sums accumulate in float vector lanes within blocks of kSumBlock elements and add the block
// sums in double: that stays within a few float ulps of a float64 sum of their (positive or
// centred) terms for any length, at the cost of float arithmetic.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "common.h"
#include "vecmath.h"

namespace glimpse {
namespace rowops {

constexpr int64_t kSumBlock = 1024;  // elements summed in float lanes before going to double

// Outputs at least this big are written with non-temporal stores (see write8): they cannot stay
// in cache next to their inputs anyway.
constexpr int64_t kStreamBytes = 16 << 20;

inline bool stream_output(int64_t count) { return count * static_cast<int64_t>(sizeof(float)) >= kStreamBytes; }

// Non-temporal stores are weakly ordered: fence them before the thread reports its chunk done.
inline void fence_streams(bool stream) {
#ifdef GLIMPSE_X86
  if (stream) _mm_sfence();
#endif
}

inline double sum_scalar(const float* x, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // four chains, so the adds overlap
  int64_t j = 0;
  for (; j + 4 <= n; j += 4) {
    s0 += x[j];
    s1 += x[j + 1];
    s2 += x[j + 2];
    s3 += x[j + 3];
  }
  for (; j < n; j++) s0 += x[j];
  return (s0 + s1) + (s2 + s3);
}

#ifdef GLIMPSE_X86

// Loops hand 8-wide steps to a body with an accessor for its lanes: Whole for full vectors, Tail
// for the last n % 8 elements (masked loads and stores; keep() zeroes the lanes past the end, so
// a term computed from them adds nothing to a sum).
struct Whole {
  GLIMPSE_AVX2 __m256 load(const float* p) const { return _mm256_loadu_ps(p); }
  GLIMPSE_AVX2 void store(float* p, __m256 v) const { _mm256_storeu_ps(p, v); }
  GLIMPSE_AVX2 __m256 keep(__m256 v) const { return v; }
};

struct Tail {
  __m256i m;
  GLIMPSE_AVX2 __m256 load(const float* p) const { return _mm256_maskload_ps(p, m); }
  GLIMPSE_AVX2 void store(float* p, __m256 v) const { _mm256_maskstore_ps(p, m, v); }
  GLIMPSE_AVX2 __m256 keep(__m256 v) const { return _mm256_and_ps(v, _mm256_castsi256_ps(m)); }
};

// y[j..j+8) = value(j, lanes) for j = 0, 8, 16, ... < n (lanes past n masked off); value may
// also store into other arrays through lanes. With `stream`, whole cache lines of y go out as
// non-temporal stores: for an output too big to stay in cache, that saves reading every line from
// memory before writing it. The partial lines at the ends of the row are stored normally (a line
// written both ways would be flushed half-done).
template <class F>
GLIMPSE_AVX2 inline void write8(float* y, int64_t n, bool stream, F value) {
  auto store = [&](int64_t j, int64_t end) GLIMPSE_AVX2 {
    for (; j + 8 <= end; j += 8) _mm256_storeu_ps(y + j, value(j, Whole{}));
    if (j < end) {
      const Tail lanes{tail_mask256(end - j)};
      lanes.store(y + j, value(j, lanes));
    }
  };
  int64_t j = 0;
  if (stream) {
    j = std::min<int64_t>(n, ((64 - (reinterpret_cast<uintptr_t>(y) & 63)) & 63) / 4);
    store(0, j);
    for (; j + 16 <= n; j += 16) {
      _mm256_stream_ps(y + j, value(j, Whole{}));
      _mm256_stream_ps(y + j + 8, value(j + 8, Whole{}));
    }
  }
  store(j, n);
}

GLIMPSE_AVX2 inline double hsum_pd(__m256 v) {
  __m256d d = _mm256_add_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(v)), _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(d), _mm256_extractf128_pd(d, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

// K sums over [0, n): body(j, lanes, acc) adds its K terms for lanes j..j+7 into acc[0..K-1].
// kSets independent sets of accumulators hide the add latency (bodies as long as an exp do well
// with 2, which leaves the registers to them; light bodies want 4).
template <int K, int kSets = 4, class F>
GLIMPSE_AVX2 inline void sums8(int64_t n, double* out, F body) {
  static_assert(kSets == 2 || kSets == 4, "the final combine adds 2 or 4 sets");
  for (int k = 0; k < K; k++) out[k] = 0;
  for (int64_t b = 0; b < n; b += kSumBlock) {
    const int64_t e = std::min(n, b + kSumBlock);
    __m256 acc[kSets][K];
    for (int s = 0; s < kSets; s++)
      for (int k = 0; k < K; k++) acc[s][k] = _mm256_setzero_ps();
    int64_t j = b;
    for (; j + 8 * kSets <= e; j += 8 * kSets)
      for (int s = 0; s < kSets; s++) body(j + 8 * s, Whole{}, acc[s]);
    for (; j + 8 <= e; j += 8) body(j, Whole{}, acc[0]);
    if (j < e) body(j, Tail{tail_mask256(e - j)}, acc[1]);
    for (int k = 0; k < K; k++) {
      __m256 t = _mm256_add_ps(acc[0][k], acc[1][k]);
      if constexpr (kSets == 4) t = _mm256_add_ps(t, _mm256_add_ps(acc[2][k], acc[3][k]));
      out[k] += hsum_pd(t);
    }
  }
}

// A sum in float lanes (see sums8): layer norm's first estimate of a row's mean.
GLIMPSE_AVX2 inline double sum_avx2(const float* x, int64_t n) {
  double s;
  sums8<1>(n, &s, [&](int64_t j, const auto& lanes, __m256* acc) GLIMPSE_AVX2 {
    acc[0] = _mm256_add_ps(acc[0], lanes.load(x + j));  // masked lanes load as 0
  });
  return s;
}

#endif  // GLIMPSE_X86

// ---------------------------------------------------------------------------------------------
// Layer norm of one row
// ---------------------------------------------------------------------------------------------

// mean + mean_lo is the row mean to about double precision: subtracting both keeps x - mean
// accurate when the row's spread is far below its mean.
struct RowStats {
  float mean, mean_lo, rstd;
};

// The mean and biased variance come from two passes over the (cached) row. The first gives an
// estimate m0, whose error is relative to the sum of |x|; the second sums d = x - m0 and d^2,
// which are exact enough to correct it: mean = m0 + sum d / n, var = sum d^2 / n - (sum d / n)^2.
// A row holding inf or NaN has a mean of inf or NaN and a NaN rstd, as in the reference.
inline RowStats row_stats(float m0, double sum_d, double sum_d2, int64_t n, double eps) {
  if (!std::isfinite(m0)) return {m0, 0.0f, std::numeric_limits<float>::quiet_NaN()};
  const double shift = sum_d / n;
  const double mean = m0 + shift;
  const double var = std::max(0.0, sum_d2 / n - shift * shift);
  const float hi = static_cast<float>(mean);
  return {hi, static_cast<float>(mean - hi), static_cast<float>(1.0 / std::sqrt(var + eps))};
}

inline RowStats stats_scalar(const float* x, int64_t n, double eps) {
  const float m0 = static_cast<float>(sum_scalar(x, n) / n);
  double s1 = 0, s2 = 0;
  for (int64_t j = 0; j < n; j++) {
    const double d = x[j] - m0;
    s1 += d;
    s2 += d * d;
  }
  return row_stats(m0, s1, s2, n, eps);
}

inline void layer_norm_row_scalar(const float* x, const float* gamma, const float* beta, float* y, int64_t n,
                                  RowStats st) {
  for (int64_t j = 0; j < n; j++) {
    float v = ((x[j] - st.mean) - st.mean_lo) * st.rstd;
    if (gamma) v *= gamma[j];
    if (beta) v += beta[j];
    y[j] = v;
  }
}

#ifdef GLIMPSE_X86
// The second pass of the statistics, around a first estimate m0 of the mean (see row_stats).
// Float lanes can overflow where the reference's doubles do not (|x| near 1e19 squared, near
// 1e38 summed): such rows, and rows holding inf or NaN, are redone by the portable code in double.
GLIMPSE_AVX2 inline RowStats stats_around_avx2(const float* x, int64_t n, float m0, double eps) {
  const __m256 mv = _mm256_set1_ps(m0);
  double s[2];
  sums8<2>(n, s, [&](int64_t j, const auto& lanes, __m256* acc) GLIMPSE_AVX2 {
    __m256 d = lanes.keep(_mm256_sub_ps(lanes.load(x + j), mv));
    acc[0] = _mm256_add_ps(acc[0], d);
    acc[1] = _mm256_fmadd_ps(d, d, acc[1]);
  });
  if (!std::isfinite(m0) || !std::isfinite(s[1])) return stats_scalar(x, n, eps);
  return row_stats(m0, s[0], s[1], n, eps);
}

GLIMPSE_AVX2 inline RowStats stats_avx2(const float* x, int64_t n, double eps) {
  return stats_around_avx2(x, n, static_cast<float>(sum_avx2(x, n) / n), eps);
}

GLIMPSE_AVX2 inline void layer_norm_row_avx2(const float* x, const float* gamma, const float* beta, float* y,
                                             int64_t n, RowStats st, bool stream) {
  const __m256 mv = _mm256_set1_ps(st.mean), mlo = _mm256_set1_ps(st.mean_lo), rv = _mm256_set1_ps(st.rstd);
  write8(y, n, stream, [&](int64_t j, const auto& lanes) GLIMPSE_AVX2 {
    __m256 v = _mm256_mul_ps(_mm256_sub_ps(_mm256_sub_ps(lanes.load(x + j), mv), mlo), rv);
    if (gamma && beta) v = _mm256_fmadd_ps(v, lanes.load(gamma + j), lanes.load(beta + j));
    else if (gamma) v = _mm256_mul_ps(v, lanes.load(gamma + j));
    else if (beta) v = _mm256_add_ps(v, lanes.load(beta + j));
    return v;
  });
}
#endif  // GLIMPSE_X86

// The arguments of layerNorm (reduce.cc) and of addLayerNorm (fused.cc), which takes residual
// after x and returns sum = x + residual (before out) besides.
struct LayerNormArgs {
  SpanArg x, residual, gamma, beta;  // residual: addLayerNorm only
  int64_t rows, n;
  double eps;
  Array sum, out, mean, rstd;  // sum: addLayerNorm only
};
inline std::vector<Field<LayerNormArgs>> layer_norm_fields(bool add) {
  using A = LayerNormArgs;
  std::vector<Field<A>> f = {arg::f32_span("x", &A::x)};
  if (add) f.push_back(arg::f32_span("residual", &A::residual));
  f.insert(f.end(), {
      arg::optional(arg::f32_span("gamma", &A::gamma)),
      arg::optional(arg::f32_span("beta", &A::beta)),
      arg::integer("rows", &A::rows),
      arg::integer("n", &A::n),
      arg::number("eps", &A::eps),
  });
  if (add) f.push_back(arg::f32("sum", &A::sum));
  f.insert(f.end(), {arg::f32("out", &A::out), arg::f32("mean", &A::mean), arg::f32("rstd", &A::rstd)});
  return f;
}

}  // namespace rowops
}  // namespace glimpse
