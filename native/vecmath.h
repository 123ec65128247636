// Float math for the kernels: exp, log, tanh, erf, sigmoid and the activations built on them,
// as AVX2/FMA functions on 8 lanes (name256_ps) and portable scalar functions (name_s).
//
// The vector functions are accurate to a few ulp over the whole float range and follow IEEE
// special values: NaN propagates, exp(-inf) = 0, exp(+large) = inf, log(0) = -inf, log(<0) = NaN.
// The scalar functions use libm (in double where float libm would lose accuracy); they are the
// portable path's and the tail loops' versions, so both paths agree to rounding.
//
// Polynomial coefficients were fitted here (weighted least squares iterated towards minimax
// relative error) on the stated intervals; the comment by each gives its fitted error.
//
// Use: call the 256-bit functions only from functions marked GLIMPSE_AVX2, after checking
// cpu_has_avx2_fma() (common.h).
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

inline float exp_s(float x) { return std::exp(x); }
inline float log_s(float x) { return std::log(x); }
inline float tanh_s(float x) { return std::tanh(x); }
inline float erf_s(float x) { return std::erf(x); }

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
  double phi = d < 0 ? 0.5 * std::erfc(-d * M_SQRT1_2) : 1.0 - 0.5 * std::erfc(d * M_SQRT1_2);
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
  double phi = d < 0 ? 0.5 * std::erfc(-d * M_SQRT1_2) : 1.0 - 0.5 * std::erfc(d * M_SQRT1_2);
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

