// Fused kernels: two steps that would each make a pass over memory, done in one.
//
// biasActivation: pre = x + bias, out = act(pre), for a linear layer's output [rows, n] (bias
// broadcast over the rows). pre is what the backward pass needs; it may be written over x.
//
// linear: the same after the product x @ weight^T, in the product's epilogue (gemm.h): each block
// of the product gets its bias and activation while it is still in cache, which saves the pass
// that biasActivation makes over it from memory. The arithmetic is biasActivation's, on the
// product sgemm writes, so the results are bit for bit those of matmul then biasActivation.
//
// addLayerNorm: sum = x + residual and out = layerNorm(sum), for a pre-LN transformer's residual
// stream. Each row's sum is normalised while it is in cache, with the same arithmetic as
// reduce.cc's layer norm (from rowops.h), so the results are bit for bit those of add then
// layerNorm; what it saves is the pass that reads the sums back from memory.
//
// Both have an AVX2/FMA version and a portable one; cpu_has_avx2_fma() picks one per call. The
// activations are vecmath.h's, as in elementwise.cc.
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "common.h"
#include "gemm.h"
#include "rowops.h"
#include "vecmath.h"

namespace glimpse {
namespace {

using namespace rowops;

constexpr int64_t kUnit = 64;              // elements; parallel chunks of biasActivation start on multiples
constexpr int64_t kGrainCheap = 1 << 16;   // elements per parallel task: an add (and relu)
constexpr int64_t kGrainMath = 1 << 13;    // the same with a transcendental activation
constexpr int64_t kPiece = 1 << 15;        // elements per parallel task of addLayerNorm

// Activation codes are codes.h's Act, shared with TypeScript; -1 (Act::none) is none.

int64_t div_up(int64_t a, int64_t b) { return (a + b - 1) / b; }

// ---------------------------------------------------------------------------------------------
// Argument checks: every element a kernel touches lies inside its typed array, and outputs
// overlap nothing they should not.
// ---------------------------------------------------------------------------------------------

int64_t checked_mul(int64_t a, int64_t b) {
  int64_t r;
  if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r)) throw ArgError("sizes must be non-negative and not overflow");
  return r;
}

float* f32_span(const Array& a, int64_t offset, int64_t count, const char* what) {
  if (a.type != napi_float32_array) throw ArgError(std::string(what) + " must be a Float32Array");
  if (offset < 0 || offset > static_cast<int64_t>(a.length) || count > static_cast<int64_t>(a.length) - offset) {
    throw ArgError(std::string(what) + ": " + std::to_string(count) + " elements at offset " + std::to_string(offset) +
                   " do not fit its " + std::to_string(a.length));
  }
  return a.f32() + offset;
}

float* f32_span(const SpanArg& a, int64_t count, const char* what) { return f32_span(a.data, a.offset, count, what); }

// f32_span, or null for an optional array given as null.
float* optional_span(const SpanArg& a, int64_t count, const char* what) {
  return a.data.null ? nullptr : f32_span(a, count, what);
}

bool overlap(const float* a, int64_t na, const float* b, int64_t nb) {
  return a && b && na > 0 && nb > 0 && a < b + nb && b < a + na;
}

void require_disjoint(const float* a, int64_t na, const char* an, const float* b, int64_t nb, const char* bn) {
  if (overlap(a, na, b, nb)) throw ArgError(std::string(an) + " and " + bn + " must not overlap");
}

// ---------------------------------------------------------------------------------------------
// Activations, as elementwise.cc computes them
// ---------------------------------------------------------------------------------------------

template <Act kAct>
inline float act_s(float x) {
  if constexpr (kAct == Act::none) return x;
  else if constexpr (kAct == Act::relu) return x > 0 ? x : x == x ? 0.0f : x;
  else if constexpr (kAct == Act::gelu_erf) return gelu_erf_s(x);
  else if constexpr (kAct == Act::gelu_tanh) return gelu_tanh_s(x);
  else if constexpr (kAct == Act::quick_gelu) return quick_gelu_s(x);
  else if constexpr (kAct == Act::sigmoid) return sigmoid_s(x);
  else if constexpr (kAct == Act::tanh) return static_cast<float>(std::tanh(static_cast<double>(x)));
  else if constexpr (kAct == Act::erf) return static_cast<float>(std::erf(static_cast<double>(x)));
  else return softplus_s(x);
}

