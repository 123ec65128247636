// Optimizer updates (AdamW, SGD with momentum), in place on float32 arrays.
//
// Each update is evaluated in double precision in exactly the reference backend's order, and each
// stored quantity (param, moments, momentum buffer) is rounded to float32 once, as the reference
// does when it writes a Float32Array. The results are therefore bit-identical to the reference.
// That needs a separate multiply and add wherever the reference has one, so contraction into
// fused multiply-adds is switched off for this file.
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include <cmath>

#include "common.h"

#if defined(__x86_64__) || defined(__i386__)
#define GLIMPSE_OPTIM_X86 1
#include <immintrin.h>
#endif

namespace glimpse {
namespace {

struct AdamW {
  double wd_factor, one_minus_b1, beta2, one_minus_b2, step_size, bc2_sqrt, eps;
};

inline void adamw_one(const AdamW& h, float* p, const float* g, float* m, float* v) {
  const float pd = static_cast<float>(*p * h.wd_factor);
  const double gd = *g;
  const float md = static_cast<float>(*m + (gd - *m) * h.one_minus_b1);
  const float vd = static_cast<float>(*v * h.beta2 + h.one_minus_b2 * gd * gd);
  *m = md;
  *v = vd;
  *p = static_cast<float>(pd - (h.step_size * md) / (std::sqrt(static_cast<double>(vd)) / h.bc2_sqrt + h.eps));
}

#ifdef GLIMPSE_OPTIM_X86
// Four lanes of doubles at a time; AVX (not FMA) so every operation rounds as the scalar one does.
__attribute__((target("avx2"))) void adamw_avx2(const AdamW& h, float* p, const float* g, float* m, float* v,
                                                int64_t begin, int64_t end) {
  const __m256d wd = _mm256_set1_pd(h.wd_factor), omb1 = _mm256_set1_pd(h.one_minus_b1);
  const __m256d b2 = _mm256_set1_pd(h.beta2), omb2 = _mm256_set1_pd(h.one_minus_b2);
  const __m256d step = _mm256_set1_pd(h.step_size), bc2 = _mm256_set1_pd(h.bc2_sqrt), eps = _mm256_set1_pd(h.eps);
  int64_t i = begin;
  for (; i + 4 <= end; i += 4) {
    const __m256d pd = _mm256_cvtps_pd(_mm256_cvtpd_ps(_mm256_mul_pd(_mm256_cvtps_pd(_mm_loadu_ps(p + i)), wd)));
    const __m256d gd = _mm256_cvtps_pd(_mm_loadu_ps(g + i));
    const __m256d m0 = _mm256_cvtps_pd(_mm_loadu_ps(m + i));
    const __m128 m1 = _mm256_cvtpd_ps(_mm256_add_pd(m0, _mm256_mul_pd(_mm256_sub_pd(gd, m0), omb1)));
    const __m256d v0 = _mm256_cvtps_pd(_mm_loadu_ps(v + i));
    const __m128 v1 = _mm256_cvtpd_ps(_mm256_add_pd(_mm256_mul_pd(v0, b2), _mm256_mul_pd(_mm256_mul_pd(omb2, gd), gd)));
    _mm_storeu_ps(m + i, m1);
    _mm_storeu_ps(v + i, v1);
    const __m256d denom = _mm256_add_pd(_mm256_div_pd(_mm256_sqrt_pd(_mm256_cvtps_pd(v1)), bc2), eps);
    const __m256d upd = _mm256_div_pd(_mm256_mul_pd(step, _mm256_cvtps_pd(m1)), denom);
    _mm_storeu_ps(p + i, _mm256_cvtpd_ps(_mm256_sub_pd(pd, upd)));
  }
  for (; i < end; i++) adamw_one(h, p + i, g + i, m + i, v + i);
}
#endif

struct Sgd {
  double lr, momentum, one_minus_damp, wd;
  bool nesterov, first;
};

inline void sgd_one(const Sgd& h, float* p, const float* g, float* buf) {
  double d = *g + h.wd * *p;
  if (buf) {
    *buf = static_cast<float>(h.first ? d : h.momentum * *buf + h.one_minus_damp * d);
    d = h.nesterov ? d + h.momentum * *buf : *buf;
  }
  *p = static_cast<float>(*p - h.lr * d);
}

#ifdef GLIMPSE_OPTIM_X86
__attribute__((target("avx2"))) void sgd_avx2(const Sgd& h, float* p, const float* g, float* buf, int64_t begin,
                                              int64_t end) {
  const __m256d lr = _mm256_set1_pd(h.lr), mom = _mm256_set1_pd(h.momentum);
  const __m256d omd = _mm256_set1_pd(h.one_minus_damp), wd = _mm256_set1_pd(h.wd);
  int64_t i = begin;
  for (; i + 4 <= end; i += 4) {
    const __m256d pd = _mm256_cvtps_pd(_mm_loadu_ps(p + i));
    __m256d d = _mm256_add_pd(_mm256_cvtps_pd(_mm_loadu_ps(g + i)), _mm256_mul_pd(wd, pd));
    if (buf) {
      const __m256d b0 = h.first ? d
                                 : _mm256_add_pd(_mm256_mul_pd(mom, _mm256_cvtps_pd(_mm_loadu_ps(buf + i))),
                                                 _mm256_mul_pd(omd, d));
      const __m128 b1 = _mm256_cvtpd_ps(b0);
      _mm_storeu_ps(buf + i, b1);
      const __m256d bd = _mm256_cvtps_pd(b1);
      d = h.nesterov ? _mm256_add_pd(d, _mm256_mul_pd(mom, bd)) : bd;
    }
    _mm_storeu_ps(p + i, _mm256_cvtpd_ps(_mm256_sub_pd(pd, _mm256_mul_pd(lr, d))));
  }
  for (; i < end; i++) sgd_one(h, p + i, g + i, buf ? buf + i : nullptr);
}
#endif

// Memory-bound loops: threads only pay off on large tensors.
constexpr int64_t kGrain = 1 << 15;

Array f32_arg(napi_env env, napi_value v, size_t pos, const char* what, int64_t length) {
  Array a = array_arg(env, v, pos);
  if (a.type != napi_float32_array) throw ArgError(std::string(what) + " must be a Float32Array");
  if (length >= 0 && static_cast<int64_t>(a.length) != length)
    throw ArgError(std::string(what) + " has " + std::to_string(a.length) + " elements, the parameter has " +
                   std::to_string(length));
  return a;
}

// adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, biasCorrection1, biasCorrection2)
GLIMPSE_KERNEL(adamw) {
  auto a = args(env, info, 11);
  const Array p = f32_arg(env, a[0], 0, "param", -1);
  const int64_t n = p.length;
  float* g = f32_arg(env, a[1], 1, "grad", n).f32();
  float* m = f32_arg(env, a[2], 2, "m", n).f32();
  float* v = f32_arg(env, a[3], 3, "v", n).f32();
  const double lr = number_arg(env, a[4], 4), beta1 = number_arg(env, a[5], 5), beta2 = number_arg(env, a[6], 6);
  const double eps = number_arg(env, a[7], 7), wd = number_arg(env, a[8], 8);
  const double bc1 = number_arg(env, a[9], 9), bc2 = number_arg(env, a[10], 10);
  const AdamW h{1 - lr * wd, 1 - beta1, beta2, 1 - beta2, lr / bc1, std::sqrt(bc2), eps};
  float* pp = p.f32();
  [[maybe_unused]] const bool avx = cpu_has_avx2_fma();
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
#ifdef GLIMPSE_OPTIM_X86
    if (avx) return adamw_avx2(h, pp, g, m, v, begin, end);
#endif
    for (int64_t i = begin; i < end; i++) adamw_one(h, pp + i, g + i, m + i, v + i);
  });
  return undefined(env);
}

