// Float math for the kernels: exp, log, tanh, erf, sigmoid and the activations built on them (GELU
// in both forms, quick GELU, softplus) with their derivatives, as AVX2/FMA functions on 8 lanes
// (name256_ps) and portable scalar functions (name_s).
//
// The vector functions stay within a few float ulps (under 1e-6 relative) of the exact values,
// tails included: sigmoid(-80), gelu(-5) or tanh'(20) keep their relative accuracy, where the
// textbook formulas (1 - s, 0.5x(1 + tanh u), 1 - tanh^2) would cancel to nothing, and so do the
// GELU derivatives next to their zero near x = -0.75. Special values follow IEEE: NaN propagates,
// exp(-inf) = 0, exp of large x is inf, log(0) = -inf, log(x < 0) = NaN, and the activations give
// what their defining formula gives at +-inf. Two liberties: results below about 1e-36 in magnitude
// may be flushed to 0 by the activations (not by exp256_ps itself, which rounds subnormal results
// correctly), and lanes are computed independently, so an element's result never depends on its
// neighbours, even where a vector takes a slower path. The scalar functions compute in double
// through libm and round once; they are the portable kernels' versions, so both paths agree to
// rounding.
//
// Polynomial coefficients were fitted for this file (least squares iterated towards minimax
// relative error) on the stated intervals; the comment by each gives its fitted error. The exp and
// the GELU kernels (all three forms) are table-driven, for speed: exp scales by 2^(j/8) from an
// 8-entry table, and the GELUs evaluate piecewise polynomials whose coefficients one vpermps per
// coefficient picks for each lane (see piecewise256).
//
// Use: call the 256-bit functions only from functions marked GLIMPSE_AVX2, after checking
// cpu_has_avx2_fma() (common.h). Main entry points: exp256_ps, exp_nonpos256_ps, log256_ps,
// tanh256_ps, sigmoid256_ps, erf256_ps, softplus256_ps, relu256_ps, gelu_erf256_ps,
// gelu_tanh256_ps, quick_gelu256_ps and *_grad256_ps; helpers tail_mask256, load_tail256,
// store_tail256, hsum256_ps, hmax256_ps.
#pragma once
#include <cmath>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#define GLIMPSE_X86 1
#include <immintrin.h>
#endif

#ifndef GLIMPSE_AVX2
#define GLIMPSE_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace glimpse {

// ---------------------------------------------------------------------------------------------
// Scalar versions
// ---------------------------------------------------------------------------------------------

// float libm: correctly rounded or nearly, and faster than going through double.
inline float exp_s(float x) { return std::exp(x); }
inline float log_s(float x) { return std::log(x); }
inline float tanh_s(float x) { return std::tanh(x); }
inline float erf_s(float x) { return std::erf(x); }

constexpr double kSqrtHalf = 0.70710678118654752440;

inline float sigmoid_s(float x) {
  // exp of -|x| only, so no overflow; for x < 0 the tiny result keeps its relative accuracy.
  double e = std::exp(-std::fabs(static_cast<double>(x)));
  double r = 1.0 / (1.0 + e);
  return static_cast<float>(x >= 0 ? r : e * r);
}

inline float softplus_s(float x) {
  double d = x;
  return static_cast<float>(std::fmax(d, 0.0) + std::log1p(std::exp(-std::fabs(d))));
}

// x * Phi(x), Phi the normal CDF; erfc for x < 0 keeps the tiny left tail accurate.
inline float gelu_erf_s(float x) {
  double d = x;
  double phi = d < 0 ? 0.5 * std::erfc(-d * kSqrtHalf) : 1.0 - 0.5 * std::erfc(d * kSqrtHalf);
  return static_cast<float>(d * phi);
}

// 0.5x(1 + tanh(u)) written as x * sigmoid(2u), which has no cancellation for x << 0.
inline float gelu_tanh_s(float x) {
  const double k = 0.7978845608028654;  // sqrt(2/pi)
  double d = x;
  double v = 2.0 * k * (d + 0.044715 * d * d * d);
  double e = std::exp(-std::fabs(v));
  double r = 1.0 / (1.0 + e);
  return static_cast<float>(d * (v >= 0 ? r : e * r));
}

inline float quick_gelu_s(float x) {
  double d = x, v = 1.702 * d;
  double e = std::exp(-std::fabs(v));
  double r = 1.0 / (1.0 + e);
  return static_cast<float>(d * (v >= 0 ? r : e * r));
}

// Derivatives f'(x) of the activations (unaryGrad multiplies by the incoming gradient).
inline float relu_grad_s(float x) { return x > 0 ? 1.0f : 0.0f; }

inline float sigmoid_grad_s(float x) {
  double e = std::exp(-std::fabs(static_cast<double>(x)));
  double r = 1.0 / (1.0 + e);
  return static_cast<float>(e * r * r);  // s(1-s) without the cancellation in 1-s
}

inline float tanh_grad_s(float x) {
  double e = std::exp(-2.0 * std::fabs(static_cast<double>(x)));
  double r = 1.0 / (1.0 + e);
  return static_cast<float>(4.0 * e * r * r);  // 1 - tanh^2 = sech^2
}

inline float erf_grad_s(float x) {
  double d = x;
  return static_cast<float>(1.1283791670955126 * std::exp(-d * d));
}

inline float softplus_grad_s(float x) { return sigmoid_s(x); }

inline float gelu_erf_grad_s(float x) {
  double d = x;
  double phi = d < 0 ? 0.5 * std::erfc(-d * kSqrtHalf) : 1.0 - 0.5 * std::erfc(d * kSqrtHalf);
  return static_cast<float>(phi + d * 0.3989422804014327 * std::exp(-0.5 * d * d));
}

inline float gelu_tanh_grad_s(float x) {
  const double k = 0.7978845608028654, c = 0.044715;
  double d = x;
  double v = 2.0 * k * (d + c * d * d * d);
  double e = std::exp(-std::fabs(v));
  double r = 1.0 / (1.0 + e);
  double s = v >= 0 ? r : e * r;
  return static_cast<float>(s + d * e * r * r * 2.0 * k * (1.0 + 3.0 * c * d * d));
}

inline float quick_gelu_grad_s(float x) {
  double d = x, v = 1.702 * d;
  double e = std::exp(-std::fabs(v));
  double r = 1.0 / (1.0 + e);
  double s = v >= 0 ? r : e * r;
  return static_cast<float>(s + v * e * r * r);
}

#ifdef GLIMPSE_X86

// ---------------------------------------------------------------------------------------------
// Vector helpers
// ---------------------------------------------------------------------------------------------