template <Act kAct>
void bias_act_scalar(const float* x, const float* bias, float* pre, float* out, int64_t len) {
  for (int64_t j = 0; j < len; j++) {
    const float v = x[j] + bias[j];
    if (pre) pre[j] = v;
    out[j] = act_s<kAct>(v);
  }
}

#ifdef GLIMPSE_X86
template <Act kAct>
GLIMPSE_AVX2 inline __m256 act_v(__m256 x) {
  if constexpr (kAct == Act::none) return x;
  else if constexpr (kAct == Act::relu) return relu256_ps(x);
  else if constexpr (kAct == Act::gelu_erf) return gelu_erf256_ps(x);
  else if constexpr (kAct == Act::gelu_tanh) return gelu_tanh256_ps(x);
  else if constexpr (kAct == Act::quick_gelu) return quick_gelu256_ps(x);
  else if constexpr (kAct == Act::sigmoid) return sigmoid256_ps(x);
  else if constexpr (kAct == Act::tanh) return tanh256_ps(x);
  else if constexpr (kAct == Act::erf) return erf256_ps(x);
  else return softplus256_ps(x);
}

template <Act kAct>
GLIMPSE_AVX2 void bias_act_avx2(const float* x, const float* bias, float* pre, float* out, int64_t len, bool stream) {
  write8(out, len, stream, [&](int64_t j, const auto& lanes) GLIMPSE_AVX2 {
    const __m256 v = _mm256_add_ps(lanes.load(x + j), lanes.load(bias + j));
    if (pre) lanes.store(pre + j, v);
    return act_v<kAct>(v);
  });
}
#endif

// One row segment: the AVX2 loop when the machine has it, else the portable one.
template <Act kAct>
inline void bias_act(const float* x, const float* bias, float* pre, float* out, int64_t len, bool avx, bool stream) {
#ifdef GLIMPSE_X86
  if (avx) return bias_act_avx2<kAct>(x, bias, pre, out, len, stream);
#endif
  bias_act_scalar<kAct>(x, bias, pre, out, len);
}

// Calls f(std::integral_constant<Act, a>{}) for the activation whose code is act (-1 is none;
// the code is checked when the arguments are decoded).
template <class F>
void with_activation(int64_t act, F&& f) {
  switch (static_cast<Act>(act)) {
    case Act::none: return f(std::integral_constant<Act, Act::none>{});
    case Act::relu: return f(std::integral_constant<Act, Act::relu>{});
    case Act::gelu_erf: return f(std::integral_constant<Act, Act::gelu_erf>{});
    case Act::gelu_tanh: return f(std::integral_constant<Act, Act::gelu_tanh>{});
    case Act::quick_gelu: return f(std::integral_constant<Act, Act::quick_gelu>{});
    case Act::sigmoid: return f(std::integral_constant<Act, Act::sigmoid>{});
    case Act::tanh: return f(std::integral_constant<Act, Act::tanh>{});
    case Act::erf: return f(std::integral_constant<Act, Act::erf>{});
    case Act::softplus: return f(std::integral_constant<Act, Act::softplus>{});
    case Act::count: break;
  }
}

// ---------------------------------------------------------------------------------------------
// biasActivation(x, xOffset, bias, biasOffset, act, rows, n, pre | null, out); act -1 is none.
// ---------------------------------------------------------------------------------------------