// sgd(param, grad, momentumBuf | null, lr, momentum, dampening, weightDecay, nesterov, firstStep)
GLIMPSE_KERNEL(sgd) {
  auto a = args(env, info, 9);
  const Array p = f32_arg(env, a[0], 0, "param", -1);
  const int64_t n = p.length;
  float* g = f32_arg(env, a[1], 1, "grad", n).f32();
  float* buf = is_null(env, a[2]) ? nullptr : f32_arg(env, a[2], 2, "momentumBuf", n).f32();
  const Sgd h{number_arg(env, a[3], 3), number_arg(env, a[4], 4), 1 - number_arg(env, a[5], 5),
              number_arg(env, a[6], 6), bool_arg(env, a[7], 7), bool_arg(env, a[8], 8)};
  float* pp = p.f32();
  [[maybe_unused]] const bool avx = cpu_has_avx2_fma();
  parallel_for(n, kGrain, [&](int64_t begin, int64_t end) {
#ifdef GLIMPSE_OPTIM_X86
    if (avx) return sgd_avx2(h, pp, g, buf, begin, end);
#endif
    for (int64_t i = begin; i < end; i++) sgd_one(h, pp + i, g + i, buf ? buf + i : nullptr);
  });
  return undefined(env);
}

}  // namespace

void register_optim(napi_env env, napi_value exports) {
  export_fn(env, exports, "adamw", adamw);
  export_fn(env, exports, "sgd", sgd);
}

}  // namespace glimpse