// Lanes [0, n) set, for loads and stores of a tail of n < 8 elements.
GLIMPSE_AVX2 inline __m256i tail_mask256(int64_t n) {
  const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)), idx);
}
// Masked-off lanes read as 0 and are never touched in memory.
GLIMPSE_AVX2 inline __m256 load_tail256(const float* p, int64_t n) {
  return _mm256_maskload_ps(p, tail_mask256(n));
}
GLIMPSE_AVX2 inline void store_tail256(float* p, int64_t n, __m256 v) {
  _mm256_maskstore_ps(p, tail_mask256(n), v);
}

GLIMPSE_AVX2 inline float hsum256_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
GLIMPSE_AVX2 inline float hmax256_ps(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

GLIMPSE_AVX2 inline __m256 abs256_ps(__m256 x) {
  return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x);
}
// |mag| with the sign of sgn.
GLIMPSE_AVX2 inline __m256 copysign256_ps(__m256 mag, __m256 sgn) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  return _mm256_or_ps(_mm256_andnot_ps(sign, mag), _mm256_and_ps(sign, sgn));
}
// Lane-wise c ? a : b for a comparison mask c.
GLIMPSE_AVX2 inline __m256 select256_ps(__m256 c, __m256 a, __m256 b) {
  return _mm256_blendv_ps(b, a, c);
}

// ---------------------------------------------------------------------------------------------
// exp, log
// ---------------------------------------------------------------------------------------------

// exp_core's domain: e^x is a normal float there, and so is 2^(n/8) below.
constexpr float kExpCoreMin = -86.5f;
constexpr float kExpCoreMax = 88.3f;

namespace vecmath_detail {

constexpr float k8Log2e = 11.5415603f;  // 8 / ln 2
// ln2/8 = kLn2Over8Hi + kLn2Over8Lo, to twice float precision. The high part has 12 significant
// bits, so n kLn2Over8Hi is exact for |n| < 4096 and so are the reductions that subtract it.
constexpr float kLn2Over8Hi = 0.086639404296875f;
constexpr float kLn2Over8Lo = 3.993272912e-06f;
// Adding 1.5 * 2^23 rounds a float of magnitude below 2^22 to an integer and leaves that integer
// in the low mantissa bits (two's complement).
constexpr float kShifter = 12582912.0f;

// Bit patterns of 2^(j/8), j = 0..7 (each rounded to float), less j << 20: see exp_table.
alignas(32) inline constexpr int32_t kExp2EighthsBits[8] = {
    0x3f800000, 0x3f7b95c2, 0x3f7837f0, 0x3f75fed7, 0x3f7504f3, 0x3f75672a, 0x3f7744fd, 0x3f7ac0c7};

// x = n ln2/8 + r with |r| <= ln2/16, n = round(8x/ln2) left in t's low bits (t = kShifter + n).
struct ExpReduced {
  __m256 r, t;
};
GLIMPSE_AVX2 inline ExpReduced exp_reduce(__m256 x) {
  const __m256 shifter = _mm256_set1_ps(kShifter);
  ExpReduced e;
  e.t = _mm256_fmadd_ps(x, _mm256_set1_ps(k8Log2e), shifter);
  __m256 n = _mm256_sub_ps(e.t, shifter);
  e.r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Over8Lo), _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Over8Hi), x));
  return e;
}

// e^r 2^(n/8) for |r| <= ln2/16, n an integer in t's low mantissa bits (t = kShifter + n) with
// 2^(n/8) a normal float. 2^(n/8) = 2^(n >> 3) 2^((n & 7)/8): vpermps looks up the second factor
// by t's low 3 bits, and t << 20 is n << 20 = ((n >> 3) << 23) + ((n & 7) << 20), which adds the
// first factor to the exponent while cancelling the table's j << 20. e^r - 1 = r + c2 r^2 + c3 r^3
// (c2, c3 fitted for this file on |r| <= ln2/16: relative error 2.6e-8 on e^r).
GLIMPSE_AVX2 inline __m256 exp_table(__m256 r, __m256 t) {
  __m256 q = _mm256_fmadd_ps(_mm256_set1_ps(1.666685939e-01f), r, _mm256_set1_ps(5.000647306e-01f));
  __m256 em1 = _mm256_fmadd_ps(_mm256_mul_ps(r, r), q, r);
  __m256i ti = _mm256_castps_si256(t);
  __m256 frac = _mm256_permutevar8x32_ps(
      _mm256_castsi256_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(kExp2EighthsBits))), ti);
  __m256 scale = _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(frac), _mm256_slli_epi32(ti, 20)));
  return _mm256_fmadd_ps(em1, scale, scale);
}

}  // namespace vecmath_detail

// e^x for x in [kExpCoreMin, kExpCoreMax] (not checked), within 1.3 ulp.
GLIMPSE_AVX2 inline __m256 exp_core(__m256 x) {
  vecmath_detail::ExpReduced e = vecmath_detail::exp_reduce(x);
  return vecmath_detail::exp_table(e.r, e.t);
}
// e^(x + x_lo), x_lo a correction far below an ulp of x (the rounding error of a computed argument).
GLIMPSE_AVX2 inline __m256 exp_core(__m256 x, __m256 x_lo) {
  vecmath_detail::ExpReduced e = vecmath_detail::exp_reduce(x);
  return vecmath_detail::exp_table(_mm256_add_ps(e.r, x_lo), e.t);
}

namespace vecmath_detail {

// e^(x + x_lo) over the whole float range, for vectors with lanes outside exp_core's domain. Those
// lanes compute e^(x - k ln2) 2^k with k = -64 (x < kExpCoreMin) or 64 (x > kExpCoreMax), whose
// first factor exp_core handles; the product then rounds once into the subnormals (x down to
// -103.97) or overflows to inf (x > 88.72). Other lanes get exp_core's result unchanged; NaN stays
// NaN.
GLIMPSE_AVX2 inline __m256 exp_wide(__m256 x, __m256 x_lo) {
  // min/max return their second operand when either is NaN: written this way NaN passes through.
  __m256 xc = _mm256_max_ps(_mm256_set1_ps(-104.0f), _mm256_min_ps(_mm256_set1_ps(89.0f), x));
  __m256 low = _mm256_cmp_ps(xc, _mm256_set1_ps(kExpCoreMin), _CMP_LT_OQ);
  __m256 high = _mm256_cmp_ps(xc, _mm256_set1_ps(kExpCoreMax), _CMP_GT_OQ);
  __m256 k8 = _mm256_or_ps(_mm256_and_ps(low, _mm256_set1_ps(-512.0f)), _mm256_and_ps(high, _mm256_set1_ps(512.0f)));
  // k ln2 = 8k ln2/8; 8k kLn2Over8Hi has 12 significant bits and xc - that is exact.
  __m256 xs = _mm256_fnmadd_ps(k8, _mm256_set1_ps(kLn2Over8Hi), xc);
  __m256 lo = _mm256_fnmadd_ps(k8, _mm256_set1_ps(kLn2Over8Lo), x_lo);
  __m256 scale = select256_ps(low, _mm256_set1_ps(0x1p-64f),
                              select256_ps(high, _mm256_set1_ps(0x1p64f), _mm256_set1_ps(1.0f)));
  return _mm256_mul_ps(exp_core(xs, lo), scale);
}

GLIMPSE_AVX2 inline bool any_outside_exp_core(__m256 x) {
  __m256 outside = _mm256_or_ps(_mm256_cmp_ps(x, _mm256_set1_ps(kExpCoreMin), _CMP_NGE_UQ),
                                _mm256_cmp_ps(x, _mm256_set1_ps(kExpCoreMax), _CMP_NLE_UQ));
  return __builtin_expect(_mm256_movemask_ps(outside) != 0, 0);
}

}  // namespace vecmath_detail