template <Act kAct>
void bias_activation(const float* x, const float* bias, float* pre, float* out, int64_t rows, int64_t n) {
  const int64_t count = rows * n;
  const bool avx = cpu_has_avx2_fma();
  // An output written over its input is in cache already: no streaming for it.
  const bool stream = avx && stream_output(count) && out != x;
  const int64_t grain = (kAct == Act::none || kAct == Act::relu ? kGrainCheap : kGrainMath) / kUnit;
  // The flat index range is split (rows may be few and long); each chunk walks its row segments.
  parallel_for(div_up(count, kUnit), grain, [&](int64_t ub, int64_t ue) {
    const int64_t e = std::min(count, ue * kUnit);
    for (int64_t b = ub * kUnit; b < e;) {
      const int64_t j = b % n, len = std::min(n - j, e - b);
      bias_act<kAct>(x + b, bias + j, pre ? pre + b : nullptr, out + b, len, avx, stream);
      b += len;
    }
    fence_streams(stream);
  });
}

struct BiasActivationArgs {
  SpanArg x, bias;
  int64_t act;
  int64_t rows, n;
  Array pre, out;
};
const Signature<BiasActivationArgs> kBiasActivation{"biasActivation", {
    arg::f32_span("x", &BiasActivationArgs::x),
    arg::f32_span("bias", &BiasActivationArgs::bias),
    arg::optional(arg::code("act", &BiasActivationArgs::act, kActivations)),
    arg::integer("rows", &BiasActivationArgs::rows),
    arg::integer("n", &BiasActivationArgs::n),
    arg::optional(arg::f32("pre", &BiasActivationArgs::pre)),
    arg::f32("out", &BiasActivationArgs::out),
}};

napi_value bias_activation_kernel(napi_env env, BiasActivationArgs& a) {
  const int64_t act = a.act, rows = a.rows, n = a.n;
  const int64_t count = checked_mul(rows, n);
  const float* x = f32_span(a.x, count, "x");
  const float* bias = f32_span(a.bias, n, "bias");
  float* pre = a.pre.null ? nullptr : f32_span(a.pre, 0, count, "pre");
  float* out = f32_span(a.out, 0, count, "out");
  // pre or out may be exactly x (in place); nothing else may overlap, as threads and the
  // vector loops read ahead of where they write.
  if (pre != x) require_disjoint(pre, count, "pre", x, count, "x");
  if (out != x) require_disjoint(out, count, "out", x, count, "x");
  require_disjoint(pre, count, "pre", out, count, "out");
  require_disjoint(pre, count, "pre", bias, n, "bias");
  require_disjoint(out, count, "out", bias, n, "bias");
  if (count == 0) return undefined(env);
  with_activation(act, [&](auto c) { bias_activation<decltype(c)::value>(x, bias, pre, out, rows, n); });
  return undefined(env);
}

// ---------------------------------------------------------------------------------------------
// linear(x, xOffset, [rsX, csX], weight, weightOffset, [rsW, csW], bias, biasOffset, act, rows, n, k,
//        pre | null, out)
// ---------------------------------------------------------------------------------------------

// The elements a strided matrix view reaches: from p, `count` of them (0 for an empty view).
struct Reach {
  const float* p;
  int64_t count;
};

// The [rows, cols] view x with non-negative strides (rs, cs) into a Float32Array: throws unless
// every element it reaches lies inside the array.
Reach matrix_reach(const StridedArg& x, int64_t rows, int64_t cols, const char* what) {
  const Array& a = x.data;
  const int64_t offset = x.offset;
  const Ints& strides = x.strides;
  if (a.type != napi_float32_array) throw ArgError(std::string(what) + " must be a Float32Array");
  if (strides.size() != 2) throw ArgError(std::string(what) + ": expected 2 strides (row, column)");
  const int64_t rs = strides[0], cs = strides[1];
  if (rs < 0 || cs < 0) throw ArgError(std::string(what) + ": strides must be non-negative");
  if (rows == 0 || cols == 0) return {a.f32(), 0};
  int64_t down, across, last;
  if (offset < 0 || __builtin_mul_overflow(rows - 1, rs, &down) || __builtin_mul_overflow(cols - 1, cs, &across) ||
      __builtin_add_overflow(offset, down, &last) || __builtin_add_overflow(last, across, &last) ||
      last >= static_cast<int64_t>(a.length)) {
    throw ArgError(std::string(what) + ": the view (offset " + std::to_string(offset) + ") reaches outside its array of " +
                   std::to_string(a.length) + " elements");
  }
  return {a.f32() + offset, last - offset + 1};
}

