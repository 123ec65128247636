// Elementwise kernels: copy (with dtype casts), fill, unary math, activation gradients, binary
// arithmetic / comparisons / logic with broadcasting, and where.
//
// Every operand arrives as a strided view over a typed array. The views' common shape is first
// simplified: size-1 axes are dropped and neighbouring axes that every operand walks contiguously
// are merged, so a dense tensor becomes one flat row, a bias added over [M, N] becomes M rows
// against one repeated row, and only truly strided layouts keep several axes. The flattened index
// range is then split across threads, and each thread walks its part row by row. Within a row an
// operand has stride 1 (used in place), stride 0 (a broadcast scalar: the kernels have variants
// for it) or another stride (gathered into a small buffer first, so the math still runs dense).
// Two layouts get their own loops: a copy from a source transposed in its last two axes (tiled),
// and outputs past 16 MiB, written with streaming stores.
//
// float32 is the compute type: the math kernels take float32 operands, comparisons and logic also
// int32 and bool/uint8, and copy converts between all dtypes but int64 (which only copies to
// itself). The TypeScript wrapper sends everything else to the reference backend; the checks
// here refuse it too, with a JS error, as they refuse views that reach outside their arrays.
// Results match the reference's float64 math to a few float ulps (see vecmath.h).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "common.h"
#include "vecmath.h"

namespace glimpse {
namespace {

constexpr int kMaxDims = 16;
constexpr int kMaxOps = 4;
constexpr int64_t kBlock = 256;            // elements per gather buffer
constexpr int64_t kGrainCheap = 1 << 16;   // elements per parallel task: loads/stores only
constexpr int64_t kGrainMath = 1 << 13;    // the same for transcendental functions
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// The codes DT, UOp, Act and BOp are codes.h's, shared with TypeScript.

bool is_comparison(BOp op) { return op >= BOp::eq && op <= BOp::ge; }
bool is_logic(BOp op) { return op == BOp::logical_and || op == BOp::logical_or; }

size_t dtype_size(DT t) {
  switch (t) {
    case DT::f64: case DT::i64: return 8;
    case DT::f32: case DT::i32: return 4;
    case DT::u8: case DT::boolean: return 1;
  }
  return 1;
}

napi_typedarray_type dtype_array(DT t) {
  switch (t) {
    case DT::f32: return napi_float32_array;
    case DT::f64: return napi_float64_array;
    case DT::i32: return napi_int32_array;
    case DT::i64: return napi_bigint64_array;
    case DT::u8: case DT::boolean: return napi_uint8_array;
  }
  return napi_uint8_array;
}

// ---------------------------------------------------------------------------------------------
// Views: parsing, bounds checks, and the iteration plan
// ---------------------------------------------------------------------------------------------

struct View {
  char* base = nullptr;  // element 0 of the typed array
  DT dtype = DT::f32;
  int64_t offset = 0;
  std::vector<int64_t> strides;
};

int64_t numel_of(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) throw ArgError("shape entries must be non-negative");
    if (__builtin_mul_overflow(n, d, &n)) throw ArgError("shape is too large");
  }
  return n;
}

// The view x of the given shape (its strides move into the view): checks the array's type against
// dtype and that every element the view can reach lies inside the array.
View make_view(StridedArg& x, DT dtype, const Ints& shape, const char* what) {
  const Array& arr = x.data;
  if (arr.type != dtype_array(dtype)) throw ArgError(std::string(what) + ": typed array does not match its dtype");
  View v;
  v.base = static_cast<char*>(arr.data);
  v.dtype = dtype;
  v.offset = x.offset;
  v.strides = std::move(x.strides);
  if (v.strides.size() != shape.size()) throw ArgError(std::string(what) + ": strides and shape differ in rank");
  if (numel_of(shape) == 0) return v;
  int64_t lo = v.offset, hi = v.offset;
  for (size_t d = 0; d < shape.size(); d++) {
    int64_t span;
    if (__builtin_mul_overflow(shape[d] - 1, v.strides[d], &span)) throw ArgError(std::string(what) + ": strides overflow");
    if (__builtin_add_overflow(span < 0 ? lo : hi, span, span < 0 ? &lo : &hi))
      throw ArgError(std::string(what) + ": strides overflow");
  }
  if (lo < 0 || hi >= static_cast<int64_t>(arr.length))
    throw ArgError(std::string(what) + ": view reaches outside its array of " + std::to_string(arr.length) + " elements");
  return v;
}

// A whole dense output of n elements.
View make_out(const Array& arr, DT dtype, const Ints& shape, const char* what) {
  if (arr.type != dtype_array(dtype)) throw ArgError(std::string(what) + ": typed array does not match its dtype");
  int64_t n = numel_of(shape);
  if (static_cast<int64_t>(arr.length) < n)
    throw ArgError(std::string(what) + ": array of " + std::to_string(arr.length) + " elements is too small for " + std::to_string(n));
  View v;
  v.base = static_cast<char*>(arr.data);
  v.dtype = dtype;
  v.strides.assign(shape.size(), 0);
  int64_t s = 1;
  for (size_t d = shape.size(); d-- > 0;) {
    v.strides[d] = s;
    s *= shape[d];
  }
  return v;
}

// The common shape with size-1 axes dropped and mergeable neighbours merged; per operand, the
// strides of the merged axes. Always at least one axis (a 0-d tensor is one row of 1).
struct Plan {
  int nd = 0;
  int nops = 0;
  int64_t numel = 0;
  int64_t shape[kMaxDims];
  int64_t strides[kMaxOps][kMaxDims];
  char* base[kMaxOps];
  int64_t elem[kMaxOps];  // bytes per element
};

Plan make_plan(const std::vector<int64_t>& shape, std::initializer_list<const View*> views) {
  if (shape.size() > kMaxDims) throw ArgError("at most " + std::to_string(kMaxDims) + " dimensions");
  Plan p;
  p.nops = static_cast<int>(views.size());
  p.numel = numel_of(shape);
  int k = 0;
  for (const View* v : views) {
    p.elem[k] = static_cast<int64_t>(dtype_size(v->dtype));
    p.base[k] = v->base + v->offset * p.elem[k];
    k++;
  }
  // Walk from the innermost axis outwards, appending to (or merging into) the plan's axes, which
  // are built innermost-first and reversed at the end.
  int nd = 0;
  for (int d = static_cast<int>(shape.size()) - 1; d >= 0; d--) {
    if (shape[d] == 1) continue;
    bool merge = nd > 0;
    k = 0;
    for (const View* v : views) {
      if (merge && v->strides[d] != p.strides[k][nd - 1] * p.shape[nd - 1]) merge = false;
      k++;
    }
    if (merge) {
      p.shape[nd - 1] *= shape[d];
      continue;
    }
    p.shape[nd] = shape[d];
    k = 0;
    for (const View* v : views) p.strides[k++][nd] = v->strides[d];
    nd++;
  }
  if (nd == 0) {
    p.shape[0] = 1;
    for (k = 0; k < p.nops; k++) p.strides[k][0] = 0;
    nd = 1;
  }
  std::reverse(p.shape, p.shape + nd);
  for (k = 0; k < p.nops; k++) std::reverse(p.strides[k], p.strides[k] + nd);
  p.nd = nd;
  return p;
}