// e^x, within 1.3 ulp. Vectors whose results are all normal floats (the usual case) take
// exp_core; others (under/overflow, inf, NaN) the full-range path.
GLIMPSE_AVX2 inline __m256 exp256_ps(__m256 x) {
  if (vecmath_detail::any_outside_exp_core(x)) return vecmath_detail::exp_wide(x, _mm256_setzero_ps());
  return exp_core(x);
}
// e^(x + x_lo), x_lo a correction far below an ulp of x.
GLIMPSE_AVX2 inline __m256 exp256_ps(__m256 x, __m256 x_lo) {
  if (vecmath_detail::any_outside_exp_core(x)) return vecmath_detail::exp_wide(x, x_lo);
  return exp_core(x, x_lo);
}

// e^x for x <= 0 or NaN (softmax's x - max), within 1.3 ulp: exp256_ps without the overflow test.
GLIMPSE_AVX2 inline __m256 exp_nonpos256_ps(__m256 x) {
  __m256 low = _mm256_cmp_ps(x, _mm256_set1_ps(kExpCoreMin), _CMP_NGE_UQ);
  if (__builtin_expect(_mm256_movemask_ps(low) != 0, 0)) return vecmath_detail::exp_wide(x, _mm256_setzero_ps());
  return exp_core(x);
}

// e^(x + x_lo) for x <= 0 (or NaN), without exp256_ps's range branch: results below ~3e-38 (x <
// -86.5, where the fast path would leave the normal range) are flushed to 0. For the activations,
// whose exp arguments are never positive and whose results are tiny there anyway.
GLIMPSE_AVX2 inline __m256 exp_neg256_ps(__m256 x, __m256 x_lo) {
  const __m256 lowest = _mm256_set1_ps(kExpCoreMin);
  __m256 under = _mm256_cmp_ps(x, lowest, _CMP_LT_OQ);
  return _mm256_andnot_ps(under, exp_core(_mm256_max_ps(lowest, x), x_lo));  // NaN passes the max
}
GLIMPSE_AVX2 inline __m256 exp_neg256_ps(__m256 x) {
  const __m256 lowest = _mm256_set1_ps(kExpCoreMin);
  __m256 under = _mm256_cmp_ps(x, lowest, _CMP_LT_OQ);
  return _mm256_andnot_ps(under, exp_core(_mm256_max_ps(lowest, x)));  // NaN passes the max
}

// e^(-z^2), with the rounding error of z^2 passed on to exp (it would cost z^2 ulp of relative
// accuracy otherwise). z must be finite and |z| <= 10.5; results below ~3e-38 flush to 0.
GLIMPSE_AVX2 inline __m256 exp_neg_sq256_ps(__m256 z) {
  __m256 m = _mm256_sub_ps(_mm256_setzero_ps(), z);
  __m256 y = _mm256_mul_ps(m, z);
  return exp_neg256_ps(y, _mm256_fmsub_ps(m, z, y));  // m*z - y: exactly the rounding error
}

// Natural log. x = 2^k m with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(s), s = (m-1)/(m+1),
// |s| <= 0.172, series through s^9 (truncation error 2e-9).
GLIMPSE_AVX2 inline __m256 log256_ps(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.0f);
  // Subnormals: scale into the normal range first.
  __m256 sub = _mm256_cmp_ps(x, _mm256_set1_ps(1.17549435e-38f), _CMP_LT_OQ);
  __m256 xs = select256_ps(sub, _mm256_mul_ps(x, _mm256_set1_ps(8388608.0f)), x);
  __m256 kadj = _mm256_and_ps(sub, _mm256_set1_ps(-23.0f));
  __m256i bits = _mm256_castps_si256(xs);
  __m256i ki = _mm256_sub_epi32(_mm256_srli_epi32(bits, 23), _mm256_set1_epi32(127));
  __m256 m = _mm256_castsi256_ps(
      _mm256_or_si256(_mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)), _mm256_castps_si256(one)));
  __m256 big = _mm256_cmp_ps(m, _mm256_set1_ps(1.41421356f), _CMP_GT_OQ);
  m = select256_ps(big, _mm256_mul_ps(m, _mm256_set1_ps(0.5f)), m);
  __m256 k = _mm256_add_ps(_mm256_add_ps(_mm256_cvtepi32_ps(ki), kadj), _mm256_and_ps(big, one));
  __m256 f = _mm256_sub_ps(m, one);
  __m256 s = _mm256_div_ps(f, _mm256_add_ps(f, _mm256_set1_ps(2.0f)));
  __m256 s2 = _mm256_mul_ps(s, s);
  __m256 p = _mm256_set1_ps(2.0f / 9.0f);
  p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(2.0f / 7.0f));
  p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(2.0f / 5.0f));
  p = _mm256_fmadd_ps(p, s2, _mm256_set1_ps(2.0f / 3.0f));
  __m256 logm = _mm256_fmadd_ps(_mm256_mul_ps(s, s2), p, _mm256_add_ps(s, s));
  __m256 y = _mm256_fmadd_ps(k, _mm256_set1_ps(0.693147182f),
                             _mm256_fmadd_ps(k, _mm256_set1_ps(-1.90465421e-09f), logm));
  // Special values: log(0) = -inf, log(x < 0) = NaN, log(inf) = inf, NaN stays NaN.
  const __m256 zero = _mm256_setzero_ps();
  y = select256_ps(_mm256_cmp_ps(x, zero, _CMP_EQ_OQ), _mm256_set1_ps(-INFINITY), y);
  y = select256_ps(_mm256_cmp_ps(x, zero, _CMP_LT_OQ), _mm256_set1_ps(NAN), y);
  y = select256_ps(_mm256_cmp_ps(x, _mm256_set1_ps(INFINITY), _CMP_EQ_OQ), x, y);
  return select256_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q), x, y);
}