// The product goes into pre when it is kept (out is then written from it), else into out, which
// the epilogue updates in place; either way every block is read back while in cache.
template <Act kAct>
void linear(Reach x, int64_t rsX, int64_t csX, Reach w, int64_t rsW, int64_t csW, const float* bias, float* pre,
            float* out, int64_t rows, int64_t n, int64_t k) {
  const bool avx = cpu_has_avx2_fma();
  float* product = pre ? pre : out;
  const GemmEpilogue epilogue = [&](float* c, int64_t ldc, int64_t row0, int64_t block_rows, int64_t col0, int64_t cols) {
    for (int64_t i = 0; i < block_rows; i++) {
      float* p = c + i * ldc;
      bias_act<kAct>(p, bias + col0, pre ? p : nullptr, pre ? out + (row0 + i) * n + col0 : p, cols, avx, false);
    }
  };
  // op(B) = weight^T: element (j, i) of weight is B(i, j).
  sgemm_epilogue(rows, n, k, x.p, rsX, csX, w.p, csW, rsW, product, n, epilogue);
}

struct LinearArgs {
  StridedArg x, weight;
  SpanArg bias;
  int64_t act;
  int64_t rows, n, k;
  Array pre, out;
};
const Signature<LinearArgs> kLinear{"linear", {
    arg::f32_strided("x", &LinearArgs::x),
    arg::f32_strided("weight", &LinearArgs::weight),
    arg::f32_span("bias", &LinearArgs::bias),
    arg::optional(arg::code("act", &LinearArgs::act, kActivations)),
    arg::integer("rows", &LinearArgs::rows),
    arg::integer("n", &LinearArgs::n),
    arg::integer("k", &LinearArgs::k),
    arg::optional(arg::f32("pre", &LinearArgs::pre)),
    arg::f32("out", &LinearArgs::out),
}};

napi_value linear_kernel(napi_env env, LinearArgs& a) {
  const int64_t act = a.act, rows = a.rows, n = a.n, k = a.k;
  const int64_t count = checked_mul(rows, n);
  if (k < 0) throw ArgError("sizes must be non-negative and not overflow");
  const Ints &xs = a.x.strides, &ws = a.weight.strides;
  const Reach x = matrix_reach(a.x, rows, k, "x");
  const Reach w = matrix_reach(a.weight, n, k, "weight");
  const float* bias = f32_span(a.bias, n, "bias");
  float* pre = a.pre.null ? nullptr : f32_span(a.pre, 0, count, "pre");
  float* out = f32_span(a.out, 0, count, "out");
  // The outputs are written while the inputs are still being read, by several threads.
  for (const auto& [o, name] : {std::pair<float*, const char*>{pre, "pre"}, {out, "out"}}) {
    require_disjoint(o, count, name, x.p, x.count, "x");
    require_disjoint(o, count, name, w.p, w.count, "weight");
    require_disjoint(o, count, name, bias, n, "bias");
  }
  require_disjoint(pre, count, "pre", out, count, "out");
  if (count == 0) return undefined(env);
  with_activation(act, [&](auto c) {
    linear<decltype(c)::value>(x, xs[0], xs[1], w, ws[0], ws[1], bias, pre, out, rows, n, k);
  });
  return undefined(env);
}

// ---------------------------------------------------------------------------------------------
// addLayerNorm
// ---------------------------------------------------------------------------------------------

RowStats add_layer_norm_row_scalar(const float* x, const float* r, const float* gamma, const float* beta, float* sum,
                                   float* y, int64_t n, double eps) {
  for (int64_t j = 0; j < n; j++) sum[j] = x[j] + r[j];
  const RowStats st = stats_scalar(sum, n, eps);
  layer_norm_row_scalar(sum, gamma, beta, y, n, st);
  return st;
}