// Calls row(n, ptr[], inner_stride[]) for the rows making up flat indices [begin, end): ptr[k] is
// operand k's first element of the row, inner_stride[k] its stride (elements) along the row.
template <class Row>
void walk(const Plan& p, int64_t begin, int64_t end, Row&& row) {
  const int nd = p.nd, inner_d = nd - 1;
  const int64_t inner = p.shape[inner_d];
  int64_t idx[kMaxDims] = {0};
  int64_t r = begin / inner, col = begin % inner;
  for (int d = inner_d - 1; d >= 0; d--) {
    idx[d] = r % p.shape[d];
    r /= p.shape[d];
  }
  char* row_ptr[kMaxOps];  // start (column 0) of the current row
  int64_t inner_stride[kMaxOps];
  for (int k = 0; k < p.nops; k++) {
    int64_t off = 0;
    for (int d = 0; d < inner_d; d++) off += idx[d] * p.strides[k][d];
    row_ptr[k] = p.base[k] + off * p.elem[k];
    inner_stride[k] = p.strides[k][inner_d];
  }
  int64_t pos = begin;
  while (pos < end) {
    int64_t n = std::min(inner - col, end - pos);
    char* ptr[kMaxOps];
    for (int k = 0; k < p.nops; k++) ptr[k] = row_ptr[k] + col * inner_stride[k] * p.elem[k];
    row(n, ptr, inner_stride);
    pos += n;
    col = 0;
    if (pos >= end) break;
    for (int d = inner_d - 1; d >= 0; d--) {  // next row: odometer over the outer axes
      idx[d]++;
      for (int k = 0; k < p.nops; k++) row_ptr[k] += p.strides[k][d] * p.elem[k];
      if (idx[d] < p.shape[d]) break;
      for (int k = 0; k < p.nops; k++) row_ptr[k] -= p.strides[k][d] * p.shape[d] * p.elem[k];
      idx[d] = 0;
    }
  }
}

// Outputs of at least this many bytes are written with streaming stores (see drive()): well past
// what the caches hold, so the output would only evict the inputs on its way to memory.
constexpr int64_t kStreamBytes = 16 << 20;

bool streams(const Plan& p) {
#ifdef GLIMPSE_X86
  return p.numel * p.elem[0] >= kStreamBytes && cpu_has_avx2_fma();
#else
  return false;
#endif
}

template <class Row>
void run(const Plan& p, int64_t grain, Row&& row, bool stream = false) {
  if (p.numel == 0) return;
  parallel_for(p.numel, grain, [&](int64_t b, int64_t e) {
    walk(p, b, e, row);
#ifdef GLIMPSE_X86
    // Streaming stores are weakly ordered: make them visible before the task reports done.
    if (stream) _mm_sfence();
#endif
  });
}

// An operand's row as the kernels want it: dense (stride 1, in place or gathered into buf) or a
// broadcast scalar (stride 0).
template <class T>
const T* as_dense(const char* ptr, int64_t stride, int64_t n, T* buf) {
  const T* x = reinterpret_cast<const T*>(ptr);
  if (stride == 1) return x;
  for (int64_t i = 0; i < n; i++) buf[i] = x[i * stride];
  return buf;
}

// ---------------------------------------------------------------------------------------------
// Scalar math, matching the reference's float64 definitions rounded to float
// ---------------------------------------------------------------------------------------------

template <UOp op>
inline float unary_s(float x) {
  if constexpr (op == UOp::neg) return -x;
  else if constexpr (op == UOp::abs) return std::fabs(x);
  else if constexpr (op == UOp::sign) return x > 0 ? 1.0f : x < 0 ? -1.0f : x == 0 ? 0.0f : kNaN;
  else if constexpr (op == UOp::exp) return static_cast<float>(std::exp(static_cast<double>(x)));
  else if constexpr (op == UOp::log) return static_cast<float>(std::log(static_cast<double>(x)));
  else if constexpr (op == UOp::sqrt) return std::sqrt(x);
  else if constexpr (op == UOp::rsqrt) return static_cast<float>(1.0 / std::sqrt(static_cast<double>(x)));
  else if constexpr (op == UOp::reciprocal) return 1.0f / x;
  else if constexpr (op == UOp::square) return x * x;
  else if constexpr (op == UOp::sin) return static_cast<float>(std::sin(static_cast<double>(x)));
  else if constexpr (op == UOp::cos) return static_cast<float>(std::cos(static_cast<double>(x)));
  else if constexpr (op == UOp::tanh) return static_cast<float>(std::tanh(static_cast<double>(x)));
  else if constexpr (op == UOp::sigmoid) return sigmoid_s(x);
  else if constexpr (op == UOp::softplus) return softplus_s(x);
  else if constexpr (op == UOp::erf) return static_cast<float>(std::erf(static_cast<double>(x)));
  else if constexpr (op == UOp::relu) return x > 0 ? x : x == x ? 0.0f : x;
  else if constexpr (op == UOp::gelu_erf) return gelu_erf_s(x);
  else if constexpr (op == UOp::gelu_tanh) return gelu_tanh_s(x);
  else return quick_gelu_s(x);
}

template <Act op>
inline float act_grad_s(float x) {
  if constexpr (op == Act::relu) return relu_grad_s(x);
  else if constexpr (op == Act::gelu_erf) return gelu_erf_grad_s(x);
  else if constexpr (op == Act::gelu_tanh) return gelu_tanh_grad_s(x);
  else if constexpr (op == Act::quick_gelu) return quick_gelu_grad_s(x);
  else if constexpr (op == Act::sigmoid) return sigmoid_grad_s(x);
  else if constexpr (op == Act::tanh) return tanh_grad_s(x);
  else if constexpr (op == Act::erf) return erf_grad_s(x);
  else return softplus_grad_s(x);
}

// Math.pow's special cases where C's pow differs: a NaN exponent, and (+-1)^(+-inf), are NaN.
inline float pow_s(float a, float b) {
  if (b != b || (std::isinf(b) && std::fabs(a) == 1.0f)) return kNaN;
  return static_cast<float>(std::pow(static_cast<double>(a), static_cast<double>(b)));
}

template <BOp op>
inline float binary_s(float a, float b) {
  if constexpr (op == BOp::add) return a + b;
  else if constexpr (op == BOp::sub) return a - b;
  else if constexpr (op == BOp::mul) return a * b;
  else if constexpr (op == BOp::div) return a / b;
  else if constexpr (op == BOp::pow) return pow_s(a, b);
  else if constexpr (op == BOp::maximum) return a != a || b != b ? kNaN : std::max(a, b);
  else return a != a || b != b ? kNaN : std::min(a, b);
}