// log(1 + u) for u >= 0 (or NaN): the rounding error of 1 + u is added back to first order.
GLIMPSE_AVX2 inline __m256 log1p_pos256_ps(__m256 u) {
  const __m256 one = _mm256_set1_ps(1.0f);
  __m256 w = _mm256_add_ps(one, u);
  __m256 corr = _mm256_div_ps(_mm256_sub_ps(u, _mm256_sub_ps(w, one)), w);
  return _mm256_add_ps(log256_ps(w), corr);
}

// ---------------------------------------------------------------------------------------------
// sigmoid, tanh
// ---------------------------------------------------------------------------------------------

// Both halves of the logistic function from one exp: with e = exp(-|v|) and r = 1/(1+e),
// sigmoid(v) = v >= 0 ? r : e r and sigmoid'(v) = sigmoid(v) sigmoid(-v) = e r^2, all without the
// cancellation of 1 - sigmoid.
struct Logistic256 {
  __m256 e, r, pos;
};
// v_lo, when given, is the rounding error of v (true argument = v + v_lo): where v is a product
// computed in float, |v| ulp of relative error in e would otherwise go unchecked.
GLIMPSE_AVX2 inline Logistic256 logistic256(__m256 v, __m256 v_lo = _mm256_setzero_ps()) {
  Logistic256 l;
  l.e = exp_neg256_ps(_mm256_sub_ps(_mm256_setzero_ps(), abs256_ps(v)));
  // e^{-|v + lo|} = e^{-|v|} (1 - sign(v) lo)
  __m256 lo_signed = _mm256_xor_ps(v_lo, _mm256_and_ps(v, _mm256_set1_ps(-0.0f)));
  l.e = _mm256_fnmadd_ps(l.e, lo_signed, l.e);
  l.r = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), l.e));
  l.pos = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_GE_OQ);
  return l;
}
GLIMPSE_AVX2 inline __m256 sigmoid_of(const Logistic256& l) {
  return select256_ps(l.pos, l.r, _mm256_mul_ps(l.e, l.r));
}
GLIMPSE_AVX2 inline __m256 sigmoid_deriv_of(const Logistic256& l) {
  return _mm256_mul_ps(_mm256_mul_ps(l.e, l.r), l.r);
}

GLIMPSE_AVX2 inline __m256 sigmoid256_ps(__m256 x) { return sigmoid_of(logistic256(x)); }

// tanh: odd polynomial x + x^3 P(x^2) for |x| < 0.55 (error 4e-9), else 1 - 2/(e^{2|x|} + 1).
GLIMPSE_AVX2 inline __m256 tanh256_ps(__m256 x) {
  __m256 ax = abs256_ps(x);
  __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(-6.610549986e-03f);
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(2.130959742e-02f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-5.390947312e-02f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(1.333311349e-01f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-3.333333135e-01f));
  __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(x, x2), p, x);
  // tanh(9.1) rounds to 1; clamping keeps e^{2|x|} finite. NaN passes the min.
  __m256 e = exp256_ps(_mm256_mul_ps(_mm256_min_ps(_mm256_set1_ps(9.1f), ax), _mm256_set1_ps(2.0f)));
  __m256 t = _mm256_sub_ps(_mm256_set1_ps(1.0f),
                           _mm256_div_ps(_mm256_set1_ps(2.0f), _mm256_add_ps(e, _mm256_set1_ps(1.0f))));
  __m256 large = copysign256_ps(t, x);
  return select256_ps(_mm256_cmp_ps(ax, _mm256_set1_ps(0.55f), _CMP_LT_OQ), small, large);
}

// tanh'(x) = 1 - tanh^2 = 4 e/(1+e)^2 with e = exp(-2|x|): no cancellation for large |x|.
GLIMPSE_AVX2 inline __m256 tanh_grad256_ps(__m256 x) {
  Logistic256 l = logistic256(_mm256_add_ps(x, x));
  return _mm256_mul_ps(_mm256_set1_ps(4.0f), sigmoid_deriv_of(l));
}

GLIMPSE_AVX2 inline __m256 sigmoid_grad256_ps(__m256 x) { return sigmoid_deriv_of(logistic256(x)); }

// ---------------------------------------------------------------------------------------------
// erf and the normal CDF
// ---------------------------------------------------------------------------------------------

// erf(z)/z = P(z^2) for |z| < 0.5 (relative error 1.4e-9).
GLIMPSE_AVX2 inline __m256 erf_small_poly256(__m256 z2) {
  __m256 p = _mm256_set1_ps(4.718033131e-03f);
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-2.675720863e-02f));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(1.128282323e-01f));
  p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(-3.761260808e-01f));
  return _mm256_fmadd_ps(p, z2, _mm256_set1_ps(1.128379107e+00f));
}

