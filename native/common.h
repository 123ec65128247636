// Shared helpers for the N-API kernel families: typed argument decoding, errors, the thread pool.
#pragma once
#include <node_api.h>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "codes.h"

namespace glimpse {

// Thrown inside kernels' argument handling; becomes a JS Error naming the kernel (kernel_entry).
struct ArgError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A bad index value; becomes a JS RangeError, the type the reference backend throws.
struct IndexError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Array {
  void* data = nullptr;
  size_t length = 0;  // elements
  napi_typedarray_type type = napi_float32_array;
  bool null = false;  // an optional argument that was given as null (or undefined)
  float* f32() const;
  int32_t* i32() const;
  uint8_t* u8() const;
  double* f64() const;
};

using Ints = std::vector<int64_t>;  // a JS number[]

// ---------------------------------------------------------------------------------------------
// Kernel arguments. Each kernel takes its JS arguments as one struct S, declared next to it with a
// Signature: the kernel's name on the exports and one Field per JS argument, in call order, naming
// the argument, its kind and the member of S it fills. Each kind's constructor (arg::f32,
// arg::integer, ...) takes a member of that kind's type only (Array, int64_t, double, bool, Ints),
// so a table cannot decode an argument into the wrong type; an array may require one typed array
// type, an integer may be a code of a CodeTable (codes.h). kernel_entry decodes a call into S before
// the kernel runs, and a wrong count or type becomes a JS Error naming the kernel and the argument.
// The TypeScript wrappers (src/tensor/backends/native/*.ts) pass the arguments in declared order.
// ---------------------------------------------------------------------------------------------

enum class ArgKind { array, integer, code, number, flag, ints };
constexpr int kAnyArray = -1;  // Field::array_type: any typed array
constexpr size_t kMaxArgs = 24;

template <class S>
struct Field {
  const char* name;                  // as the TypeScript wrapper calls it: "xOffset"
  ArgKind kind;
  Array S::*array = nullptr;         // kind array
  int64_t S::*integer = nullptr;     // kinds integer and code
  double S::*number = nullptr;       // kind number
  bool S::*flag = nullptr;           // kind flag
  Ints S::*ints = nullptr;           // kind ints
  int array_type = kAnyArray;        // kind array: the napi_typedarray_type required
  const CodeTable* codes = nullptr;  // kind code: the valid codes
  bool optional = false;             // an array may be null (Array::null), a code -1 (none)
};

template <class S>
struct Signature {
  using Args = S;
  const char* name;              // the kernel's name on the addon's exports
  std::vector<Field<S>> fields;  // one per JS argument, in call order
};

// Field constructors, one per kind: arg::f32("x", &SoftmaxArgs::x).
namespace arg {
template <class S>
Field<S> array(const char* name, Array S::*m, int type = kAnyArray) {
  Field<S> f{name, ArgKind::array};
  f.array = m;
  f.array_type = type;
  return f;
}
template <class S>
Field<S> f32(const char* name, Array S::*m) { return array(name, m, napi_float32_array); }
template <class S>
Field<S> integer(const char* name, int64_t S::*m) {
  Field<S> f{name, ArgKind::integer};
  f.integer = m;
  return f;
}
template <class S>
Field<S> code(const char* name, int64_t S::*m, const CodeTable& codes) {
  Field<S> f{name, ArgKind::code};
  f.integer = m;
  f.codes = &codes;
  return f;
}
template <class S>
Field<S> number(const char* name, double S::*m) {
  Field<S> f{name, ArgKind::number};
  f.number = m;
  return f;
}
template <class S>
Field<S> flag(const char* name, bool S::*m) {
  Field<S> f{name, ArgKind::flag};
  f.flag = m;
  return f;
}
template <class S>
Field<S> ints(const char* name, Ints S::*m) {
  Field<S> f{name, ArgKind::ints};
  f.ints = m;
  return f;
}
// An array that may be null, or a code that may be -1 (none).
template <class S>
Field<S> optional(Field<S> f) {
  f.optional = true;
  return f;
}
}  // namespace arg

// Where an argument sits, for messages: "xOffset must be an integer (argument 3 of 7)".
struct ArgAt {
  const char* name;
  size_t index, count;
};
Array decode_array(napi_env env, napi_value v, int type, bool optional, const ArgAt& at);
int64_t decode_integer(napi_env env, napi_value v, const ArgAt& at);
int64_t decode_code(napi_env env, napi_value v, const CodeTable& codes, bool optional, const ArgAt& at);
double decode_number(napi_env env, napi_value v, const ArgAt& at);
bool decode_flag(napi_env env, napi_value v, const ArgAt& at);
Ints decode_ints(napi_env env, napi_value v, const ArgAt& at);
[[noreturn]] void wrong_count(const std::vector<const char*>& names, size_t got);

template <class S>
void decode_args(napi_env env, napi_callback_info info, const Signature<S>& sig, S& out) {
  napi_value argv[kMaxArgs];
  size_t argc = kMaxArgs;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  const size_t n = sig.fields.size();
  if (argc != n) {
    std::vector<const char*> names;
    for (const Field<S>& f : sig.fields) names.push_back(f.name);
    wrong_count(names, argc);
  }
  for (size_t i = 0; i < n; i++) {
    const Field<S>& f = sig.fields[i];
    const ArgAt at{f.name, i, n};
    switch (f.kind) {
      case ArgKind::array: out.*f.array = decode_array(env, argv[i], f.array_type, f.optional, at); break;
      case ArgKind::integer: out.*f.integer = decode_integer(env, argv[i], at); break;
      case ArgKind::code: out.*f.integer = decode_code(env, argv[i], *f.codes, f.optional, at); break;
      case ArgKind::number: out.*f.number = decode_number(env, argv[i], at); break;
      case ArgKind::flag: out.*f.flag = decode_flag(env, argv[i], at); break;
      case ArgKind::ints: out.*f.ints = decode_ints(env, argv[i], at); break;
    }
  }
}

// Throws a JS Error (a RangeError when range) "kernel: message" on env.
void throw_js(napi_env env, const char* kernel, const char* message, bool range);

// The N-API function of a kernel napi_value body(napi_env, S&) whose arguments sig describes: it
// decodes the call into an S, runs body on it, and turns a C++ exception into a JS error instead
// of letting it abort the process.
template <const auto& sig, auto body>
napi_value kernel_entry(napi_env env, napi_callback_info info) {
  try {
    typename std::decay_t<decltype(sig)>::Args args{};
    decode_args(env, info, sig, args);
    return body(env, args);
  } catch (const IndexError& e) {
    throw_js(env, sig.name, e.what(), true);
  } catch (const std::exception& e) {
    throw_js(env, sig.name, e.what(), false);
  }
  return nullptr;
}

using Kernel = napi_value (*)(napi_env, napi_callback_info);
void export_fn(napi_env env, napi_value exports, const char* name, Kernel fn);
void check_signature(const char* name, size_t count);  // at most kMaxArgs arguments, or a fatal error

// Registers a kernel on exports under sig.name: export_kernel<kSoftmax, softmax>(env, exports).
template <const auto& sig, auto body>
void export_kernel(napi_env env, napi_value exports) {
  check_signature(sig.name, sig.fields.size());
  export_fn(env, exports, sig.name, kernel_entry<sig, body>);
}

napi_value undefined(napi_env env);
napi_value make_number(napi_env env, double x);
napi_value make_boolean(napi_env env, bool x);

// Runs body(begin, end) over [0, n) split into contiguous chunks across the pool's threads
// (the caller's thread takes one). Chunks are at least `grain` long so tiny loops stay serial.
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& body);
int num_threads();
void set_num_threads(int n);

bool cpu_has_avx2_fma();
// AVX-512F besides (GLIMPSE_NO_AVX512=1, or GLIMPSE_NO_AVX2=1, says no).
bool cpu_has_avx512f();

}  // namespace glimpse
