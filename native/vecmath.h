// Float math for the kernels: exp, log, tanh, erf, sigmoid and the activations built on them
// (GELU in both forms, quick GELU, softplus) with their derivatives, as AVX2/FMA functions on 8
// lanes (name256_ps) and portable scalar functions (name_s).
//
// The vector functions stay within a few float ulps (under 1e-6 relative) of the exact values,
// tails included: sigmoid(-80), gelu(-5) or tanh'(20) keep their relative accuracy, where the
// textbook formulas (1 - s, 0.5x(1 + tanh u), 1 - tanh^2) would cancel to nothing. Special values
// follow IEEE: NaN propagates, exp(-inf) = 0, exp of large x is inf, log(0) = -inf, log(x < 0) =
// NaN, and the activations give what their defining formula gives at +-inf. Two liberties:
// results below about 1e-36 in magnitude may be flushed to 0 by the activations (not by exp256_ps
// itself, which rounds subnormal results correctly), and lanes are computed independently, so an
// element's result never depends on its neighbours, even where a vector takes a slower path.
// The scalar functions compute in double through libm and round once; they are the portable
// kernels' versions, so both paths agree to rounding.
//
// Polynomial coefficients were fitted for this file (least squares iterated towards minimax
// relative error) on the stated intervals; the comment by each gives its fitted error.
//
// Use: call the 256-bit functions only from functions marked GLIMPSE_AVX2, after checking
// cpu_has_avx2_fma() (common.h). Main entry points: exp256_ps, log256_ps, tanh256_ps,
// sigmoid256_ps, erf256_ps, softplus256_ps, relu256_ps, gelu_erf256_ps, gelu_tanh256_ps,
// quick_gelu256_ps and *_grad256_ps; helpers tail_mask256, load_tail256, store_tail256,
// hsum256_ps, hmax256_ps.
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

namespace vecmath_detail {

// e^r for |r| <= ln2/2 (a little beyond is fine): 1 + r + r^2 q(r), q of degree 4 (relative
// error of q 1.2e-7, so under 1e-8 on e^r).
GLIMPSE_AVX2 inline __m256 exp_reduced(__m256 r) {
  __m256 q = _mm256_set1_ps(1.390128164e-03f);
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(8.363140747e-03f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(4.166685417e-02f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.666657776e-01f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(0.5f));
  return _mm256_fmadd_ps(_mm256_mul_ps(r, r), q, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
}

constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2Hi = 0.693145751953125f;  // ln 2 = kLn2Hi + kLn2Lo, to twice float precision
constexpr float kLn2Lo = 1.428606765330187e-06f;

// e^x over the whole float range, for vectors exp256_ps's fast path does not take: 2^n is applied
// as two factors so results that are subnormal (x down to -103.97) round once, x > 88.72
// overflows to inf, NaN stays NaN.
GLIMPSE_AVX2 inline __m256 exp_wide(__m256 x, __m256 x_lo) {
  // min/max return their second operand when either is NaN: written this way NaN passes through.
  __m256 xc = _mm256_max_ps(_mm256_set1_ps(-104.0f), _mm256_min_ps(_mm256_set1_ps(89.0f), x));
  // n as exp_core finds it, so lanes in exp_core's range get the same result here.
  const __m256 shifter = _mm256_set1_ps(12582912.0f);
  __m256 n = _mm256_sub_ps(_mm256_fmadd_ps(xc, _mm256_set1_ps(kLog2e), shifter), shifter);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), xc);
  r = _mm256_add_ps(_mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r), x_lo);
  __m256 p = exp_reduced(r);
  __m256i ni = _mm256_cvtps_epi32(n);
  __m256i n1 = _mm256_srai_epi32(ni, 1);
  __m256i n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

}  // namespace vecmath_detail

