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

// a's data, checked to hold as many elements as the parameter.
float* same_length(const Array& a, int64_t length, const char* what) {
  if (static_cast<int64_t>(a.length) != length)
    throw ArgError(std::string(what) + " has " + std::to_string(a.length) + " elements, the parameter has " +
                   std::to_string(length));
  return a.f32();
}

// adamw(param, grad, m, v, lr, beta1, beta2, eps, weightDecay, biasCorrection1, biasCorrection2)
struct AdamWArgs {
  Array param, grad, m, v;
  double lr, beta1, beta2, eps, weight_decay, bias_correction1, bias_correction2;
};
const Signature<AdamWArgs> kAdamW{"adamw", {
    arg::f32("param", &AdamWArgs::param),
    arg::f32("grad", &AdamWArgs::grad),
    arg::f32("m", &AdamWArgs::m),
    arg::f32("v", &AdamWArgs::v),
    arg::number("lr", &AdamWArgs::lr),
    arg::number("beta1", &AdamWArgs::beta1),
    arg::number("beta2", &AdamWArgs::beta2),
    arg::number("eps", &AdamWArgs::eps),
    arg::number("weightDecay", &AdamWArgs::weight_decay),
    arg::number("biasCorrection1", &AdamWArgs::bias_correction1),
    arg::number("biasCorrection2", &AdamWArgs::bias_correction2),
}};

napi_value adamw(napi_env env, AdamWArgs& a) {
  const int64_t n = a.param.length;
  float* g = same_length(a.grad, n, "grad");
  float* m = same_length(a.m, n, "m");
  float* v = same_length(a.v, n, "v");
  const double lr = a.lr, beta1 = a.beta1, beta2 = a.beta2, eps = a.eps, wd = a.weight_decay;
  const double bc1 = a.bias_correction1, bc2 = a.bias_correction2;
  const AdamW h{1 - lr * wd, 1 - beta1, beta2, 1 - beta2, lr / bc1, std::sqrt(bc2), eps};
  float* pp = a.param.f32();
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
struct SgdArgs {
  Array param, grad, momentum_buf;
  double lr, momentum, dampening, weight_decay;
  bool nesterov, first_step;
};
const Signature<SgdArgs> kSgd{"sgd", {
    arg::f32("param", &SgdArgs::param),
    arg::f32("grad", &SgdArgs::grad),
    arg::optional(arg::f32("momentumBuf", &SgdArgs::momentum_buf)),
    arg::number("lr", &SgdArgs::lr),
    arg::number("momentum", &SgdArgs::momentum),
    arg::number("dampening", &SgdArgs::dampening),
    arg::number("weightDecay", &SgdArgs::weight_decay),
    arg::flag("nesterov", &SgdArgs::nesterov),
    arg::flag("firstStep", &SgdArgs::first_step),
}};

napi_value sgd(napi_env env, SgdArgs& a) {
  const int64_t n = a.param.length;
  float* g = same_length(a.grad, n, "grad");
  float* buf = a.momentum_buf.null ? nullptr : same_length(a.momentum_buf, n, "momentumBuf");
  const Sgd h{a.lr, a.momentum, 1 - a.dampening, a.weight_decay, a.nesterov, a.first_step};
  float* pp = a.param.f32();
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
  export_kernel<kAdamW, adamw>(env, exports);
  export_kernel<kSgd, sgd>(env, exports);
}

}  // namespace glimpse