template <BOp op, class T>
inline uint8_t compare_s(T a, T b) {
  if constexpr (op == BOp::eq) return a == b;
  else if constexpr (op == BOp::ne) return a != b;
  else if constexpr (op == BOp::lt) return a < b;
  else if constexpr (op == BOp::le) return a <= b;
  else if constexpr (op == BOp::gt) return a > b;
  else if constexpr (op == BOp::ge) return a >= b;
  else if constexpr (op == BOp::logical_and) return a != 0 && b != 0;  // NaN counts as true
  else return a != 0 || b != 0;
}

// ---------------------------------------------------------------------------------------------
// AVX2 math
// ---------------------------------------------------------------------------------------------

#ifdef GLIMPSE_X86

// Ops without a vector version here run their scalar function lane by lane (they are rare:
// trigonometry, and rsqrt, which rounds once from double to match the reference).
template <UOp op>
constexpr bool kUnaryVec = !(op == UOp::sin || op == UOp::cos || op == UOp::rsqrt);

GLIMPSE_AVX2 inline __m256 sign256_ps(__m256 x) {
  const __m256 zero = _mm256_setzero_ps();
  __m256 pos = _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_GT_OQ), _mm256_set1_ps(1.0f));
  __m256 neg = _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_LT_OQ), _mm256_set1_ps(-1.0f));
  __m256 y = _mm256_or_ps(pos, neg);
  return select256_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q), x, y);
}

template <UOp op>
GLIMPSE_AVX2 inline __m256 unary_v(__m256 x) {
  if constexpr (op == UOp::neg) return _mm256_xor_ps(x, _mm256_set1_ps(-0.0f));
  else if constexpr (op == UOp::abs) return abs256_ps(x);
  else if constexpr (op == UOp::sign) return sign256_ps(x);
  else if constexpr (op == UOp::exp) return exp256_ps(x);
  else if constexpr (op == UOp::log) return log256_ps(x);
  else if constexpr (op == UOp::sqrt) return _mm256_sqrt_ps(x);
  else if constexpr (op == UOp::reciprocal) return _mm256_div_ps(_mm256_set1_ps(1.0f), x);
  else if constexpr (op == UOp::square) return _mm256_mul_ps(x, x);
  else if constexpr (op == UOp::tanh) return tanh256_ps(x);
  else if constexpr (op == UOp::sigmoid) return sigmoid256_ps(x);
  else if constexpr (op == UOp::softplus) return softplus256_ps(x);
  else if constexpr (op == UOp::erf) return erf256_ps(x);
  else if constexpr (op == UOp::relu) return relu256_ps(x);
  else if constexpr (op == UOp::gelu_erf) return gelu_erf256_ps(x);
  else if constexpr (op == UOp::gelu_tanh) return gelu_tanh256_ps(x);
  else if constexpr (op == UOp::quick_gelu) return quick_gelu256_ps(x);
  else return x;  // not reached: see kUnaryVec
}

template <Act op>
GLIMPSE_AVX2 inline __m256 act_grad_v(__m256 x) {
  if constexpr (op == Act::relu) {
    return _mm256_and_ps(_mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GT_OQ), _mm256_set1_ps(1.0f));
  } else if constexpr (op == Act::gelu_erf) return gelu_erf_grad256_ps(x);
  else if constexpr (op == Act::gelu_tanh) return gelu_tanh_grad256_ps(x);
  else if constexpr (op == Act::quick_gelu) return quick_gelu_grad256_ps(x);
  else if constexpr (op == Act::sigmoid) return sigmoid_grad256_ps(x);
  else if constexpr (op == Act::tanh) return tanh_grad256_ps(x);
  else if constexpr (op == Act::erf) return erf_grad256_ps(x);
  else return sigmoid256_ps(x);
}

template <BOp op>
constexpr bool kBinaryVec = op != BOp::pow;

template <BOp op>
GLIMPSE_AVX2 inline __m256 binary_v(__m256 a, __m256 b) {
  if constexpr (op == BOp::add) return _mm256_add_ps(a, b);
  else if constexpr (op == BOp::sub) return _mm256_sub_ps(a, b);
  else if constexpr (op == BOp::mul) return _mm256_mul_ps(a, b);
  else if constexpr (op == BOp::div) return _mm256_div_ps(a, b);
  else if constexpr (op == BOp::maximum || op == BOp::minimum) {
    __m256 y = op == BOp::maximum ? _mm256_max_ps(a, b) : _mm256_min_ps(a, b);
    return _mm256_or_ps(y, _mm256_cmp_ps(a, b, _CMP_UNORD_Q));  // NaN if either is NaN
  } else return a;  // not reached: see kBinaryVec
}

// Writes y[0, n) from f, eight lanes at a time: f.full(i) gives lanes i..i+7, f.part(i, m) the
// first m of them (masked loads, for the row's tail). With kStream the stores bypass the cache
// (outputs much larger than the cache: the lines are then not read before being overwritten,
// which saves a third of the memory traffic); they need 32-byte alignment, so a head of up to 7
// elements goes first. The caller fences after streaming (see run()).
template <bool kStream, class F>
GLIMPSE_AVX2 inline void drive(float* y, int64_t n, const F& f) {
  int64_t i = 0;
  if constexpr (kStream) {
    int64_t head = std::min<int64_t>(n, (8 - ((reinterpret_cast<uintptr_t>(y) >> 2) & 7)) & 7);
    if (head > 0) store_tail256(y, head, f.part(0, head));
    for (i = head; i + 8 <= n; i += 8) _mm256_stream_ps(y + i, f.full(i));
  } else {
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, f.full(i));
  }
  if (i < n) store_tail256(y + i, n - i, f.part(i, n - i));
}

template <UOp op>
struct UnaryF {
  const float* x;
  GLIMPSE_AVX2 __m256 full(int64_t i) const { return unary_v<op>(_mm256_loadu_ps(x + i)); }
  GLIMPSE_AVX2 __m256 part(int64_t i, int64_t m) const { return unary_v<op>(load_tail256(x + i, m)); }
};

template <Act op>
struct GradF {
  const float* x;
  const float* g;
  GLIMPSE_AVX2 __m256 full(int64_t i) const {
    return _mm256_mul_ps(_mm256_loadu_ps(g + i), act_grad_v<op>(_mm256_loadu_ps(x + i)));
  }
  GLIMPSE_AVX2 __m256 part(int64_t i, int64_t m) const {
    return _mm256_mul_ps(load_tail256(g + i, m), act_grad_v<op>(load_tail256(x + i, m)));
  }
};

// kMode: 0 both dense, 1 b is a scalar, 2 a is a scalar.
template <BOp op, int kMode>
struct BinaryF {
  const float* a;
  const float* b;
  __m256 sa, sb;
  GLIMPSE_AVX2 __m256 full(int64_t i) const {
    return binary_v<op>(kMode == 2 ? sa : _mm256_loadu_ps(a + i), kMode == 1 ? sb : _mm256_loadu_ps(b + i));
  }
  GLIMPSE_AVX2 __m256 part(int64_t i, int64_t m) const {
    return binary_v<op>(kMode == 2 ? sa : load_tail256(a + i, m), kMode == 1 ? sb : load_tail256(b + i, m));
  }
};