#ifdef GLIMPSE_X86
// The add's pass also sums the first estimate of the mean, exactly as sum_avx2 would. The row of
// sums goes straight to `sum` and is normalised from there while in cache; with streaming stores
// it goes to the scratch row first, and is streamed out from there at the end.
GLIMPSE_AVX2 RowStats add_layer_norm_row_avx2(const float* x, const float* r, const float* gamma, const float* beta,
                                              float* sum, float* y, float* scratch, int64_t n, double eps, bool stream) {
  float* s = stream ? scratch : sum;
  double total;
  sums8<1>(n, &total, [&](int64_t j, const auto& lanes, __m256* acc) GLIMPSE_AVX2 {
    const __m256 v = _mm256_add_ps(lanes.load(x + j), lanes.load(r + j));  // masked lanes are 0
    lanes.store(s + j, v);
    acc[0] = _mm256_add_ps(acc[0], v);
  });
  const RowStats st = stats_around_avx2(s, n, static_cast<float>(total / n), eps);
  layer_norm_row_avx2(s, gamma, beta, y, n, st, stream);
  if (stream) write8(sum, n, true, [&](int64_t j, const auto& lanes) GLIMPSE_AVX2 { return lanes.load(s + j); });
  return st;
}
#endif

// addLayerNorm(x, xOffset, residual, residualOffset, gamma | null, gammaOffset, beta | null, betaOffset,
//              rows, n, eps, sum, out, mean, rstd)
const Signature<LayerNormArgs> kAddLayerNorm{"addLayerNorm", layer_norm_fields(true)};

napi_value add_layer_norm_kernel(napi_env env, LayerNormArgs& a) {
  const int64_t rows = a.rows, n = a.n;
  const double eps = a.eps;
  const int64_t count = checked_mul(rows, n);
  if (n == 0) throw ArgError("cannot normalise rows of 0 elements");
  const float* x = f32_span(a.x, count, "x");
  const float* res = f32_span(a.residual, count, "residual");
  const float* gamma = optional_span(a.gamma, n, "gamma");
  const float* beta = optional_span(a.beta, n, "beta");
  float* sum = f32_span(a.sum, 0, count, "sum");
  float* y = f32_span(a.out, 0, count, "out");
  float* mean = f32_span(a.mean, 0, rows, "mean");
  float* rstd = f32_span(a.rstd, 0, rows, "rstd");
  const std::pair<const float*, int64_t> ins[] = {{x, count}, {res, count}, {gamma, n}, {beta, n}};
  const std::pair<float*, int64_t> outs[] = {{sum, count}, {y, count}, {mean, rows}, {rstd, rows}};
  for (size_t i = 0; i < 4; i++) {
    for (const auto& in : ins) require_disjoint(outs[i].first, outs[i].second, "outputs", in.first, in.second, "inputs");
    for (size_t k = i + 1; k < 4; k++) require_disjoint(outs[i].first, outs[i].second, "outputs", outs[k].first, outs[k].second, "each other");
  }
  const bool avx = cpu_has_avx2_fma(), stream = avx && stream_output(count);
  parallel_for(rows, std::max<int64_t>(1, kPiece / n), [&](int64_t b, int64_t e) {
    std::vector<float> scratch(stream ? n : 0);
    for (int64_t r = b; r < e; r++) {
      const int64_t o = r * n;
#ifdef GLIMPSE_X86
      const RowStats st = avx ? add_layer_norm_row_avx2(x + o, res + o, gamma, beta, sum + o, y + o, scratch.data(), n, eps, stream)
                              : add_layer_norm_row_scalar(x + o, res + o, gamma, beta, sum + o, y + o, n, eps);
#else
      const RowStats st = add_layer_norm_row_scalar(x + o, res + o, gamma, beta, sum + o, y + o, n, eps);
#endif
      mean[r] = st.mean;
      rstd[r] = st.rstd;
    }
    fence_streams(stream);
  });
  return undefined(env);
}

}  // namespace

void register_fused(napi_env env, napi_value exports) {
  export_kernel<kBiasActivation, bias_activation_kernel>(env, exports);
  export_kernel<kLinear, linear_kernel>(env, exports);
  export_kernel<kAddLayerNorm, add_layer_norm_kernel>(env, exports);
}

}  // namespace glimpse