// e^(x + x_lo) for x in [-86.5, 88.3], where e^x is a normal float: x = n ln2 + r, |r| <= ln2/2,
// e^x = e^r 2^n with 2^n added straight into the exponent bits.
GLIMPSE_AVX2 inline __m256 exp_core(__m256 x, __m256 x_lo) {
  using namespace vecmath_detail;
  // Adding 1.5 * 2^23 rounds x log2e to the integer n and leaves n in the low mantissa bits.
  const __m256 shifter = _mm256_set1_ps(12582912.0f);
  __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(kLog2e), shifter);
  __m256 n = _mm256_sub_ps(t, shifter);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x);
  r = _mm256_add_ps(_mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r), x_lo);
  __m256 p = exp_reduced(r);
  // t's bits shifted left by 23 are n << 23 (the shifter's own bits fall off the top).
  return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), _mm256_slli_epi32(_mm256_castps_si256(t), 23)));
}

// e^(x + x_lo), within 1.3 ulp; x_lo is a correction far below an ulp of x (the rounding error of
// a computed argument; 0 for plain e^x). Vectors whose results are all normal floats (the usual
// case) take exp_core; others (under/overflow, inf, NaN) the full-range path.
GLIMPSE_AVX2 inline __m256 exp256_ps(__m256 x, __m256 x_lo) {
  __m256 outside = _mm256_or_ps(_mm256_cmp_ps(x, _mm256_set1_ps(-86.5f), _CMP_NGE_UQ),
                                _mm256_cmp_ps(x, _mm256_set1_ps(88.3f), _CMP_NLE_UQ));
  if (__builtin_expect(_mm256_movemask_ps(outside) != 0, 0)) return vecmath_detail::exp_wide(x, x_lo);
  return exp_core(x, x_lo);
}
GLIMPSE_AVX2 inline __m256 exp256_ps(__m256 x) { return exp256_ps(x, _mm256_setzero_ps()); }