template <UOp op, bool kStream>
GLIMPSE_AVX2 void unary_avx2(const float* x, float* y, int64_t n) {
  drive<kStream>(y, n, UnaryF<op>{x});
}

template <Act op, bool kStream>
GLIMPSE_AVX2 void act_grad_avx2(const float* x, const float* g, float* y, int64_t n) {
  drive<kStream>(y, n, GradF<op>{x, g});
}

template <BOp op, int kMode, bool kStream>
GLIMPSE_AVX2 void binary_avx2(const float* a, const float* b, float* y, int64_t n) {
  drive<kStream>(y, n, BinaryF<op, kMode>{a, b, _mm256_set1_ps(*a), _mm256_set1_ps(*b)});
}

// Lanes where cond[i] != 0 (NaN counts as true), for m <= 8 elements.
GLIMPSE_AVX2 inline __m256 where_mask256(const float* c, int64_t m) {
  __m256 cv = m == 8 ? _mm256_loadu_ps(c) : load_tail256(c, m);
  return _mm256_cmp_ps(cv, _mm256_setzero_ps(), _CMP_NEQ_UQ);
}
GLIMPSE_AVX2 inline __m256 where_mask256(const uint8_t* c, int64_t m) {
  int64_t bytes = 0;
  std::memcpy(&bytes, c, static_cast<size_t>(m));
  __m256i ci = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(bytes));
  return _mm256_castsi256_ps(_mm256_xor_si256(_mm256_cmpeq_epi32(ci, _mm256_setzero_si256()), _mm256_set1_epi32(-1)));
}

// cond is bytes (bool/uint8) or float32; kMode bit 0: a is a scalar, bit 1: b is a scalar.
template <class C, int kMode>
GLIMPSE_AVX2 void where_avx2(const C* c, const float* a, const float* b, float* y, int64_t n) {
  const __m256 sa = _mm256_set1_ps(*a), sb = _mm256_set1_ps(*b);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 va = kMode & 1 ? sa : _mm256_loadu_ps(a + i);
    __m256 vb = kMode & 2 ? sb : _mm256_loadu_ps(b + i);
    _mm256_storeu_ps(y + i, select256_ps(where_mask256(c + i, 8), va, vb));
  }
  if (i < n) {
    int64_t m = n - i;
    __m256 va = kMode & 1 ? sa : load_tail256(a + i, m);
    __m256 vb = kMode & 2 ? sb : load_tail256(b + i, m);
    store_tail256(y + i, m, select256_ps(where_mask256(c + i, m), va, vb));
  }
}

#endif  // GLIMPSE_X86

// ---------------------------------------------------------------------------------------------
// Dense row kernels (portable), and the per-op tables that pick AVX2 or portable at run time
// ---------------------------------------------------------------------------------------------

using UnaryKernel = void (*)(const float*, float*, int64_t);
using GradKernel = void (*)(const float*, const float*, float*, int64_t);
using BinaryKernel = void (*)(const float*, const float*, float*, int64_t);

template <UOp op>
void unary_portable(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = unary_s<op>(x[i]);
}

template <Act op>
void act_grad_portable(const float* x, const float* g, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = g[i] * act_grad_s<op>(x[i]);
}

template <BOp op, int kMode>
void binary_portable(const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = binary_s<op>(kMode == 2 ? *a : a[i], kMode == 1 ? *b : b[i]);
}

template <UOp op, bool kStream>
UnaryKernel pick_unary() {
#ifdef GLIMPSE_X86
  if constexpr (kUnaryVec<op>) {
    if (cpu_has_avx2_fma()) return unary_avx2<op, kStream>;
  }
#endif
  return unary_portable<op>;
}

template <Act op, bool kStream>
GradKernel pick_grad() {
#ifdef GLIMPSE_X86
  if (cpu_has_avx2_fma()) return act_grad_avx2<op, kStream>;
#endif
  return act_grad_portable<op>;
}

template <BOp op, int kMode, bool kStream>
BinaryKernel pick_binary() {
#ifdef GLIMPSE_X86
  if constexpr (kBinaryVec<op>) {
    if (cpu_has_avx2_fma()) return binary_avx2<op, kMode, kStream>;
  }
#endif
  return binary_portable<op, kMode>;
}

// Kernel tables indexed by op code; [1] with streaming stores.
template <size_t... I>
UnaryKernel unary_kernel(UOp op, bool stream, std::index_sequence<I...>) {
  static const UnaryKernel table[2][sizeof...(I)] = {{pick_unary<static_cast<UOp>(I), false>()...},
                                                      {pick_unary<static_cast<UOp>(I), true>()...}};
  return table[stream][static_cast<int>(op)];
}

template <size_t... I>
GradKernel grad_kernel(Act op, bool stream, std::index_sequence<I...>) {
  static const GradKernel table[2][sizeof...(I)] = {{pick_grad<static_cast<Act>(I), false>()...},
                                                     {pick_grad<static_cast<Act>(I), true>()...}};
  return table[stream][static_cast<int>(op)];
}

// The three arithmetic kernels of one op: both dense, b scalar, a scalar.
struct BinaryKernels {
  BinaryKernel k[3];
};
template <BOp op, bool kStream>
BinaryKernels binary_triple() {
  return {{pick_binary<op, 0, kStream>(), pick_binary<op, 1, kStream>(), pick_binary<op, 2, kStream>()}};
}
template <size_t... I>
const BinaryKernels& binary_kernels(BOp op, bool stream, std::index_sequence<I...>) {
  static const BinaryKernels table[2][sizeof...(I)] = {{binary_triple<static_cast<BOp>(I), false>()...},
                                                        {binary_triple<static_cast<BOp>(I), true>()...}};
  return table[stream][static_cast<int>(op)];
}

bool is_transcendental(UOp op) {
  return !(op == UOp::neg || op == UOp::abs || op == UOp::sign || op == UOp::sqrt || op == UOp::reciprocal ||
           op == UOp::square || op == UOp::relu);
}

// ---------------------------------------------------------------------------------------------
// copy and fill: any strided destination, casts between dtypes as the reference stores them
// ---------------------------------------------------------------------------------------------

template <DT t> struct Storage;
template <> struct Storage<DT::f32> { using T = float; };
template <> struct Storage<DT::f64> { using T = double; };
template <> struct Storage<DT::i32> { using T = int32_t; };
template <> struct Storage<DT::i64> { using T = int64_t; };
template <> struct Storage<DT::u8> { using T = uint8_t; };
template <> struct Storage<DT::boolean> { using T = uint8_t; };

