// N-API entry point: each kernel family registers its functions on the module's exports, and the
// code tables (codes.h) go on exports.codes. Also the argument decoding that common.h declares.
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
void export_codes(napi_env env, napi_value exports);

float* Array::f32() const { return static_cast<float*>(data); }
int32_t* Array::i32() const { return static_cast<int32_t*>(data); }
uint8_t* Array::u8() const { return static_cast<uint8_t*>(data); }
double* Array::f64() const { return static_cast<double*>(data); }

namespace {

std::string at_text(const ArgAt& at) {
  return " (argument " + std::to_string(at.index + 1) + " of " + std::to_string(at.count) + ")";
}

[[noreturn]] void bad(const ArgAt& at, const std::string& must_be) {
  throw ArgError(std::string(at.name) + " must be " + must_be + at_text(at));
}

// "a Float32Array": the required type of an array field, with its article.
const char* array_type_name(int type) {
  switch (type) {
    case napi_float32_array: return "a Float32Array";
    case napi_int32_array: return "an Int32Array";
    case napi_uint8_array: return "a Uint8Array";
    default: return "a typed array of another type";
  }
}

bool is_nullish(napi_env env, napi_value v) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  return t == napi_null || t == napi_undefined;
}

}  // namespace

Array decode_array(napi_env env, napi_value v, int type, bool optional, const ArgAt& at) {
  Array a;
  bool is_ta = false;
  napi_is_typedarray(env, v, &is_ta);
  if (!is_ta) {
    if (optional && is_nullish(env, v)) {
      a.null = true;
      return a;
    }
    const std::string kind = type == kAnyArray ? "a typed array" : std::string("a typed array, ") + array_type_name(type);
    bad(at, kind + (optional ? " or null" : ""));
  }
  napi_value ab;
  size_t byte_offset;
  napi_get_typedarray_info(env, v, &a.type, &a.length, &a.data, &ab, &byte_offset);
  if (type != kAnyArray && a.type != type) bad(at, std::string(array_type_name(type)) + (optional ? " or null" : ""));
  return a;
}

int64_t decode_integer(napi_env env, napi_value v, const ArgAt& at) {
  int64_t x;
  if (napi_get_value_int64(env, v, &x) != napi_ok) bad(at, "an integer");
  return x;
}

int64_t decode_code(napi_env env, napi_value v, const CodeTable& codes, bool optional, const ArgAt& at) {
  const int64_t c = decode_integer(env, v, at);
  if ((c < 0 && !(optional && c == -1)) || c >= codes.count)
    throw ArgError(std::string(at.name) + ": unknown " + codes.what + " code " + std::to_string(c) + at_text(at));
  return c;
}

double decode_number(napi_env env, napi_value v, const ArgAt& at) {
  double x;
  if (napi_get_value_double(env, v, &x) != napi_ok) bad(at, "a number");
  return x;
}

bool decode_flag(napi_env env, napi_value v, const ArgAt& at) {
  bool x;
  if (napi_get_value_bool(env, v, &x) != napi_ok) bad(at, "a boolean");
  return x;
}

Ints decode_ints(napi_env env, napi_value v, const ArgAt& at) {
  bool is_arr = false;
  napi_is_array(env, v, &is_arr);
  if (!is_arr) bad(at, "an array of integers");
  uint32_t n;
  napi_get_array_length(env, v, &n);
  Ints out(n);
  for (uint32_t i = 0; i < n; i++) {
    napi_value e;
    napi_get_element(env, v, i, &e);
    if (napi_get_value_int64(env, e, &out[i]) != napi_ok) bad(at, "an array of integers");
  }
  return out;
}

void wrong_count(const std::vector<const char*>& names, size_t got) {
  std::string list;
  for (const char* n : names) list += (list.empty() ? "" : ", ") + std::string(n);
  throw ArgError("expected " + std::to_string(names.size()) + " arguments (" + list + "), got " + std::to_string(got));
}

void throw_js(napi_env env, const char* kernel, const char* message, bool range) {
  const std::string text = std::string(kernel) + ": " + message;
  if (range) napi_throw_range_error(env, nullptr, text.c_str());
  else napi_throw_error(env, nullptr, text.c_str());
}

void check_signature(const char* name, size_t count) {
  if (count > kMaxArgs) {
    const std::string text = std::string(name) + " declares more than kMaxArgs (common.h) arguments";
    napi_fatal_error("glimpse", NAPI_AUTO_LENGTH, text.c_str(), NAPI_AUTO_LENGTH);
  }
}

void export_fn(napi_env env, napi_value exports, const char* name, Kernel fn) {
  napi_value f;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, fn, nullptr, &f);
  napi_set_named_property(env, exports, name, f);
}

// exports.codes: for each code table (codes.h), its names in code order.
void export_codes(napi_env env, napi_value exports) {
  napi_value codes;
  napi_create_object(env, &codes);
  for (const CodeTable* t : kCodeTables) {
    napi_value names;
    napi_create_array_with_length(env, t->count, &names);
    for (int c = 0; c < t->count; c++) {
      napi_value s;
      napi_create_string_utf8(env, t->names[c], NAPI_AUTO_LENGTH, &s);
      napi_set_element(env, names, c, s);
    }
    napi_object_freeze(env, names);
    napi_set_named_property(env, codes, t->key, names);
  }
  napi_object_freeze(env, codes);
  napi_set_named_property(env, exports, "codes", codes);
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

napi_value make_boolean(napi_env env, bool x) {
  napi_value v;
  napi_get_boolean(env, x, &v);
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
  export_codes(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
