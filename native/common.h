// Shared helpers for the N-API kernel families: argument unpacking, errors, the thread pool.
#pragma once
#include <node_api.h>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace glimpse {

// Thrown inside kernels' argument handling; converted to a JS Error by the wrapper (see wrap()).
struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Array {
  void* data = nullptr;
  size_t length = 0;  // elements
  napi_typedarray_type type = napi_float32_array;
  float* f32() const;
  int32_t* i32() const;
  uint8_t* u8() const;
  double* f64() const;
};

// Argument accessors; each throws ArgError naming the argument position on a type mismatch.
std::vector<napi_value> args(napi_env env, napi_callback_info info, size_t expected);
Array array_arg(napi_env env, napi_value v, size_t pos);
double number_arg(napi_env env, napi_value v, size_t pos);
int64_t int_arg(napi_env env, napi_value v, size_t pos);
bool bool_arg(napi_env env, napi_value v, size_t pos);
std::vector<int64_t> ints_arg(napi_env env, napi_value v, size_t pos);  // JS number[]
bool is_null(napi_env env, napi_value v);

// Registers fn under name on exports; fn's ArgError / std::exception become JS Errors.
using Kernel = napi_value (*)(napi_env, napi_callback_info);
void export_fn(napi_env env, napi_value exports, const char* name, Kernel fn);
napi_value undefined(napi_env env);
napi_value make_number(napi_env env, double x);

// Runs body(begin, end) over [0, n) split into contiguous chunks across the pool's threads
// (the caller's thread takes one). Chunks are at least `grain` long so tiny loops stay serial.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);
int num_threads();
void set_num_threads(int n);

bool cpu_has_avx2_fma();
// AVX-512F besides (GLIMPSE_NO_AVX512=1, or GLIMPSE_NO_AVX2=1, says no).
bool cpu_has_avx512f();

}  // namespace glimpse

// Wraps a kernel body so C++ exceptions surface as JS errors instead of aborting the process.
#define GLIMPSE_KERNEL(name)                                                     \
  static napi_value name##_impl(napi_env env, napi_callback_info info);         \
  static napi_value name(napi_env env, napi_callback_info info) {               \
    try {                                                                        \
      return name##_impl(env, info);                                             \
    } catch (const std::exception& e) {                                          \
      napi_throw_error(env, nullptr, (std::string(#name ": ") + e.what()).c_str()); \
      return nullptr;                                                            \
    }                                                                            \
  }                                                                              \
  static napi_value name##_impl(napi_env env, napi_callback_info info)