// A finite integral double to an integer type modulo its width, as typed-array stores do.
template <class T>
T wrap_int(double t) {
  constexpr double kMod = std::is_same_v<T, int32_t> ? 4294967296.0 : 256.0;
  if (std::fabs(t) < 2147483648.0) return static_cast<T>(static_cast<uint32_t>(static_cast<int64_t>(t)));
  double m = std::fmod(t, kMod);
  if (m < 0) m += kMod;
  return static_cast<T>(static_cast<uint32_t>(m));
}

// The reference's store(): bool is x != 0 (NaN is true); int32 and uint8 truncate, wrap, and
// take 0 for inf and NaN; floats round to nearest.
template <DT D>
typename Storage<D>::T store_as(double x) {
  using T = typename Storage<D>::T;
  if constexpr (D == DT::boolean) return x != 0 ? 1 : 0;
  else if constexpr (D == DT::i32 || D == DT::u8) return std::isfinite(x) ? wrap_int<T>(std::trunc(x)) : 0;
  else return static_cast<T>(x);
}

template <DT S, DT D>
void copy_row(const char* sp, int64_t ss, char* dp, int64_t ds, int64_t n) {
  using TS = typename Storage<S>::T;
  using TD = typename Storage<D>::T;
  const TS* s = reinterpret_cast<const TS*>(sp);
  TD* d = reinterpret_cast<TD*>(dp);
  if constexpr (S == D || (S == DT::boolean && D == DT::u8)) {
    // Same representation (bool's 0/1 are valid uint8 too): move the bits.
    if (ss == 1 && ds == 1) {
      std::memcpy(d, s, static_cast<size_t>(n) * sizeof(TD));
      return;
    }
    if (ss == 0) {
      TD v = static_cast<TD>(s[0]);
      for (int64_t i = 0; i < n; i++) d[i * ds] = v;
      return;
    }
    for (int64_t i = 0; i < n; i++) d[i * ds] = static_cast<TD>(s[i * ss]);
  } else if constexpr (D == DT::f32 && (S == DT::u8 || S == DT::boolean || S == DT::f64 || S == DT::i32)) {
    if (ss == 1 && ds == 1) {
      for (int64_t i = 0; i < n; i++) d[i] = static_cast<float>(s[i]);
    } else {
      for (int64_t i = 0; i < n; i++) d[i * ds] = static_cast<float>(s[i * ss]);
    }
  } else {
    for (int64_t i = 0; i < n; i++) d[i * ds] = store_as<D>(static_cast<double>(s[i * ss]));
  }
}

using CopyRow = void (*)(const char*, int64_t, char*, int64_t, int64_t);

template <DT S>
CopyRow copy_row_to(DT d) {
  switch (d) {
    case DT::f32: return copy_row<S, DT::f32>;
    case DT::f64: return copy_row<S, DT::f64>;
    case DT::i32: return copy_row<S, DT::i32>;
    case DT::u8: return copy_row<S, DT::u8>;
    case DT::boolean: return copy_row<S, DT::boolean>;
    case DT::i64: break;
  }
  return nullptr;
}

// int64 only copies to int64 (the reference converts through bigint otherwise).
CopyRow copy_row_for(DT s, DT d) {
  if (s == DT::i64 || d == DT::i64) return s == d ? copy_row<DT::i64, DT::i64> : nullptr;
  switch (s) {
    case DT::f32: return copy_row_to<DT::f32>(d);
    case DT::f64: return copy_row_to<DT::f64>(d);
    case DT::i32: return copy_row_to<DT::i32>(d);
    case DT::u8: return copy_row_to<DT::u8>(d);
    case DT::boolean: return copy_row_to<DT::boolean>(d);
    case DT::i64: break;
  }
  return nullptr;
}

// The byte range [lo, hi) a view of this plan's operand k can touch.
void byte_range(const Plan& p, int k, const char** lo, const char** hi) {
  const char* l = p.base[k];
  const char* h = p.base[k];
  for (int d = 0; d < p.nd; d++) {
    int64_t span = (p.shape[d] - 1) * p.strides[k][d] * p.elem[k];
    if (span < 0) l += span; else h += span;
  }
  *lo = l;
  *hi = h + p.elem[k];
}

#ifdef GLIMPSE_X86
GLIMPSE_AVX2 void stream_copy_part(char* d, const char* s, int64_t bytes) {
  int64_t head = std::min<int64_t>(bytes, (32 - (reinterpret_cast<uintptr_t>(d) & 31)) & 31);
  std::memcpy(d, s, static_cast<size_t>(head));
  int64_t i = head;
  for (; i + 128 <= bytes; i += 128) {
    __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i));
    __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i + 32));
    __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i + 64));
    __m256i e = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + i + 96));
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i), a);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i + 32), b);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i + 64), c);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(d + i + 96), e);
  }
  std::memcpy(d + i, s + i, static_cast<size_t>(bytes - i));
  _mm_sfence();
}
#endif

// A large dense copy, in parallel, with streaming stores (see drive()). Only called when
// streams() holds, which implies x86 with AVX2.
void stream_copy(char* d, const char* s, int64_t bytes) {
#ifdef GLIMPSE_X86
  constexpr int64_t kChunk = 1 << 16;
  parallel_for((bytes + kChunk - 1) / kChunk, 16, [&](int64_t b, int64_t e) {
    int64_t lo = b * kChunk, hi = std::min(bytes, e * kChunk);
    stream_copy_part(d + lo, s + lo, hi - lo);
  });
#else
  std::memcpy(d, s, static_cast<size_t>(bytes));
#endif
}

// A copy whose source is transposed in its last two axes (the contiguous() of a transposed
// matrix): the row walk would read the source a column at a time, one cache line per element.
// Square tiles keep both sides' lines in cache. Plan: operand 0 the destination (stride 1 along
// the last axis), operand 1 the source (stride 1 along the one before).
bool is_transpose_copy(const Plan& p) {
  const int nd = p.nd;
  return nd >= 2 && p.strides[0][nd - 1] == 1 && p.strides[1][nd - 2] == 1 && p.strides[1][nd - 1] != 1 &&
         p.shape[nd - 1] >= 8 && p.shape[nd - 2] >= 8;
}