// erfc(z) e^{z^2} / 2 for 0 <= z <= 10.5: with t = 1/(1 + z/2), t G(t - 0.45), G a polynomial
// (relative error 3.6e-9). Factoring out t (the result's decay, ~1/z) and centring the variable
// keep the terms small, so evaluating adds about an ulp. Times 2 e^{-z^2} it is erfc(z), with no
// cancellation however far out z is. Pass c = 1/2 for z itself, c = 1/(2 sqrt2) for z = a/sqrt2.
GLIMPSE_AVX2 inline __m256 half_erfc_scaled256(__m256 a, float c) {
  __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(a, _mm256_set1_ps(c), _mm256_set1_ps(1.0f)));
  __m256 u = _mm256_sub_ps(t, _mm256_set1_ps(0.45f));
  __m256 p = _mm256_set1_ps(1.815884188e-02f);
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(-1.543354522e-02f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(-3.303046897e-02f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(4.103365168e-02f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(3.708060831e-02f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(-6.484957784e-02f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(-7.136467844e-02f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(8.867684007e-02f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(2.673180401e-01f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(3.162211180e-01f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(2.389057130e-01f));
  return _mm256_mul_ps(t, p);
}

// erf: the odd series below |x| = 0.5 (where 1 - erfc would cancel), 1 - erfc(|x|) above.
GLIMPSE_AVX2 inline __m256 erf256_ps(__m256 x) {
  __m256 ax = abs256_ps(x);
  __m256 small = _mm256_mul_ps(x, erf_small_poly256(_mm256_mul_ps(x, x)));
  // Clamping keeps z^2 finite for inf; NaN is restored by the last select.
  __m256 az = _mm256_min_ps(ax, _mm256_set1_ps(10.5f));
  __m256 e2 = exp_neg_sq256_ps(az);
  e2 = _mm256_add_ps(e2, e2);
  __m256 one_minus_erfc = _mm256_fnmadd_ps(e2, half_erfc_scaled256(az, 0.5f), _mm256_set1_ps(1.0f));
  __m256 large = copysign256_ps(one_minus_erfc, x);
  __m256 y = select256_ps(_mm256_cmp_ps(ax, _mm256_set1_ps(0.5f), _CMP_LT_OQ), small, large);
  return select256_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q), x, y);
}

// 2/sqrt(pi) e^{-x^2}
GLIMPSE_AVX2 inline __m256 erf_grad256_ps(__m256 x) {
  __m256 ax = _mm256_min_ps(abs256_ps(x), _mm256_set1_ps(10.5f));
  __m256 y = _mm256_mul_ps(_mm256_set1_ps(1.12837916709551257f), exp_neg_sq256_ps(ax));
  return select256_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q), x, y);
}

// Phi(-a) = 0.5 e^{-a^2/2} erfc_scaled(a/sqrt2) for any a >= 0 (or NaN), and e = e^{-a^2/2}
// (phi(a) = e/sqrt(2pi)), keeping relative accuracy however small Phi(-a) gets. e^{-a^2/2} is
// computed from a itself, with the rounding error of a^2 compensated.
GLIMPSE_AVX2 inline __m256 normal_tail256(__m256 a, __m256* e) {
  // Beyond 10.5 sqrt2 Q has underflowed; the clamp keeps a^2 finite. NaN passes the min.
  a = _mm256_min_ps(_mm256_set1_ps(14.849242f), a);
  __m256 m = _mm256_mul_ps(a, _mm256_set1_ps(-0.5f));
  __m256 y = _mm256_mul_ps(m, a);
  *e = exp_neg256_ps(y, _mm256_fmsub_ps(m, a, y));
  return _mm256_mul_ps(*e, half_erfc_scaled256(a, 0.353553390593273762f));
}

// ---------------------------------------------------------------------------------------------
// Activations (PyTorch definitions) and their derivatives
// ---------------------------------------------------------------------------------------------

GLIMPSE_AVX2 inline __m256 relu256_ps(__m256 x) {
  return _mm256_max_ps(_mm256_setzero_ps(), x);  // operand order lets NaN through
}

// GELU in either form is x F(x) with F(x) + F(-x) = 1 (F = Phi, or sigmoid(2u) for the tanh
// form). So gelu(x) = max(x, 0) - |x| F(-|x|), and since gelu'(x) + gelu'(-x) = 1 as well,
// gelu'(x) = x < 0 ? D(|x|) : 1 - D(|x|) with D(a) = gelu'(-a). Neither formula cancels, and the
// tails F(-a) and D(a) keep their relative accuracy however small they get. For |x| < 3.75 the
// tails come from tables of piecewise polynomials, cheaper than the exps and divisions of exact
// formulas, which vectors take beyond (and for NaN) for those lanes. D changes sign at a0 ~ 0.752
// (where gelu has its minimum): the tables hold D(a)/(a0 - a), and D = (a0 - a) * table keeps its
// relative accuracy next to the root as well. Measured against float64 over 28M points in
// [-12, 12], roots and piece edges included: relative error at most 2.8e-7 for |x| < 3.75, 5.2e-7
// beyond.
namespace vecmath_detail {

constexpr float kTableEnd = 3.75f;

// A function of a in [0, kTableEnd) as 8 polynomials of degree 6: piece j = round(2a) covers
// [j/2 - 1/4, j/2 + 1/4] (the first one [0, 1/4]) in w = a - (j/2 + 1/4), w in [-1/2, 0]. The
// expansion at each piece's right end, where the decreasing tails are smallest, keeps the terms
// from cancelling, so Horner's rule adds little error. Row k holds coefficient k of every piece:
// vpermps picks each lane's by j, which the shifter leaves in t's low bits. The tables were fitted
// for this file (near-minimax relative error on each piece, coefficients rounded to float one at
// a time with the lower ones refitted); each comment gives the error measured in float arithmetic.
using PieceTable = float[7][8];

GLIMPSE_AVX2 inline __m256 piecewise256(const PieceTable& c, __m256 a) {
  const __m256 shifter = _mm256_set1_ps(kShifter);
  __m256 t = _mm256_fmadd_ps(a, _mm256_set1_ps(2.0f), shifter);
  __m256i j = _mm256_castps_si256(t);
  __m256 w = _mm256_fmadd_ps(_mm256_sub_ps(t, shifter), _mm256_set1_ps(-0.5f), _mm256_sub_ps(a, _mm256_set1_ps(0.25f)));
  __m256 p = _mm256_permutevar8x32_ps(_mm256_load_ps(c[6]), j);
  for (int k = 5; k >= 0; k--) p = _mm256_fmadd_ps(p, w, _mm256_permutevar8x32_ps(_mm256_load_ps(c[k]), j));
  return p;
}

// Phi(-a): relative error 1.7e-7.
alignas(32) inline constexpr PieceTable kGeluErfTail = {
    {4.012936652e-01f, 2.266273499e-01f, 1.056497768e-01f, 4.005915672e-02f, 1.222447213e-02f, 2.979763085e-03f, 5.770249991e-04f, 8.841729141e-05f},
    {-3.866681159e-01f, -3.011374772e-01f, -1.826489717e-01f, -8.627725393e-02f, -3.173966706e-02f, -9.093591012e-03f, -2.029055962e-03f, -3.525936336e-04f},
    {4.833332077e-02f, 1.129251868e-01f, 1.141594350e-01f, 7.549502701e-02f, 3.570652381e-02f, 1.250262186e-02f, 3.296916606e-03f, 6.611979916e-04f},
    {6.041215733e-02f, 2.194302157e-02f, -1.707497239e-02f, -2.962796949e-02f, -2.149859630e-02f, -9.959714487e-03f, -3.237529658e-03f, -7.664685254e-04f},
    {-1.188607235e-02f, -2.301063575e-02f, -1.338133961e-02f, 5.668763770e-04f, 6.082693115e-03f, 4.670121707e-03f, 2.055742778e-03f, 6.172136054e-04f},
    {-8.789353073e-03f, 2.484059451e-06f, 6.895577535e-03f, 4.808878992e-03f, 2.742216457e-04f, -1.380404690e-03f, -9.291821043e-04f, -3.157277824e-04f},
    {1.023342134e-03f, 3.034085734e-03f, 1.963437069e-03f, -6.665670080e-04f, -1.325004152e-03f, -4.944185494e-04f, 1.132279431e-04f, 1.766704518e-04f}};
// gelu_erf'(-a) / (a0 - a): relative error 1.6e-7.
alignas(32) inline constexpr PieceTable kGeluErfSlopeTail = {
    {6.070780754e-01f, 4.321895540e-01f, 2.462053299e-01f, 1.111252382e-01f, 3.950701654e-02f, 1.102364156e-02f, 2.408678411e-03f, 4.115178890e-04f},
    {-2.831681669e-01f, -3.882191777e-01f, -3.337887526e-01f, -2.031586021e-01f, -9.124867618e-02f, -3.083095327e-02f, -7.918677293e-03f, -1.555836294e-03f},
    {-1.850471795e-01f, -1.882951148e-02f, 1.114659831e-01f, 1.326307505e-01f, 8.623167872e-02f, 3.771968186e-02f, 1.182955876e-02f, 2.737523522e-03f},
    {8.924979717e-02f, 1.139074415e-01f, 5.096444488e-02f, -1.666199043e-02f, -3.699958324e-02f, -2.516095527e-02f, -1.039135363e-02f, -2.940928563e-03f},
    {3.878235072e-02f, -1.578767039e-02f, -4.026947543e-02f, -2.228644304e-02f, 1.035438268e-03f, 8.263780735e-03f, 5.498208106e-03f, 2.086390276e-03f},
    {-1.864916272e-02f, -2.295043878e-02f, -1.091056110e-04f, 1.290438045e-02f, 7.284364663e-03f, -3.328302409e-04f, -2.047287766e-03f, -1.051934203e-03f},
    {-7.664397359e-03f, -3.651311563e-04f, 6.869528908e-03f, 3.617312992e-03f, -1.668218756e-03f, -2.177926945e-03f, -5.311591085e-04f, 2.542931470e-04f}};
// sigmoid(-2u(a)), u(a) = sqrt(2/pi)(a + 0.044715a^3): relative error 1.6e-7.
alignas(32) inline constexpr PieceTable kGeluTanhTail = {
    {4.012985826e-01f, 2.267192602e-01f, 1.058286354e-01f, 4.011692479e-02f, 1.208947971e-02f, 2.808416029e-03f, 4.826544609e-04f, 5.846722343e-05f},
    {-3.866107762e-01f, -3.008767366e-01f, -1.826568991e-01f, -8.669359982e-02f, -3.200180456e-02f, -9.002691135e-03f, -1.860623248e-03f, -2.692862763e-04f},
    {4.854564369e-02f, 1.129625887e-01f, 1.136573702e-01f, 7.533528656e-02f, 3.608415276e-02f, 1.273939945e-02f, 3.248654772e-03f, 5.732114660e-04f},
    {6.060608476e-02f, 2.154365927e-02f, -1.719371416e-02f, -2.916521765e-02f, -2.136967331e-02f, -1.018607151e-02f, -3.344553290e-03f, -7.392676198e-04f},
    {-1.214359887e-02f, -2.317775413e-02f, -1.296974067e-02f, 6.065192283e-04f, 5.793899763e-03f, 4.651017021e-03f, 2.154324902e-03f, 6.403347943e-04f},
    {-8.961249143e-03f, 2.470912586e-04f, 7.057838608e-03f, 4.487114027e-03f, 2.786033729e-04f, -1.221724902e-03f, -9.443296585e-04f, -3.559462202e-04f},
    {1.071909443e-03f, 3.175286809e-03f, 1.905993442e-03f, -7.837307639e-04f, -1.223451574e-03f, -4.644754808e-04f, 6.794587534e-05f, 1.720677392e-04f}};
// gelu_tanh'(-a) / (a0 - a): relative error 2.1e-7.
alignas(32) inline constexpr PieceTable kGeluTanhSlopeTail = {
    {6.063070297e-01f, 4.313538373e-01f, 2.461972535e-01f, 1.118723452e-01f, 4.000867531e-02f, 1.098798402e-02f, 2.227931749e-03f, 3.173802979e-04f},
    {-2.838855982e-01f, -3.874392509e-01f, -3.316653073e-01f, -2.026497275e-01f, -9.240946174e-02f, -3.156588599e-02f, -7.857705466e-03f, -1.360322349e-03f},
    {-1.846707761e-01f, -1.664343476e-02f, 1.113113984e-01f, 1.302346140e-01f, 8.570154756e-02f, 3.868974373e-02f, 1.228392497e-02f, 2.656657249e-03f},
    {9.091796726e-02f, 1.138789803e-01f, 4.851015657e-02f, -1.657878794e-02f, -3.532357514e-02f, -2.500960417e-02f, -1.092056837e-02f, -3.085986711e-03f},
    {3.912144899e-02f, -1.769431308e-02f, -4.009510577e-02f, -2.050784044e-02f, 6.331335171e-04f, 7.506412454e-03f, 5.596296396e-03f, 2.267146017e-03f},
    {-1.955866441e-02f, -2.361307666e-02f, 1.643264201e-03f, 1.265546214e-02f, 6.194733549e-03f, 6.471670349e-05f, -1.740890322e-03f, -1.163254026e-03f},
    {-8.041325025e-03f, -1.716249390e-04f, 7.497269195e-03f, 2.960577840e-03f, -1.784293330e-03f, -1.793057076e-03f, -5.774939200e-04f, 1.554955088e-04f}};
// sigmoid(-1.702a): relative error 9.5e-8.
alignas(32) inline constexpr PieceTable kQuickGeluTail = {
    {3.952013850e-01f, 2.181465924e-01f, 1.064525619e-01f, 4.840667546e-02f, 2.125872299e-02f, 9.189152159e-03f, 3.944424447e-03f, 1.688036136e-03f},
    {-4.068073928e-01f, -2.902903259e-01f, -1.618946642e-01f, -7.840013504e-02f, -3.541320562e-02f, -1.549622510e-02f, -6.686927751e-03f, -2.868185751e-03f},
    {7.255986333e-02f, 1.392747760e-01f, 1.084493175e-01f, 6.025550887e-02f, 2.885359712e-02f, 1.294471044e-02f, 5.645757075e-03f, 2.432654612e-03f},
    {8.523127437e-02f, 3.509733593e-03f, -3.344398737e-02f, -2.743721381e-02f, -1.498371176e-02f, -7.075411268e-03f, -3.151412122e-03f, -1.369908801e-03f},
    {-3.305854276e-02f, -3.371105343e-02f, -3.105038311e-03f, 6.222958677e-03f, 5.107268225e-03f, 2.769595478e-03f, 1.304361504e-03f, 5.804140819e-04f},
    {-2.138323709e-02f, 1.744160242e-02f, 1.025030389e-02f, -1.622256823e-04f, -1.400017529e-03f, -8.349870332e-04f, -3.953644482e-04f, -1.753574179e-04f},
    {7.183291018e-03f, 1.162602194e-02f, -2.031604527e-03f, -2.669866895e-03f, -5.098960246e-04f, 1.063717791e-04f, 1.292731176e-04f, 7.278921839e-05f}};
// quick_gelu'(-a) / (a0 - a): relative error 1.2e-7.
alignas(32) inline constexpr PieceTable kQuickGeluSlopeTail = {
    {5.856471658e-01f, 3.712059855e-01f, 1.922761202e-01f, 8.889597654e-02f, 3.897724673e-02f, 1.672237553e-02f, 7.118525915e-03f, 3.023719415e-03f},
    {-3.824911714e-01f, -4.250285327e-01f, -2.798172235e-01f, -1.431684643e-01f, -6.538356096e-02f, -2.847997472e-02f, -1.218227204e-02f, -5.179238971e-03f},
    {-2.012655437e-01f, 9.257590026e-02f, 1.610779911e-01f, 1.063071936e-01f, 5.324747786e-02f, 2.401098423e-02f, 1.039707847e-02f, 4.436005838e-03f},
    {2.134814709e-01f, 1.277595311e-01f, -1.592746750e-02f, -4.240250960e-02f, -2.704941295e-02f, -1.319037843e-02f, -5.870126653e-03f, -2.527192235e-03f},
    {4.948141053e-02f, -9.611432999e-02f, -3.450600430e-02f, 3.302716883e-03f, 8.113845252e-03f, 5.046770442e-03f, 2.442257013e-03f, 1.083895680e-03f},
    {-1.047976613e-01f, -5.668700673e-03f, 3.883434832e-02f, 5.469097290e-03f, -2.046383685e-03f, -1.578758354e-03f, -7.613445050e-04f, -3.333548084e-04f},
    {-3.516468778e-02f, 3.730371222e-02f, 8.384885266e-03f, -7.470415439e-03f, -2.377951518e-03f, -9.081210737e-05f, 2.077211539e-04f, 1.360315800e-04f}};
// The roots a0 of gelu'(-a) as hi + lo.
constexpr float kGeluErfRootHi = 7.517915368e-01f, kGeluErfRootLo = -1.211444989e-08f;
constexpr float kGeluTanhRootHi = 7.524614334e-01f, kGeluTanhRootLo = -1.133962790e-08f;
constexpr float kQuickGeluRootHi = 7.511542439e-01f, kQuickGeluRootLo = 1.149521367e-08f;

// max(x, 0) - a * tail, with x < 0 giving -0 for max(x, 0): gelu(-0) is -0.
GLIMPSE_AVX2 inline __m256 gelu_from_tail256(__m256 x, __m256 a, __m256 tail) {
  // max returns its second operand unless the first is greater: +0 and NaN pass through.
  return _mm256_fnmadd_ps(a, tail, _mm256_max_ps(_mm256_set1_ps(-0.0f), x));
}

// x < 0 ? D : 1 - D with D = (a0 - a) * ratio; "x < 0" by the sign bit, so -0 counts, where both
// give 1/2. a0 - a is exact near the root.
GLIMPSE_AVX2 inline __m256 gelu_grad_from_tail256(__m256 x, __m256 a, float root_hi, float root_lo, __m256 ratio) {
  __m256 dist = _mm256_add_ps(_mm256_sub_ps(_mm256_set1_ps(root_hi), a), _mm256_set1_ps(root_lo));
  __m256 negative = _mm256_castsi256_ps(_mm256_srai_epi32(_mm256_castps_si256(x), 31));
  __m256 flip = _mm256_andnot_ps(x, _mm256_set1_ps(-0.0f));  // sign bit where x >= +0
  return _mm256_fmadd_ps(_mm256_xor_ps(dist, flip), ratio, _mm256_andnot_ps(negative, _mm256_set1_ps(1.0f)));
}

// y with the lanes the tables do not cover (|x| >= kTableEnd, or NaN) replaced by wide(x), exact
// formulas for any x that the vector computes only when it has such lanes.
template <class Wide>
GLIMPSE_AVX2 inline __m256 with_wide_lanes256(__m256 x, __m256 a, __m256 y, Wide wide) {
  __m256 far = _mm256_cmp_ps(a, _mm256_set1_ps(kTableEnd), _CMP_NLT_UQ);
  if (__builtin_expect(_mm256_movemask_ps(far) != 0, 0)) y = select256_ps(far, wide(x), y);
  return y;
}

// Phi(x) = x < 0 ? Q : 1 - Q with Q = Phi(-|x|), and phi(x).
GLIMPSE_AVX2 inline __m256 normal_cdf_wide256(__m256 x, __m256* pdf) {
  __m256 e, q = normal_tail256(abs256_ps(x), &e);
  *pdf = _mm256_mul_ps(e, _mm256_set1_ps(0.398942280401432678f));
  return select256_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ), q, _mm256_sub_ps(_mm256_set1_ps(1.0f), q));
}
GLIMPSE_AVX2 inline __m256 gelu_erf_wide256(__m256 x) {
  __m256 pdf;
  return _mm256_mul_ps(x, normal_cdf_wide256(x, &pdf));
}
GLIMPSE_AVX2 inline __m256 gelu_erf_grad_wide256(__m256 x) {
  __m256 pdf, cdf = normal_cdf_wide256(x, &pdf);
  return _mm256_fmadd_ps(x, pdf, cdf);
}

// 2u = x (A + B x^2) as v + v_lo in float-float. Where 2u << 0, sigmoid(2u) ~ e^{2u} turns an error
// in 2u into |2u| times that relative error.
struct GeluTanhArg256 {
  __m256 v, v_lo;
};
GLIMPSE_AVX2 inline GeluTanhArg256 gelu_tanh_arg256(__m256 x) {
  const __m256 a = _mm256_set1_ps(1.595769167e+00f), a_lo = _mm256_set1_ps(-4.534068054e-08f);
  const __m256 b = _mm256_set1_ps(7.135481387e-02f), b_lo = _mm256_set1_ps(2.398832466e-09f);
  __m256 x2 = _mm256_mul_ps(x, x);
  __m256 x2_lo = _mm256_fmsub_ps(x, x, x2);
  __m256 p = _mm256_mul_ps(b, x2);
  __m256 p_lo = _mm256_fmsub_ps(b, x2, p);
  __m256 w = _mm256_add_ps(a, p);
  // Two-sum: the exact rounding error of a + p.
  __m256 pb = _mm256_sub_ps(w, a);
  __m256 w_err = _mm256_add_ps(_mm256_sub_ps(a, _mm256_sub_ps(w, pb)), _mm256_sub_ps(p, pb));
  __m256 w_lo = _mm256_add_ps(_mm256_fmadd_ps(b, x2_lo, _mm256_fmadd_ps(b_lo, x2, a_lo)), _mm256_add_ps(p_lo, w_err));
  GeluTanhArg256 r;
  r.v = _mm256_mul_ps(x, w);
  r.v_lo = _mm256_fmadd_ps(x, w_lo, _mm256_fmsub_ps(x, w, r.v));
  return r;
}
// At |x| = 20 the sigmoid is exactly 0 or 1 in float: clamping there keeps x^3 finite.
GLIMPSE_AVX2 inline __m256 clamp20_ps(__m256 x) {
  return _mm256_max_ps(_mm256_set1_ps(-20.0f), _mm256_min_ps(_mm256_set1_ps(20.0f), x));  // NaN passes
}
// x / (1 + e^{-2u}); results below ~1e-37 in magnitude (x < -6.6) flush to -0.
GLIMPSE_AVX2 inline __m256 gelu_tanh_wide256(__m256 x) {
  GeluTanhArg256 u = gelu_tanh_arg256(clamp20_ps(x));
  const __m256 zero = _mm256_setzero_ps();
  __m256 e = exp256_ps(_mm256_sub_ps(zero, u.v), _mm256_sub_ps(zero, u.v_lo));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}
// d/dx x s(2u) = s + x s(1-s) 2u'(x), 2u' = A + 3B x^2.
// Beyond |x| = 20 the derivative is exactly 1 or 0; x - x makes it NaN for x = +-inf, as the
// product inf * 0 in the unsimplified formula does.
GLIMPSE_AVX2 inline __m256 gelu_tanh_grad_wide256(__m256 x) {
  __m256 xc = clamp20_ps(x);
  GeluTanhArg256 u = gelu_tanh_arg256(xc);
  Logistic256 l = logistic256(u.v, u.v_lo);
  __m256 du = _mm256_fmadd_ps(_mm256_mul_ps(xc, xc), _mm256_set1_ps(2.140644491e-01f), _mm256_set1_ps(1.595769167e+00f));
  __m256 d = _mm256_fmadd_ps(_mm256_mul_ps(xc, du), sigmoid_deriv_of(l), sigmoid_of(l));
  return _mm256_add_ps(d, _mm256_sub_ps(x, x));
}

// 1.702 x with its rounding error (1.702 itself is not a float). Beyond |x| = 100 the sigmoid is
// exactly 0 or 1 in float; clamping there keeps the error term finite for x = +-inf.
GLIMPSE_AVX2 inline Logistic256 quick_gelu_logistic256(__m256 x, __m256* v) {
  const __m256 c_hi = _mm256_set1_ps(1.702f), c_lo = _mm256_set1_ps(-2.193450932e-08f);
  __m256 xc = _mm256_max_ps(_mm256_set1_ps(-100.0f), _mm256_min_ps(_mm256_set1_ps(100.0f), x));  // NaN passes
  *v = _mm256_mul_ps(xc, c_hi);
  return logistic256(*v, _mm256_fmadd_ps(xc, c_lo, _mm256_fmsub_ps(xc, c_hi, *v)));
}
GLIMPSE_AVX2 inline __m256 quick_gelu_wide256(__m256 x) {
  __m256 v;
  return _mm256_mul_ps(x, sigmoid_of(quick_gelu_logistic256(x, &v)));
}
// s + v s(1-s); x - x makes it NaN for x = +-inf, as inf * 0 in the unsimplified formula does.
GLIMPSE_AVX2 inline __m256 quick_gelu_grad_wide256(__m256 x) {
  __m256 v;
  Logistic256 l = quick_gelu_logistic256(x, &v);
  return _mm256_add_ps(_mm256_fmadd_ps(v, sigmoid_deriv_of(l), sigmoid_of(l)), _mm256_sub_ps(x, x));
}

}  // namespace vecmath_detail

// gelu (erf form) = x Phi(x); x = -inf gives NaN as 0.5x(1+erf) does.
GLIMPSE_AVX2 inline __m256 gelu_erf256_ps(__m256 x) {
  using namespace vecmath_detail;
  __m256 a = abs256_ps(x);
  return with_wide_lanes256(x, a, gelu_from_tail256(x, a, piecewise256(kGeluErfTail, a)), gelu_erf_wide256);
}
// Phi(x) + x phi(x); x = +-inf gives NaN as the product inf * 0 does.
GLIMPSE_AVX2 inline __m256 gelu_erf_grad256_ps(__m256 x) {
  using namespace vecmath_detail;
  __m256 a = abs256_ps(x);
  __m256 y = gelu_grad_from_tail256(x, a, kGeluErfRootHi, kGeluErfRootLo, piecewise256(kGeluErfSlopeTail, a));
  return with_wide_lanes256(x, a, y, gelu_erf_grad_wide256);
}

// gelu (tanh form) = 0.5x(1 + tanh(u)), u = sqrt(2/pi)(x + 0.044715x^3), which is x sigmoid(2u).
GLIMPSE_AVX2 inline __m256 gelu_tanh256_ps(__m256 x) {
  using namespace vecmath_detail;
  __m256 a = abs256_ps(x);
  return with_wide_lanes256(x, a, gelu_from_tail256(x, a, piecewise256(kGeluTanhTail, a)), gelu_tanh_wide256);
}
GLIMPSE_AVX2 inline __m256 gelu_tanh_grad256_ps(__m256 x) {
  using namespace vecmath_detail;
  __m256 a = abs256_ps(x);
  __m256 y = gelu_grad_from_tail256(x, a, kGeluTanhRootHi, kGeluTanhRootLo, piecewise256(kGeluTanhSlopeTail, a));
  return with_wide_lanes256(x, a, y, gelu_tanh_grad_wide256);
}

// quick gelu = x sigmoid(1.702x), a GELU of the same kind.
GLIMPSE_AVX2 inline __m256 quick_gelu256_ps(__m256 x) {
  using namespace vecmath_detail;
  __m256 a = abs256_ps(x);
  return with_wide_lanes256(x, a, gelu_from_tail256(x, a, piecewise256(kQuickGeluTail, a)), quick_gelu_wide256);
}
GLIMPSE_AVX2 inline __m256 quick_gelu_grad256_ps(__m256 x) {
  using namespace vecmath_detail;
  __m256 a = abs256_ps(x);
  __m256 y = gelu_grad_from_tail256(x, a, kQuickGeluRootHi, kQuickGeluRootLo, piecewise256(kQuickGeluSlopeTail, a));
  return with_wide_lanes256(x, a, y, quick_gelu_grad_wide256);
}

// softplus = max(x, 0) + log1p(e^{-|x|}); PyTorch's threshold (x > 20 gives x) agrees to rounding.
GLIMPSE_AVX2 inline __m256 softplus256_ps(__m256 x) {
  __m256 e = exp_neg256_ps(_mm256_sub_ps(_mm256_setzero_ps(), abs256_ps(x)));
  return _mm256_add_ps(_mm256_max_ps(_mm256_setzero_ps(), x), log1p_pos256_ps(e));
}

#endif  // GLIMPSE_X86

}  // namespace glimpse
