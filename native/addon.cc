// N-API entry point: each kernel family registers its functions on the module's exports.
#include <cstdlib>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "common.h"

namespace glimpse {
void register_threadpool(napi_env env, napi_value exports);
void register_gemm(napi_env env, napi_value exports);
void register_elementwise(napi_env env, napi_value exports);
void register_reduce(napi_env env, napi_value exports);
void register_attention(napi_env env, napi_value exports);
void register_indexing(napi_env env, napi_value exports);
void register_optim(napi_env env, napi_value exports);
void register_fused(napi_env env, napi_value exports);

float* Array::f32() const { return static_cast<float*>(data); }
int32_t* Array::i32() const { return static_cast<int32_t*>(data); }
uint8_t* Array::u8() const { return static_cast<uint8_t*>(data); }
double* Array::f64() const { return static_cast<double*>(data); }

std::vector<napi_value> args(napi_env env, napi_callback_info info, size_t expected) {
  size_t argc = expected;
  std::vector<napi_value> argv(expected);
  napi_get_cb_info(env, info, &argc, argv.data(), nullptr, nullptr);
  if (argc < expected)
    throw ArgError("expected " + std::to_string(expected) + " arguments, got " + std::to_string(argc));
  return argv;
}

Array array_arg(napi_env env, napi_value v, size_t pos) {
  bool is_ta = false;
  napi_is_typedarray(env, v, &is_ta);
  if (!is_ta) throw ArgError("argument " + std::to_string(pos) + " must be a typed array");
  Array a;
  napi_value ab;
  size_t byte_offset;
  napi_get_typedarray_info(env, v, &a.type, &a.length, &a.data, &ab, &byte_offset);
  return a;
}

double number_arg(napi_env env, napi_value v, size_t pos) {
  double x;
  if (napi_get_value_double(env, v, &x) != napi_ok)
    throw ArgError("argument " + std::to_string(pos) + " must be a number");
  return x;
}

int64_t int_arg(napi_env env, napi_value v, size_t pos) {
  int64_t x;
  if (napi_get_value_int64(env, v, &x) != napi_ok)
    throw ArgError("argument " + std::to_string(pos) + " must be an integer");
  return x;
}

bool bool_arg(napi_env env, napi_value v, size_t pos) {
  bool x;
  if (napi_get_value_bool(env, v, &x) != napi_ok)
    throw ArgError("argument " + std::to_string(pos) + " must be a boolean");
  return x;
}

std::vector<int64_t> ints_arg(napi_env env, napi_value v, size_t pos) {
  bool is_arr = false;
  napi_is_array(env, v, &is_arr);
  if (!is_arr) throw ArgError("argument " + std::to_string(pos) + " must be an array of integers");
  uint32_t n;
  napi_get_array_length(env, v, &n);
  std::vector<int64_t> out(n);
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    napi_get_element(env, v, i, &e);
    out[i] = int_arg(env, e, pos);
  }
  return out;
}

bool is_null(napi_env env, napi_value v) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  return t == napi_null || t == napi_undefined;
}

void export_fn(napi_env env, napi_value exports, const char* name, Kernel fn) {
  napi_value f;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, nullptr, &f);
  napi_set_named_property(env, exports, name, f);
}

napi_value undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

napi_value make_number(napi_env env, double x) {
  napi_value v;
  napi_create_double(env, x, &v);
  return v;
}

bool cpu_has_avx2_fma() {
#if defined(__x86_64__) || defined(__i386__)
  // GLIMPSE_NO_AVX2=1 forces the portable kernels, so tests can check both paths on one machine.
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                          !(std::getenv("GLIMPSE_NO_AVX2") && std::getenv("GLIMPSE_NO_AVX2")[0] == '1');
  return has;
#else
  return false;
#endif
}

bool cpu_has_avx512f() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool has = cpu_has_avx2_fma() && __builtin_cpu_supports("avx512f") &&
                          !(std::getenv("GLIMPSE_NO_AVX512") && std::getenv("GLIMPSE_NO_AVX512")[0] == '1');
  return has;
#else
  return false;
#endif
}

}  // namespace glimpse

// A training step allocates and frees the same activation-sized buffers over and over. By
// default glibc maps large ones fresh from the kernel (page faults on their first write, munmap on
// free) and trims freed heap back to the system, so every step pays for zeroed pages again.
// Serving them from the heap and keeping freed memory reuses warm pages: about 5-7% more samples/s
// on a ViT training step (bench mae's anchor). GLIMPSE_SYSTEM_MALLOC=1 keeps glibc's defaults.
static void tune_malloc() {
#if defined(__GLIBC__)
  const char* off = std::getenv("GLIMPSE_SYSTEM_MALLOC");
  if (off && off[0] == '1') return;
  mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's largest allowed value on 64-bit
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
#endif
}

static napi_value init(napi_env env, napi_value exports) {
  using namespace glimpse;
  tune_malloc();
  register_threadpool(env, exports);
  register_gemm(env, exports);
  register_elementwise(env, exports);
  register_reduce(env, exports);
  register_attention(env, exports);
  register_indexing(env, exports);
  register_optim(env, exports);
  register_fused(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