// e^x. x = n ln2 + r with |r| <= ln2/2; e^r = 1 + r + r^2 q(r), q of degree 4 (relative error of
// q 1.2e-7, so under 1e-8 on e^r). 2^n is applied as two factors so results that are subnormal
// (x down to -103.97) round once, and x > 88.72 overflows to inf as it should.
GLIMPSE_AVX2 inline __m256 exp256_ps(__m256 x) {
  // min/max return their second operand when either is NaN: written this way NaN passes through.
  __m256 xc = _mm256_max_ps(_mm256_set1_ps(-104.0f), _mm256_min_ps(_mm256_set1_ps(89.0f), x));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.428606765330187e-06f), r);
  __m256 q = _mm256_set1_ps(1.390128164e-03f);
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(8.363140747e-03f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(4.166685417e-02f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.666657776e-01f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(0.5f));
  __m256 p = _mm256_fmadd_ps(_mm256_mul_ps(r, r), q, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  __m256i ni = _mm256_cvtps_epi32(n);
  __m256i n1 = _mm256_srai_epi32(ni, 1);
  __m256i n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

// e^(-z^2), with the rounding error of z^2 compensated (it would cost z^2 ulp of relative
// accuracy otherwise). z must be finite and |z| <= 10.5 (beyond that the result is 0 anyway).
GLIMPSE_AVX2 inline __m256 exp_neg_sq256_ps(__m256 z) {
  __m256 z2 = _mm256_mul_ps(z, z);
  __m256 lo = _mm256_fmsub_ps(z, z, z2);  // z*z - z2, exactly
  __m256 e = exp256_ps(_mm256_sub_ps(_mm256_setzero_ps(), z2));
  return _mm256_fnmadd_ps(e, lo, e);  // e^(-z2) * (1 - lo)
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
// sigmoid(v) = v >= 0 ? r : e r, sigmoid(-v) = v >= 0 ? e r : r, sigmoid'(v) = e r^2.
struct Logistic256 {
  __m256 e, r, pos;
};
// v_lo, when given, is the rounding error of v (true argument = v + v_lo): where v is a product
// computed in float, |v| ulp of relative error in e would otherwise go unchecked.
GLIMPSE_AVX2 inline Logistic256 logistic256(__m256 v, __m256 v_lo = _mm256_setzero_ps()) {
  Logistic256 l;
  l.e = exp256_ps(_mm256_sub_ps(_mm256_setzero_ps(), abs256_ps(v)));
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
GLIMPSE_AVX2 inline __m256 sigmoid_neg_of(const Logistic256& l) {  // sigmoid(-v) = 1 - sigmoid(v)
  return select256_ps(l.pos, _mm256_mul_ps(l.e, l.r), l.r);
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

// erfc(z) e^{z^2} for 0.5 <= z <= 10.5 (inputs are clamped to that range), as a polynomial in
// t = 1/(1 + z/2) (relative error 1.7e-9). The result times e^{-z^2} is erfc(z). Below 0.5,
// erf's own series is used: there 1 - erf(z) has no cancellation and erfc no tail to keep.
GLIMPSE_AVX2 inline __m256 erfc_scaled256(__m256 z) {
  z = _mm256_max_ps(_mm256_set1_ps(0.5f), _mm256_min_ps(_mm256_set1_ps(10.5f), z));
  __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(z, _mm256_set1_ps(0.5f), _mm256_set1_ps(1.0f)));
  __m256 p = _mm256_set1_ps(-7.368297875e-02f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(3.481689095e-01f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-6.053897738e-01f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(4.006789923e-01f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.045238599e-01f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(2.339740545e-01f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(2.351950556e-01f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(2.835836112e-01f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(2.819855213e-01f));
  return _mm256_fmadd_ps(p, t, _mm256_set1_ps(3.498226306e-06f));
}

GLIMPSE_AVX2 inline __m256 erf256_ps(__m256 x) {
  __m256 ax = abs256_ps(x);
  __m256 small = _mm256_mul_ps(x, erf_small_poly256(_mm256_mul_ps(x, x)));
  // Inf and NaN: clamp so e^{-z^2} stays finite (NaN is restored by the select below).
  __m256 az = _mm256_min_ps(ax, _mm256_set1_ps(10.5f));
  __m256 erfc = _mm256_mul_ps(exp_neg_sq256_ps(az), erfc_scaled256(az));
  __m256 large = copysign256_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), erfc), x);
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
// Phi = 0.5 erfc(-x/sqrt2); the tail Phi(-|x|) = 0.5 e^{-x^2/2} erfc_scaled(|x|/sqrt2) keeps its
// relative accuracy far out (e^{-x^2/2} is computed from x, not from the rounded x/sqrt2).
struct NormalCdf256 {
  __m256 cdf, pdf;
};
GLIMPSE_AVX2 inline NormalCdf256 normal_cdf256(__m256 x) {
  const __m256 half = _mm256_set1_ps(0.5f);
  __m256 z = _mm256_mul_ps(x, _mm256_set1_ps(0.707106781186547524f));
  __m256 az = abs256_ps(z);
  // Clamp |x| at 10.5 sqrt2 (where Phi(-|x|) has underflowed): keeps x^2 finite.
  __m256 ax = _mm256_min_ps(abs256_ps(x), _mm256_set1_ps(14.849242f));
  // e^{-x^2/2} from x itself: squaring the rounded x/sqrt2 would cost accuracy in the tail.
  __m256 x2 = _mm256_mul_ps(ax, ax);
  __m256 lo = _mm256_fmsub_ps(ax, ax, x2);
  __m256 e = exp256_ps(_mm256_mul_ps(x2, _mm256_set1_ps(-0.5f)));
  e = _mm256_fnmadd_ps(e, _mm256_mul_ps(lo, half), e);
  __m256 tail = _mm256_mul_ps(_mm256_mul_ps(half, e), erfc_scaled256(az));
  __m256 large = select256_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ), tail,
                              _mm256_sub_ps(_mm256_set1_ps(1.0f), tail));
  __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(half, z), erf_small_poly256(_mm256_mul_ps(z, z)), half);
  NormalCdf256 n;
  n.cdf = select256_ps(_mm256_cmp_ps(az, _mm256_set1_ps(0.5f), _CMP_LT_OQ), small, large);
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

// gelu (tanh form) = 0.5x(1 + tanh(u)), u = sqrt(2/pi)(x + 0.044715x^3), computed as x sigmoid(2u).
GLIMPSE_AVX2 inline __m256 gelu_tanh_arg256(__m256 x) {  // 2u
  __m256 x2 = _mm256_mul_ps(x, x);
  return _mm256_mul_ps(x, _mm256_fmadd_ps(x2, _mm256_set1_ps(0.0713548162726f), _mm256_set1_ps(1.5957691216057308f)));
}
GLIMPSE_AVX2 inline __m256 gelu_tanh256_ps(__m256 x) {
  return _mm256_mul_ps(x, sigmoid256_ps(gelu_tanh_arg256(x)));
}
// d/dx x s(2u) = s + x s(1-s) 2u'(x), 2u' = 2 sqrt(2/pi)(1 + 3 * 0.044715 x^2).
GLIMPSE_AVX2 inline __m256 gelu_tanh_grad256_ps(__m256 x) {
  Logistic256 l = logistic256(gelu_tanh_arg256(x));
  __m256 x2 = _mm256_mul_ps(x, x);
  __m256 du = _mm256_fmadd_ps(x2, _mm256_set1_ps(0.2140644488178f), _mm256_set1_ps(1.5957691216057308f));
  return _mm256_fmadd_ps(_mm256_mul_ps(x, du), sigmoid_deriv_of(l), sigmoid_of(l));
}

// 1.702 x with its rounding error (1.702 itself is not a float).
GLIMPSE_AVX2 inline Logistic256 quick_gelu_logistic256(__m256 x, __m256* v) {
  const __m256 c_hi = _mm256_set1_ps(1.702f), c_lo = _mm256_set1_ps(-2.19345093e-08f);
  *v = _mm256_mul_ps(x, c_hi);
  return logistic256(*v, _mm256_fmadd_ps(x, c_lo, _mm256_fmsub_ps(x, c_hi, *v)));
}
GLIMPSE_AVX2 inline __m256 quick_gelu256_ps(__m256 x) {
  __m256 v;
  return _mm256_mul_ps(x, sigmoid_of(quick_gelu_logistic256(x, &v)));
}
GLIMPSE_AVX2 inline __m256 quick_gelu_grad256_ps(__m256 x) {
  __m256 v;
  Logistic256 l = quick_gelu_logistic256(x, &v);
  return _mm256_fmadd_ps(v, sigmoid_deriv_of(l), sigmoid_of(l));
}

// softplus = max(x, 0) + log1p(e^{-|x|}); PyTorch's threshold (x > 20 gives x) agrees to rounding.
GLIMPSE_AVX2 inline __m256 softplus256_ps(__m256 x) {
  __m256 e = exp256_ps(_mm256_sub_ps(_mm256_setzero_ps(), abs256_ps(x)));
  return _mm256_add_ps(_mm256_max_ps(_mm256_setzero_ps(), x), log1p_pos256_ps(e));
}

#endif  // GLIMPSE_X86

}  // namespace glimpse