#ifdef GLIMPSE_X86
// d[i * ds + j] = s[j * ss + i] for an 8x8 block of 4-byte elements.
GLIMPSE_AVX2 void transpose8x8(const float* s, int64_t ss, float* d, int64_t ds) {
  __m256 v[8], t[8], u[8];
  for (int j = 0; j < 8; j++) v[j] = _mm256_loadu_ps(s + j * ss);
  for (int j = 0; j < 8; j += 2) {
    t[j] = _mm256_unpacklo_ps(v[j], v[j + 1]);
    t[j + 1] = _mm256_unpackhi_ps(v[j], v[j + 1]);
  }
  for (int j = 0; j < 8; j += 4) {
    u[j] = _mm256_shuffle_ps(t[j], t[j + 2], 0x44);
    u[j + 1] = _mm256_shuffle_ps(t[j], t[j + 2], 0xEE);
    u[j + 2] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0x44);
    u[j + 3] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0xEE);
  }
  for (int i = 0; i < 4; i++) {
    _mm256_storeu_ps(d + i * ds, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
    _mm256_storeu_ps(d + (i + 4) * ds, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
  }
}
#endif

// Tiles are taller than wide: each source line then yields kTileRows contiguous elements per
// tile, which keeps the memory reads streaming.
template <class T>
void transpose_copy(const Plan& p) {
  constexpr int64_t kTileRows = 128, kTileCols = 32;
  const int nd = p.nd;
  const int64_t rows = p.shape[nd - 2], cols = p.shape[nd - 1];
  const int64_t d_row = p.strides[0][nd - 2], s_col = p.strides[1][nd - 1];
  const int64_t row_tiles = (rows + kTileRows - 1) / kTileRows, col_tiles = (cols + kTileCols - 1) / kTileCols;
  const int64_t tiles = p.numel / (rows * cols) * row_tiles * col_tiles;
  parallel_for(tiles, std::max<int64_t>(1, kGrainCheap / (kTileRows * kTileCols)), [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; t++) {
      int64_t ct = t % col_tiles, rt = (t / col_tiles) % row_tiles, batch = t / (col_tiles * row_tiles);
      T* d = reinterpret_cast<T*>(p.base[0]);
      const T* s = reinterpret_cast<const T*>(p.base[1]);
      for (int dim = nd - 3; dim >= 0; dim--) {
        int64_t i = batch % p.shape[dim];
        batch /= p.shape[dim];
        d += i * p.strides[0][dim];
        s += i * p.strides[1][dim];
      }
      const int64_t r0 = rt * kTileRows, r1 = std::min(rows, r0 + kTileRows);
      const int64_t c0 = ct * kTileCols, c1 = std::min(cols, c0 + kTileCols);
      int64_t rv = r0, cv = c0;  // the tile's part done in 8x8 blocks: [r0, rv) x [c0, cv)
#ifdef GLIMPSE_X86
      if constexpr (sizeof(T) == 4) {
        if (cpu_has_avx2_fma()) {
          rv = r0 + (r1 - r0) / 8 * 8;
          cv = c0 + (c1 - c0) / 8 * 8;
          for (int64_t r = r0; r < rv; r += 8)
            for (int64_t c = c0; c < cv; c += 8)
              transpose8x8(reinterpret_cast<const float*>(s + r + c * s_col), s_col, reinterpret_cast<float*>(d + r * d_row + c), d_row);
        }
      }
#endif
      for (int64_t r = r0; r < r1; r++)
        for (int64_t c = r < rv ? cv : c0; c < c1; c++) d[r * d_row + c] = s[r + c * s_col];
    }
  });
}

template <DT D>
void fill_rows(const Plan& p, double value) {
  using T = typename Storage<D>::T;
  const T v = store_as<D>(value);
  run(p, kGrainCheap, [&](int64_t n, char** ptr, const int64_t* st) {
    T* d = reinterpret_cast<T*>(ptr[0]);
    if (st[0] == 1) std::fill(d, d + n, v);
    else for (int64_t i = 0; i < n; i++) d[i * st[0]] = v;
  });
}

// ---------------------------------------------------------------------------------------------
// N-API entry points
// ---------------------------------------------------------------------------------------------

// ewCopy(dstDtype, dst, dstOffset, dstStrides, srcDtype, src, srcOffset, srcStrides, shape)
struct CopyArgs {
  int64_t dst_dtype;
  StridedArg dst;
  int64_t src_dtype;
  StridedArg src;
  Ints shape;
};
const Signature<CopyArgs> kCopy{"ewCopy", {
    arg::code("dstDtype", &CopyArgs::dst_dtype, kDTypes),
    arg::strided("dst", &CopyArgs::dst),
    arg::code("srcDtype", &CopyArgs::src_dtype, kDTypes),
    arg::strided("src", &CopyArgs::src),
    arg::ints("shape", &CopyArgs::shape),
}};

napi_value ew_copy(napi_env env, CopyArgs& a) {
  const Ints& shape = a.shape;
  const DT dd = static_cast<DT>(a.dst_dtype), sd = static_cast<DT>(a.src_dtype);
  View dst = make_view(a.dst, dd, shape, "copy destination");
  View src = make_view(a.src, sd, shape, "copy source");
  CopyRow row = copy_row_for(sd, dd);
  if (!row) throw ArgError("copy between these dtypes is not supported natively");
  Plan p = make_plan(shape, {&dst, &src});
  if (p.numel == 0) return undefined(env);
  const char *dlo, *dhi, *slo, *shi;
  byte_range(p, 0, &dlo, &dhi);
  byte_range(p, 1, &slo, &shi);
  std::vector<char> snapshot;
  if (dlo < shi && slo < dhi) {
    // Overlapping views: copy from a dense snapshot of the source, so every element reads its
    // old value, as the reference does.
    View dense;
    std::vector<int64_t> dense_strides(shape.size());
    int64_t s = 1;
    for (size_t d = shape.size(); d-- > 0;) {
      dense_strides[d] = s;
      s *= shape[d];
    }
    snapshot.resize(static_cast<size_t>(p.numel) * dtype_size(sd));
    dense.base = snapshot.data();
    dense.dtype = sd;
    dense.strides = dense_strides;
    Plan ps = make_plan(shape, {&dense, &src});
    CopyRow same = copy_row_for(sd, sd);
    run(ps, kGrainCheap, [&](int64_t n, char** ptr, const int64_t* st) { same(ptr[1], st[1], ptr[0], st[0], n); });
    p = make_plan(shape, {&dst, &dense});
  }
  const bool raw = sd == dd || (sd == DT::boolean && dd == DT::u8);
  if (raw && snapshot.empty() && p.nd == 1 && p.strides[0][0] == 1 && p.strides[1][0] == 1 && streams(p)) {
    stream_copy(p.base[0], p.base[1], p.numel * p.elem[0]);
    return undefined(env);
  }
  if (raw && snapshot.empty() && is_transpose_copy(p)) {
    switch (dtype_size(sd)) {
      case 1: transpose_copy<uint8_t>(p); break;
      case 4: transpose_copy<uint32_t>(p); break;
      default: transpose_copy<uint64_t>(p); break;
    }
    return undefined(env);
  }
  run(p, kGrainCheap, [&](int64_t n, char** ptr, const int64_t* st) { row(ptr[1], st[1], ptr[0], st[0], n); });
  return undefined(env);
}

// ewFill(dtype, dst, offset, strides, shape, value)
struct FillArgs {
  int64_t dtype;
  StridedArg dst;
  Ints shape;
  double value;
};
const Signature<FillArgs> kFill{"ewFill", {
    arg::code("dtype", &FillArgs::dtype, kDTypes),
    arg::part_names(arg::strided("dst", &FillArgs::dst), "offset", "strides"),
    arg::ints("shape", &FillArgs::shape),
    arg::number("value", &FillArgs::value),
}};

