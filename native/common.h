// Shared helpers for the N-API kernel families: typed argument decoding, errors, the thread pool.
#pragma once
#include <node_api.h>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
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

// Tensors usually arrive as consecutive JS arguments that a composite field decodes into one member:
// a typed array and the offset of the tensor's element 0 in it (x, xOffset: a SpanArg), and for a
// strided view also its strides in elements (x, xOffset, xStrides: a StridedArg).
struct SpanArg {
  Array data;
  int64_t offset = 0;
};
struct StridedArg {
  Array data;
  int64_t offset = 0;
  Ints strides;
};

// ---------------------------------------------------------------------------------------------
// Kernel arguments. Each kernel takes its JS arguments as one struct S, declared next to it with a
// Signature: the kernel's name on the exports and one Field per argument, in call order, naming
// the argument, its kind and the member of S it fills. Each kind's constructor (arg::f32,
// arg::integer, arg::strided, ...) takes a member of that kind's type only (Array, int64_t, double,
// bool, Ints, SpanArg, StridedArg), so a table cannot decode an argument into the wrong type; an
// array may require one typed array type, an integer may be a code of a CodeTable (codes.h). A
// span or strided field stands for two or three JS arguments, named after its array ("x",
// "xOffset", "xStrides") unless arg::part_names says otherwise. kernel_entry decodes a call into S
// before the kernel runs, and a wrong count or type becomes a JS Error naming the kernel and the
// JS argument. The TypeScript wrappers (src/tensor/backends/native/*.ts) pass the arguments in
// declared order.
// ---------------------------------------------------------------------------------------------

enum class ArgKind { array, integer, code, number, flag, ints, span, strided };
constexpr int kAnyArray = -1;  // Field::array_type: any typed array
constexpr size_t kMaxArgs = 24;

template <class S>
struct Field {
  const char* name;                  // as the TypeScript wrapper calls it: "x"
  ArgKind kind;
  Array S::*array = nullptr;         // kind array
  int64_t S::*integer = nullptr;     // kinds integer and code
  double S::*number = nullptr;       // kind number
  bool S::*flag = nullptr;           // kind flag
  Ints S::*ints = nullptr;           // kind ints
  SpanArg S::*span = nullptr;        // kind span
  StridedArg S::*strided = nullptr;  // kind strided
  int array_type = kAnyArray;        // kinds array, span, strided: the napi_typedarray_type required
  const CodeTable* codes = nullptr;  // kind code: the valid codes
  bool optional = false;             // an array may be null (Array::null), a code -1 (none)
  std::string offset_name{}, strides_name{};  // kinds span and strided: "xOffset", "xStrides"

  // How many JS arguments the field takes.
  size_t width() const { return kind == ArgKind::strided ? 3 : kind == ArgKind::span ? 2 : 1; }
};

template <class S>
struct Signature {
  using Args = S;
  const char* name;              // the kernel's name on the addon's exports
  std::vector<Field<S>> fields;  // in call order
  size_t count = 0;              // JS arguments: a span field takes two, a strided one three

  Signature(const char* kernel, std::vector<Field<S>> f) : name(kernel), fields(std::move(f)) {
    for (const Field<S>& x : fields) count += x.width();
  }
};

// Field constructors, one per kind: arg::f32("x", &SoftmaxArgs::x).
namespace arg {
// A field of the given kind that fills member m through Field's pointer `slot` for that kind.
template <class S, class M>
Field<S> field(const char* name, ArgKind kind, M S::*Field<S>::*slot, M S::*m, int type = kAnyArray) {
  Field<S> f{name, kind};
  f.*slot = m;
  f.array_type = type;
  if (kind == ArgKind::span || kind == ArgKind::strided) f.offset_name = std::string(name) + "Offset";
  if (kind == ArgKind::strided) f.strides_name = std::string(name) + "Strides";
  return f;
}
template <class S>
Field<S> array(const char* name, Array S::*m, int type = kAnyArray) {
  return field(name, ArgKind::array, &Field<S>::array, m, type);
}
template <class S>
Field<S> f32(const char* name, Array S::*m) { return array(name, m, napi_float32_array); }
template <class S>
Field<S> integer(const char* name, int64_t S::*m) { return field(name, ArgKind::integer, &Field<S>::integer, m); }
template <class S>
Field<S> code(const char* name, int64_t S::*m, const CodeTable& codes) {
  Field<S> f = field(name, ArgKind::code, &Field<S>::integer, m);
  f.codes = &codes;
  return f;
}
template <class S>
Field<S> number(const char* name, double S::*m) { return field(name, ArgKind::number, &Field<S>::number, m); }
template <class S>
Field<S> flag(const char* name, bool S::*m) { return field(name, ArgKind::flag, &Field<S>::flag, m); }
template <class S>
Field<S> ints(const char* name, Ints S::*m) { return field(name, ArgKind::ints, &Field<S>::ints, m); }
// x, xOffset: an array and the offset of the tensor in it.
template <class S>
Field<S> span(const char* name, SpanArg S::*m, int type = kAnyArray) {
  return field(name, ArgKind::span, &Field<S>::span, m, type);
}
template <class S>
Field<S> f32_span(const char* name, SpanArg S::*m) { return span(name, m, napi_float32_array); }
// x, xOffset, xStrides: a strided view.
template <class S>
Field<S> strided(const char* name, StridedArg S::*m, int type = kAnyArray) {
  return field(name, ArgKind::strided, &Field<S>::strided, m, type);
}
template <class S>
Field<S> f32_strided(const char* name, StridedArg S::*m) { return strided(name, m, napi_float32_array); }
// A span or strided field whose offset (and strides) arguments have names of their own.
template <class S>
Field<S> part_names(Field<S> f, const char* offset, const char* strides = "") {
  f.offset_name = offset;
  f.strides_name = strides;
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
  const size_t n = sig.count;
  if (argc != n) {
    std::vector<const char*> names;
    for (const Field<S>& f : sig.fields) {
      names.push_back(f.name);
      if (f.width() > 1) names.push_back(f.offset_name.c_str());
      if (f.width() > 2) names.push_back(f.strides_name.c_str());
    }
    wrong_count(names, argc);
  }
  size_t i = 0;
  for (const Field<S>& f : sig.fields) {
    const ArgAt at{f.name, i, n};
    switch (f.kind) {
      case ArgKind::array: out.*f.array = decode_array(env, argv[i], f.array_type, f.optional, at); break;
      case ArgKind::integer: out.*f.integer = decode_integer(env, argv[i], at); break;
      case ArgKind::code: out.*f.integer = decode_code(env, argv[i], *f.codes, f.optional, at); break;
      case ArgKind::number: out.*f.number = decode_number(env, argv[i], at); break;
      case ArgKind::flag: out.*f.flag = decode_flag(env, argv[i], at); break;
      case ArgKind::ints: out.*f.ints = decode_ints(env, argv[i], at); break;
      case ArgKind::span:
        (out.*f.span).data = decode_array(env, argv[i], f.array_type, f.optional, at);
        (out.*f.span).offset = decode_integer(env, argv[i + 1], {f.offset_name.c_str(), i + 1, n});
        break;
      case ArgKind::strided:
        (out.*f.strided).data = decode_array(env, argv[i], f.array_type, f.optional, at);
        (out.*f.strided).offset = decode_integer(env, argv[i + 1], {f.offset_name.c_str(), i + 1, n});
        (out.*f.strided).strides = decode_ints(env, argv[i + 2], {f.strides_name.c_str(), i + 2, n});
        break;
    }
    i += f.width();
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
  check_signature(sig.name, sig.count);
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