// e^(x + x_lo) for x <= 0 (or NaN), without exp256_ps's range branch: results below ~3e-38 (x <
// -86.5, where the fast path would leave the normal range) are flushed to 0. For the activations,
// whose exp arguments are never positive and whose results are tiny there anyway.
GLIMPSE_AVX2 inline __m256 exp_neg256_ps(__m256 x, __m256 x_lo = _mm256_setzero_ps()) {
  const __m256 lowest = _mm256_set1_ps(-86.5f);
  __m256 under = _mm256_cmp_ps(x, lowest, _CMP_LT_OQ);
  return _mm256_andnot_ps(under, exp_core(_mm256_max_ps(lowest, x), x_lo));  // NaN passes the max
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

// Phi(x) (the normal CDF) and phi(x) (its density) together, as the GELU kernels need both.
// With a = |x|, Q = Phi(-a) = 0.5 e^{-a^2/2} erfc_scaled(a/sqrt2) and Phi(x) = x < 0 ? Q : 1 - Q:
// Q <= 0.5, so 1 - Q never cancels, and Q keeps its relative accuracy however small it gets.
// e^{-a^2/2} is computed from a itself, with the rounding error of a^2 compensated.
struct NormalCdf256 {
  __m256 cdf, pdf;
};
// Q = Phi(-a) for |a| <= 4 (z = a/sqrt2 <= 2.83), the usual range: a shorter polynomial for
// erfc_scaled, t G(t - 0.71) of degree 7 (relative error 1.8e-8), and e^{-a^2/2} >= e^-8 needs no
// range handling.
GLIMPSE_AVX2 inline __m256 normal_tail_near256(__m256 a, __m256* e) {
  __m256 m = _mm256_mul_ps(a, _mm256_set1_ps(-0.5f));
  __m256 y = _mm256_mul_ps(m, a);
  *e = exp_core(y, _mm256_fmsub_ps(m, a, y));
  __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(a, _mm256_set1_ps(0.353553390593273762f), _mm256_set1_ps(1.0f)));
  __m256 u = _mm256_sub_ps(t, _mm256_set1_ps(0.71f));
  __m256 p = _mm256_set1_ps(-1.937259361e-02f);
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(4.194879159e-02f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(1.468497515e-02f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(-1.044337973e-01f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(-1.218827069e-02f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(2.993933856e-01f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(4.670409560e-01f));
  p = _mm256_fmadd_ps(p, u, _mm256_set1_ps(3.403632939e-01f));
  return _mm256_mul_ps(*e, _mm256_mul_ps(t, p));
}

// Q for any a >= 0 (or NaN).
GLIMPSE_AVX2 inline __m256 normal_tail_far256(__m256 a, __m256* e) {
  // Beyond 10.5 sqrt2 Q has underflowed; the clamp keeps a^2 finite. NaN passes the min.
  a = _mm256_min_ps(_mm256_set1_ps(14.849242f), a);
  __m256 m = _mm256_mul_ps(a, _mm256_set1_ps(-0.5f));
  __m256 y = _mm256_mul_ps(m, a);
  *e = exp_neg256_ps(y, _mm256_fmsub_ps(m, a, y));
  return _mm256_mul_ps(*e, half_erfc_scaled256(a, 0.353553390593273762f));
}

GLIMPSE_AVX2 inline NormalCdf256 normal_cdf256(__m256 x) {
  __m256 a = abs256_ps(x);
  __m256 far = _mm256_cmp_ps(a, _mm256_set1_ps(4.0f), _CMP_NLE_UQ);
  __m256 e, q = normal_tail_near256(_mm256_min_ps(a, _mm256_set1_ps(4.0f)), &e);
  if (__builtin_expect(_mm256_movemask_ps(far) != 0, 0)) {
    // Only the far lanes take the other formula, so that no lane's result depends on its neighbours.
    __m256 e_far, q_far = normal_tail_far256(a, &e_far);
    q = select256_ps(far, q_far, q);
    e = select256_ps(far, e_far, e);
  }
  NormalCdf256 n;
  n.cdf = select256_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ), q, _mm256_sub_ps(_mm256_set1_ps(1.0f), q));
  n.pdf = _mm256_mul_ps(e, _mm256_set1_ps(0.398942280401432678f));
  return n;
}

// ---------------------------------------------------------------------------------------------
// Activations (PyTorch definitions) and their derivatives
// ---------------------------------------------------------------------------------------------

GLIMPSE_AVX2 inline __m256 relu256_ps(__m256 x) {
  return _mm256_max_ps(_mm256_setzero_ps(), x);  // operand order lets NaN through
}

// gelu (erf form) = x Phi(x); x = -inf gives NaN as 0.5x(1+erf) does.
GLIMPSE_AVX2 inline __m256 gelu_erf256_ps(__m256 x) {
  return _mm256_mul_ps(x, normal_cdf256(x).cdf);
}
GLIMPSE_AVX2 inline __m256 gelu_erf_grad256_ps(__m256 x) {
  NormalCdf256 n = normal_cdf256(x);
  return _mm256_fmadd_ps(x, n.pdf, n.cdf);
}

// gelu (tanh form) = 0.5x(1 + tanh(u)), u = sqrt(2/pi)(x + 0.044715x^3), computed as x sigmoid(2u)
// (no cancellation for x << 0). In the left tail sigmoid(2u) ~ e^{2u} turns an error in 2u into
// |2u| times that relative error, so where 2u < -6 (x < -2.6) it is formed in float-float.
struct GeluTanhArg256 {
  __m256 v, v_lo;
};
GLIMPSE_AVX2 inline GeluTanhArg256 gelu_tanh_arg256(__m256 x) {
  const __m256 a = _mm256_set1_ps(1.595769167e+00f), a_lo = _mm256_set1_ps(-4.534068054e-08f);
  const __m256 b = _mm256_set1_ps(7.135481387e-02f), b_lo = _mm256_set1_ps(2.398832466e-09f);
  __m256 x2 = _mm256_mul_ps(x, x);
  GeluTanhArg256 r;
  r.v = _mm256_mul_ps(x, _mm256_fmadd_ps(x2, b, a));
  r.v_lo = _mm256_setzero_ps();
  __m256 far = _mm256_cmp_ps(r.v, _mm256_set1_ps(-6.0f), _CMP_LT_OQ);
  if (__builtin_expect(_mm256_movemask_ps(far) == 0, 1)) return r;
  __m256 x2_lo = _mm256_fmsub_ps(x, x, x2);
  __m256 p = _mm256_mul_ps(b, x2);
  __m256 p_lo = _mm256_fmsub_ps(b, x2, p);
  __m256 w = _mm256_add_ps(a, p);
  // Two-sum: the exact rounding error of a + p.
  __m256 pb = _mm256_sub_ps(w, a);
  __m256 w_err = _mm256_add_ps(_mm256_sub_ps(a, _mm256_sub_ps(w, pb)), _mm256_sub_ps(p, pb));
  __m256 w_lo = _mm256_add_ps(_mm256_fmadd_ps(b, x2_lo, _mm256_fmadd_ps(b_lo, x2, a_lo)), _mm256_add_ps(p_lo, w_err));
  __m256 v = _mm256_mul_ps(x, w);
  __m256 v_lo = _mm256_fmadd_ps(x, w_lo, _mm256_fmsub_ps(x, w, v));
  // Only the lanes that need it, so that no lane's result depends on its neighbours.
  r.v = select256_ps(far, v, r.v);
  r.v_lo = _mm256_and_ps(far, v_lo);
  return r;
}
// At |x| = 20 the sigmoid is exactly 0 or 1 in float: clamping there keeps x^3 finite.
GLIMPSE_AVX2 inline __m256 clamp20_ps(__m256 x) {
  return _mm256_max_ps(_mm256_set1_ps(-20.0f), _mm256_min_ps(_mm256_set1_ps(20.0f), x));  // NaN passes
}
// x / (1 + e^{-2u}); results below ~1e-37 in magnitude (x < -6.6) flush to -0.
GLIMPSE_AVX2 inline __m256 gelu_tanh256_ps(__m256 x) {
  GeluTanhArg256 u = gelu_tanh_arg256(clamp20_ps(x));
  const __m256 zero = _mm256_setzero_ps();
  __m256 e = exp256_ps(_mm256_sub_ps(zero, u.v), _mm256_sub_ps(zero, u.v_lo));
  return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}
// d/dx x s(2u) = s + x s(1-s) 2u'(x), 2u' = A + 3B x^2.
// Beyond |x| = 20 the derivative is exactly 1 or 0; x - x makes it NaN for x = +-inf, as the
// product inf * 0 in the unsimplified formula does.
GLIMPSE_AVX2 inline __m256 gelu_tanh_grad256_ps(__m256 x) {
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
GLIMPSE_AVX2 inline __m256 quick_gelu256_ps(__m256 x) {
  __m256 v;
  return _mm256_mul_ps(x, sigmoid_of(quick_gelu_logistic256(x, &v)));
}
// s + v s(1-s); x - x makes it NaN for x = +-inf, as inf * 0 in the unsimplified formula does.
GLIMPSE_AVX2 inline __m256 quick_gelu_grad256_ps(__m256 x) {
  __m256 v;
  Logistic256 l = quick_gelu_logistic256(x, &v);
  return _mm256_add_ps(_mm256_fmadd_ps(v, sigmoid_deriv_of(l), sigmoid_of(l)), _mm256_sub_ps(x, x));
}

// softplus = max(x, 0) + log1p(e^{-|x|}); PyTorch's threshold (x > 20 gives x) agrees to rounding.
GLIMPSE_AVX2 inline __m256 softplus256_ps(__m256 x) {
  __m256 e = exp_neg256_ps(_mm256_sub_ps(_mm256_setzero_ps(), abs256_ps(x)));
  return _mm256_add_ps(_mm256_max_ps(_mm256_setzero_ps(), x), log1p_pos256_ps(e));
}

#endif  // GLIMPSE_X86

}  // namespace glimpse