napi_value ew_fill(napi_env env, FillArgs& a) {
  const DT dt = static_cast<DT>(a.dtype);
  const double value = a.value;
  View dst = make_view(a.dst, dt, a.shape, "fill destination");
  Plan p = make_plan(a.shape, {&dst});
  switch (dt) {
    case DT::f32: fill_rows<DT::f32>(p, value); break;
    case DT::f64: fill_rows<DT::f64>(p, value); break;
    case DT::i32: fill_rows<DT::i32>(p, value); break;
    case DT::u8: fill_rows<DT::u8>(p, value); break;
    case DT::boolean: fill_rows<DT::boolean>(p, value); break;
    case DT::i64: throw ArgError("fill of int64 is not supported natively");
  }
  return undefined(env);
}

// ewUnary(op, x, xOffset, xStrides, shape, out)
struct UnaryArgs {
  int64_t op;
  StridedArg x;
  Ints shape;
  Array out;
};
const Signature<UnaryArgs> kUnary{"ewUnary", {
    arg::code("op", &UnaryArgs::op, kUnaryOps),
    arg::strided("x", &UnaryArgs::x),
    arg::ints("shape", &UnaryArgs::shape),
    arg::array("out", &UnaryArgs::out),
}};

napi_value ew_unary(napi_env env, UnaryArgs& a) {
  const UOp op = static_cast<UOp>(a.op);
  View x = make_view(a.x, DT::f32, a.shape, "unary input");
  View out = make_out(a.out, DT::f32, a.shape, "unary output");
  Plan p = make_plan(a.shape, {&out, &x});
  const bool stream = streams(p);
  UnaryKernel k = unary_kernel(op, stream, std::make_index_sequence<static_cast<size_t>(UOp::count)>());
  run(p, is_transcendental(op) ? kGrainMath : kGrainCheap, [&](int64_t n, char** ptr, const int64_t* st) {
    float* y = reinterpret_cast<float*>(ptr[0]);
    if (st[1] == 1) return k(reinterpret_cast<const float*>(ptr[1]), y, n);
    float buf[kBlock];
    for (int64_t j = 0; j < n; j += kBlock) {
      int64_t m = std::min(kBlock, n - j);
      k(as_dense<float>(ptr[1] + j * st[1] * 4, st[1], m, buf), y + j, m);
    }
  }, stream);
  return undefined(env);
}

// ewUnaryGrad(op, x, xOffset, xStrides, g, gOffset, gStrides, shape, out)
struct UnaryGradArgs {
  int64_t op;
  StridedArg x, g;
  Ints shape;
  Array out;
};
const Signature<UnaryGradArgs> kUnaryGrad{"ewUnaryGrad", {
    arg::code("op", &UnaryGradArgs::op, kActivations),
    arg::strided("x", &UnaryGradArgs::x),
    arg::strided("g", &UnaryGradArgs::g),
    arg::ints("shape", &UnaryGradArgs::shape),
    arg::array("out", &UnaryGradArgs::out),
}};

napi_value ew_unary_grad(napi_env env, UnaryGradArgs& a) {
  const Act op = static_cast<Act>(a.op);
  View x = make_view(a.x, DT::f32, a.shape, "unaryGrad input");
  View g = make_view(a.g, DT::f32, a.shape, "unaryGrad gradient");
  View out = make_out(a.out, DT::f32, a.shape, "unaryGrad output");
  Plan p = make_plan(a.shape, {&out, &x, &g});
  const bool stream = streams(p);
  GradKernel k = grad_kernel(op, stream, std::make_index_sequence<static_cast<size_t>(Act::count)>());
  run(p, op == Act::relu ? kGrainCheap : kGrainMath, [&](int64_t n, char** ptr, const int64_t* st) {
    float* y = reinterpret_cast<float*>(ptr[0]);
    if (st[1] == 1 && st[2] == 1)
      return k(reinterpret_cast<const float*>(ptr[1]), reinterpret_cast<const float*>(ptr[2]), y, n);
    float bx[kBlock], bg[kBlock];
    for (int64_t j = 0; j < n; j += kBlock) {
      int64_t m = std::min(kBlock, n - j);
      k(as_dense<float>(ptr[1] + j * st[1] * 4, st[1], m, bx), as_dense<float>(ptr[2] + j * st[2] * 4, st[2], m, bg), y + j, m);
    }
  }, stream);
  return undefined(env);
}

void binary_arith(BOp op, const Plan& p) {
  const bool stream = streams(p);
  const BinaryKernels& ks = binary_kernels(op, stream, std::make_index_sequence<static_cast<size_t>(BOp::minimum) + 1>());
  run(p, op == BOp::pow ? kGrainMath : kGrainCheap, [&](int64_t n, char** ptr, const int64_t* st) {
    float* y = reinterpret_cast<float*>(ptr[0]);
    const float* pa = reinterpret_cast<const float*>(ptr[1]);
    const float* pb = reinterpret_cast<const float*>(ptr[2]);
    if (st[1] == 1 && st[2] == 1) return ks.k[0](pa, pb, y, n);
    if (st[1] == 1 && st[2] == 0) return ks.k[1](pa, pb, y, n);
    if (st[1] == 0 && st[2] == 1) return ks.k[2](pa, pb, y, n);
    if (st[1] == 0 && st[2] == 0) {
      ks.k[1](pa, pb, y, 1);
      std::fill(y + 1, y + n, y[0]);
      return;
    }
    float ba[kBlock], bb[kBlock];
    for (int64_t j = 0; j < n; j += kBlock) {
      int64_t m = std::min(kBlock, n - j);
      if (st[1] == 0) ks.k[2](pa, as_dense<float>(ptr[2] + j * st[2] * 4, st[2], m, bb), y + j, m);
      else if (st[2] == 0) ks.k[1](as_dense<float>(ptr[1] + j * st[1] * 4, st[1], m, ba), pb, y + j, m);
      else ks.k[0](as_dense<float>(ptr[1] + j * st[1] * 4, st[1], m, ba), as_dense<float>(ptr[2] + j * st[2] * 4, st[2], m, bb), y + j, m);
    }
  }, stream);
}

template <BOp op, class T>
void compare_rows(const Plan& p) {
  run(p, kGrainCheap, [&](int64_t n, char** ptr, const int64_t* st) {
    uint8_t* y = reinterpret_cast<uint8_t*>(ptr[0]);
    const T* pa = reinterpret_cast<const T*>(ptr[1]);
    const T* pb = reinterpret_cast<const T*>(ptr[2]);
    const int64_t sa = st[1], sb = st[2];
    if (sa == 1 && sb == 1) for (int64_t i = 0; i < n; i++) y[i] = compare_s<op, T>(pa[i], pb[i]);
    else if (sa == 1 && sb == 0) for (int64_t i = 0; i < n; i++) y[i] = compare_s<op, T>(pa[i], *pb);
    else for (int64_t i = 0; i < n; i++) y[i] = compare_s<op, T>(pa[i * sa], pb[i * sb]);
  });
}

