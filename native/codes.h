// Numeric codes that TypeScript passes to the kernels: dtypes and op ids. Their TypeScript side is
// src/tensor/backends/native/codes.ts. Each table's names, in code order, are exported as
// addon.codes.<key> (addon.cc), and codes.ts checks its own tables against them when the addon
// loads; the static_asserts keep each enum and its names the same length. A new code goes at the
// same place in the enum, its names and codes.ts.
#pragma once
#include <cstddef>
#include <iterator>

namespace glimpse {

// names[c] names code c.
struct CodeTable {
  const char* key;   // its name on addon.codes
  const char* what;  // what a code stands for, in messages: "unary op"
  const char* const* names;
  int count;
};

template <size_t N>
constexpr CodeTable code_table(const char* key, const char* what, const char* const (&names)[N]) {
  return {key, what, names, static_cast<int>(N)};
}

// Element types of elementwise views (elementwise.cc).
enum class DT : int { f32, f64, i32, i64, u8, boolean };
inline constexpr const char* kDTypeNames[] = {"float32", "float64", "int32", "int64", "uint8", "bool"};
static_assert(std::size(kDTypeNames) == static_cast<size_t>(DT::boolean) + 1, "one name per DT");
inline constexpr CodeTable kDTypes = code_table("dtype", "dtype", kDTypeNames);

// Unary ops (elementwise.cc).
enum class UOp : int {
  neg, abs, sign, exp, log, sqrt, rsqrt, reciprocal, square, sin, cos, tanh, sigmoid, softplus, erf,
  relu, gelu_erf, gelu_tanh, quick_gelu, count
};
inline constexpr const char* kUnaryNames[] = {
    "neg", "abs", "sign", "exp", "log", "sqrt", "rsqrt", "reciprocal", "square", "sin", "cos",
    "tanh", "sigmoid", "softplus", "erf", "relu", "gelu_erf", "gelu_tanh", "quick_gelu"};
static_assert(std::size(kUnaryNames) == static_cast<size_t>(UOp::count), "one name per UOp");
inline constexpr CodeTable kUnaryOps = code_table("unary", "unary op", kUnaryNames);

// Activations: the gradients of elementwise.cc and the epilogues of fused.cc, where -1 is none.
enum class Act : int { none = -1, relu, gelu_erf, gelu_tanh, quick_gelu, sigmoid, tanh, erf, softplus, count };
inline constexpr const char* kActivationNames[] = {"relu",    "gelu_erf", "gelu_tanh", "quick_gelu",
                                                   "sigmoid", "tanh",     "erf",       "softplus"};
static_assert(std::size(kActivationNames) == static_cast<size_t>(Act::count), "one name per Act");
inline constexpr CodeTable kActivations = code_table("activation", "activation", kActivationNames);

// Binary ops (elementwise.cc): arithmetic up to minimum, then comparisons, then logic.
enum class BOp : int { add, sub, mul, div, pow, maximum, minimum, eq, ne, lt, le, gt, ge, logical_and, logical_or, count };
inline constexpr const char* kBinaryNames[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum", "eq",
                                               "ne",  "lt",  "le",  "gt",  "ge",  "and",     "or"};
static_assert(std::size(kBinaryNames) == static_cast<size_t>(BOp::count), "one name per BOp");
inline constexpr CodeTable kBinaryOps = code_table("binary", "binary op", kBinaryNames);

// Reductions (reduce.cc), plain ints: they are template arguments there.
enum ReduceOp : int { kSum, kMax, kMin, kArgMax, kArgMin, kReduceOpCount };
inline constexpr const char* kReduceNames[] = {"sum", "max", "min", "argmax", "argmin"};
static_assert(std::size(kReduceNames) == kReduceOpCount, "one name per ReduceOp");
inline constexpr CodeTable kReduceOps = code_table("reduce", "reduce op", kReduceNames);

// Every table, as addon.codes holds them.
inline constexpr const CodeTable* kCodeTables[] = {&kDTypes, &kUnaryOps, &kActivations, &kBinaryOps, &kReduceOps};

}  // namespace glimpse