template <class T>
void compare_dispatch(BOp op, const Plan& p) {
  switch (op) {
    case BOp::eq: return compare_rows<BOp::eq, T>(p);
    case BOp::ne: return compare_rows<BOp::ne, T>(p);
    case BOp::lt: return compare_rows<BOp::lt, T>(p);
    case BOp::le: return compare_rows<BOp::le, T>(p);
    case BOp::gt: return compare_rows<BOp::gt, T>(p);
    case BOp::ge: return compare_rows<BOp::ge, T>(p);
    case BOp::logical_and: return compare_rows<BOp::logical_and, T>(p);
    case BOp::logical_or: return compare_rows<BOp::logical_or, T>(p);
    default: throw ArgError("not a comparison");
  }
}

// ewBinary(op, aDtype, a, aOffset, aStrides, bDtype, b, bOffset, bStrides, shape, outDtype, out)
// Arithmetic: float32 operands and output. Comparisons and logic: operands of one dtype among
// float32, int32, bool/uint8; output bool/uint8.
struct BinaryArgs {
  int64_t op;
  int64_t a_dtype;
  StridedArg a;
  int64_t b_dtype;
  StridedArg b;
  Ints shape;
  int64_t out_dtype;
  Array out;
};
const Signature<BinaryArgs> kBinary{"ewBinary", {
    arg::code("op", &BinaryArgs::op, kBinaryOps),
    arg::code("aDtype", &BinaryArgs::a_dtype, kDTypes),
    arg::strided("a", &BinaryArgs::a),
    arg::code("bDtype", &BinaryArgs::b_dtype, kDTypes),
    arg::strided("b", &BinaryArgs::b),
    arg::ints("shape", &BinaryArgs::shape),
    arg::code("outDtype", &BinaryArgs::out_dtype, kDTypes),
    arg::array("out", &BinaryArgs::out),
}};

napi_value ew_binary(napi_env env, BinaryArgs& a) {
  const BOp op = static_cast<BOp>(a.op);
  const DT ad = static_cast<DT>(a.a_dtype), bd = static_cast<DT>(a.b_dtype), od = static_cast<DT>(a.out_dtype);
  View va = make_view(a.a, ad, a.shape, "binary a");
  View vb = make_view(a.b, bd, a.shape, "binary b");
  View out = make_out(a.out, od, a.shape, "binary output");
  Plan p = make_plan(a.shape, {&out, &va, &vb});
  if (is_comparison(op) || is_logic(op)) {
    if (od != DT::boolean && od != DT::u8) throw ArgError("comparison output must be bool or uint8");
    bool bytes = [](DT t) { return t == DT::boolean || t == DT::u8; }(ad);
    if (!(ad == bd || (bytes && (bd == DT::boolean || bd == DT::u8))))
      throw ArgError("comparison operands must have one dtype");
    if (ad == DT::f32) compare_dispatch<float>(op, p);
    else if (ad == DT::i32) compare_dispatch<int32_t>(op, p);
    else if (bytes) compare_dispatch<uint8_t>(op, p);
    else throw ArgError("comparison of this dtype is not supported natively");
    return undefined(env);
  }
  if (ad != DT::f32 || bd != DT::f32 || od != DT::f32) throw ArgError("arithmetic needs float32 operands and output");
  binary_arith(op, p);
  return undefined(env);
}

template <class C, int kMode>
void where_portable(const C* c, const float* a, const float* b, float* y, int64_t n) {
  for (int64_t i = 0; i < n; i++) y[i] = c[i] != 0 ? (kMode & 1 ? *a : a[i]) : (kMode & 2 ? *b : b[i]);
}

template <class C>
void where_rows(const Plan& p) {
  using WhereKernel = void (*)(const C*, const float*, const float*, float*, int64_t);
  WhereKernel ks[4] = {where_portable<C, 0>, where_portable<C, 1>, where_portable<C, 2>, where_portable<C, 3>};
#ifdef GLIMPSE_X86
  if (cpu_has_avx2_fma()) {
    ks[0] = where_avx2<C, 0>;
    ks[1] = where_avx2<C, 1>;
    ks[2] = where_avx2<C, 2>;
    ks[3] = where_avx2<C, 3>;
  }
#endif
  run(p, kGrainCheap, [&](int64_t n, char** ptr, const int64_t* st) {
    float* y = reinterpret_cast<float*>(ptr[0]);
    const int mode = (st[2] == 0 ? 1 : 0) | (st[3] == 0 ? 2 : 0);
    C bc[kBlock];
    float ba[kBlock], bb[kBlock];
    for (int64_t j = 0; j < n; j += kBlock) {
      int64_t m = std::min(kBlock, n - j);
      const C* c = as_dense<C>(ptr[1] + j * st[1] * static_cast<int64_t>(sizeof(C)), st[1], m, bc);
      const float* pa = mode & 1 ? reinterpret_cast<const float*>(ptr[2]) : as_dense<float>(ptr[2] + j * st[2] * 4, st[2], m, ba);
      const float* pb = mode & 2 ? reinterpret_cast<const float*>(ptr[3]) : as_dense<float>(ptr[3] + j * st[3] * 4, st[3], m, bb);
      ks[mode](c, pa, pb, y + j, m);
    }
  });
}

// ewWhere(condDtype, cond, condOffset, condStrides, a, aOffset, aStrides, b, bOffset, bStrides, shape, out)
struct WhereArgs {
  int64_t cond_dtype;
  StridedArg cond, a, b;
  Ints shape;
  Array out;
};
const Signature<WhereArgs> kWhere{"ewWhere", {
    arg::code("condDtype", &WhereArgs::cond_dtype, kDTypes),
    arg::strided("cond", &WhereArgs::cond),
    arg::strided("a", &WhereArgs::a),
    arg::strided("b", &WhereArgs::b),
    arg::ints("shape", &WhereArgs::shape),
    arg::array("out", &WhereArgs::out),
}};

napi_value ew_where(napi_env env, WhereArgs& a) {
  const DT cd = static_cast<DT>(a.cond_dtype);
  View c = make_view(a.cond, cd, a.shape, "where condition");
  View va = make_view(a.a, DT::f32, a.shape, "where a");
  View vb = make_view(a.b, DT::f32, a.shape, "where b");
  View out = make_out(a.out, DT::f32, a.shape, "where output");
  Plan p = make_plan(a.shape, {&out, &c, &va, &vb});
  if (cd == DT::boolean || cd == DT::u8) where_rows<uint8_t>(p);
  else if (cd == DT::f32) where_rows<float>(p);
  else throw ArgError("where condition must be bool, uint8 or float32");
  return undefined(env);
}

}  // namespace

void register_elementwise(napi_env env, napi_value exports) {
  export_kernel<kCopy, ew_copy>(env, exports);
  export_kernel<kFill, ew_fill>(env, exports);
  export_kernel<kUnary, ew_unary>(env, exports);
  export_kernel<kUnaryGrad, ew_unary_grad>(env, exports);
  export_kernel<kBinary, ew_binary>(env, exports);
  export_kernel<kWhere, ew_where>(env, exports);
}

}  // namespace glimpse
