// Indexing kernels: indexSelect / indexAdd (rows picked along an axis, and the scatter-add that is
// its gradient), gather / scatterAdd (torch.gather and its gradient), and a stable per-row sort.
//
// Tensors are read as [outer, n, inner]. Every index is checked before anything is written; a bad
// one raises a JS RangeError naming it. The scatter-adds never split the index axis across threads:
// each thread owns whole (outer, inner-range) slices and adds the rows in index order, so repeated
// indices are safe and the sums do not depend on the thread count.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>

#include "common.h"

#if defined(__x86_64__) || defined(__i386__)
#define GLIMPSE_INDEXING_X86 1
#include <immintrin.h>
#endif

namespace glimpse {
namespace {

size_t element_size(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array:
      return 1;
    case napi_int16_array:
    case napi_uint16_array:
      return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      return 4;
    default:
      return 8;
  }
}

void need(const Array& a, int64_t offset, int64_t count, const char* what) {
  if (offset < 0 || count < 0 || offset + count > static_cast<int64_t>(a.length))
    throw ArgError(std::string(what) + ": " + std::to_string(count) + " elements from offset " +
                   std::to_string(offset) + " do not fit its array of " + std::to_string(a.length));
}

// a * b * c, or an error if a typed array could not hold that many elements.
int64_t count3(int64_t a, int64_t b, int64_t c) {
  int64_t ab, abc;
  if (__builtin_mul_overflow(a, b, &ab) || __builtin_mul_overflow(ab, c, &abc) || abc > (int64_t(1) << 53))
    throw ArgError("the sizes " + std::to_string(a) + " x " + std::to_string(b) + " x " + std::to_string(c) +
                   " are too large");
  return abc;
}

int64_t dim(int64_t d, const char* what) {
  if (d < 0 || d > std::numeric_limits<int32_t>::max())
    throw ArgError(std::string(what) + " must be a non-negative 32-bit size");
  return d;
}

// An int32 index vector: `count` values idx[offset + t * stride].
struct Index {
  const int32_t* base;
  int64_t stride, count;
  int32_t operator[](int64_t t) const { return base[t * stride]; }
};

// The index vector of `count` values arr[offset + t * stride] of an Int32Array (arr, offset),
// checked to lie inside arr.
Index index_view(const SpanArg& index, int64_t stride, int64_t count) {
  const Array& arr = index.data;
  const int64_t offset = index.offset;
  if (count > 0) {
    const int64_t last = offset + (count - 1) * stride;
    if (offset < 0 || last < 0 || std::max(offset, last) >= static_cast<int64_t>(arr.length))
      throw ArgError("the index view reaches outside its array of " + std::to_string(arr.length) + " elements");
  }
  return {arr.i32() + offset, stride, count};
}

// Throws IndexError for the first index (in order) outside [0, n). Chunks scan in parallel and
// the earliest bad position wins, so the message does not depend on the thread count.
void check_indices(const Index& idx, int64_t n) {
  std::atomic<int64_t> first_bad{std::numeric_limits<int64_t>::max()};
  parallel_for(idx.count, 1 << 16, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; t++) {
      const int32_t j = idx[t];
      if (j < 0 || j >= n) {
        int64_t cur = first_bad.load();
        while (t < cur && !first_bad.compare_exchange_weak(cur, t)) {
        }
        return;
      }
    }
  });
  const int64_t bad = first_bad.load();
  if (bad != std::numeric_limits<int64_t>::max())
    throw IndexError("index " + std::to_string(idx[bad]) + " is out of range for a dimension of size " +
                     std::to_string(n) +
                     (n > 0 ? " (valid: 0 to " + std::to_string(n - 1) + ")" : " (no index is valid)"));
}

// Splits [outer, inner] into tasks of whole index axes: (o, [i0, i1)) slices, wide enough that each
// task streams reasonably long rows, and enough of them to keep every thread busy.
struct Slices {
  int64_t outer, inner, width, per_outer;
  int64_t count() const { return outer * per_outer; }
  void get(int64_t t, int64_t* o, int64_t* i0, int64_t* i1) const {
    *o = t / per_outer;
    *i0 = (t % per_outer) * width;
    *i1 = std::min(inner, *i0 + width);
  }
};

Slices make_slices(int64_t outer, int64_t inner) {
  const int64_t want = 4 * num_threads();
  int64_t width = inner;
  if (outer < want && inner > 0) {
    const int64_t per = (want + outer - 1) / outer;
    width = std::max<int64_t>(64, (inner + per - 1) / per);
    width = (width + 15) / 16 * 16;
  }
  const int64_t per_outer = width > 0 ? (inner + width - 1) / width : 0;
  return {outer, inner, std::max<int64_t>(width, 1), per_outer};
}

#ifdef GLIMPSE_INDEXING_X86
__attribute__((target("avx2"))) void add_row_avx2(float* dst, const float* src, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, _mm256_add_ps(_mm256_loadu_ps(dst + i), _mm256_loadu_ps(src + i)));
  for (; i < n; i++) dst[i] += src[i];
}

#endif

void add_row(float* dst, const float* src, int64_t n) {
#ifdef GLIMPSE_INDEXING_X86
  if (cpu_has_avx2_fma()) return add_row_avx2(dst, src, n);
#endif
  for (int64_t i = 0; i < n; i++) dst[i] += src[i];
}

// indexSelect(x, xOffset, index, indexOffset, indexStride, m, outer, n, inner, out)
// out[o, j, :] = x[o, index[j], :]; x and out are any typed arrays of the same element type.
// indexAdd(g, gOffset, index, indexOffset, indexStride, m, outer, n, inner, out): float32;
// out[o, index[j], :] += g[o, j, :].
// gather and scatterAdd (below) take the same arguments but indexStride: their index is dense.
struct IndexArgs {
  SpanArg x;  // g for indexAdd and scatterAdd
  SpanArg index;
  int64_t index_stride = 1;  // indexSelect and indexAdd only
  int64_t m, outer, n, inner;
  Array out;
};
std::vector<Field<IndexArgs>> index_fields(const char* x, bool index_stride) {
  std::vector<Field<IndexArgs>> f = {
      arg::span(x, &IndexArgs::x),
      arg::span("index", &IndexArgs::index, napi_int32_array),
  };
  if (index_stride) f.push_back(arg::integer("indexStride", &IndexArgs::index_stride));
  f.insert(f.end(), {
      arg::integer("m", &IndexArgs::m),
      arg::integer("outer", &IndexArgs::outer),
      arg::integer("n", &IndexArgs::n),
      arg::integer("inner", &IndexArgs::inner),
      arg::array("out", &IndexArgs::out),
  });
  return f;
}
const Signature<IndexArgs> kIndexSelect{"indexSelect", index_fields("x", true)};
const Signature<IndexArgs> kIndexAdd{"indexAdd", index_fields("g", true)};
const Signature<IndexArgs> kGather{"gather", index_fields("x", false)};
const Signature<IndexArgs> kScatterAdd{"scatterAdd", index_fields("g", false)};

napi_value index_select(napi_env env, IndexArgs& a) {
  const Array& x = a.x.data;
  const int64_t x_off = a.x.offset;
  const int64_t m = dim(a.m, "m"), outer = dim(a.outer, "outer"), n = dim(a.n, "n"), inner = dim(a.inner, "inner");
  const Index idx = index_view(a.index, a.index_stride, m);
  const Array& out = a.out;
  if (out.type != x.type) throw ArgError("out must have the element type of x");
  need(x, x_off, count3(outer, n, inner), "x");
  need(out, 0, count3(outer, m, inner), "out");
  check_indices(idx, n);
  const size_t es = element_size(x.type);
  const char* src = static_cast<const char*>(x.data) + x_off * es;
  char* dst = static_cast<char*>(out.data);
  const size_t row = inner * es;
  parallel_for(outer * m, std::max<int64_t>(1, 32768 / (inner + 1)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; r++) {
      const int64_t o = r / m, j = r % m;
      std::memcpy(dst + r * row, src + (o * n + idx[j]) * row, row);
    }
  });
  return undefined(env);
}

napi_value index_add(napi_env env, IndexArgs& a) {
  const Array& g = a.x.data;
  const int64_t g_off = a.x.offset;
  const int64_t m = dim(a.m, "m"), outer = dim(a.outer, "outer"), n = dim(a.n, "n"), inner = dim(a.inner, "inner");
  const Index idx = index_view(a.index, a.index_stride, m);
  const Array& out = a.out;
  if (g.type != napi_float32_array || out.type != napi_float32_array) throw ArgError("g and out must be Float32Arrays");
  need(g, g_off, count3(outer, m, inner), "g");
  need(out, 0, count3(outer, n, inner), "out");
  check_indices(idx, n);
  const float* gs = g.f32() + g_off;
  float* os = out.f32();
  const Slices sl = make_slices(outer, inner);
  const int64_t work = std::max<int64_t>(1, m * sl.width);
  parallel_for(sl.count(), std::max<int64_t>(1, 32768 / work), [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; t++) {
      int64_t o, i0, i1;
      sl.get(t, &o, &i0, &i1);
      for (int64_t j = 0; j < m; j++)
        add_row(os + (o * n + idx[j]) * inner + i0, gs + (o * m + j) * inner + i0, i1 - i0);
    }
  });
  return undefined(env);
}

// gather(x, xOffset, index, indexOffset, m, outer, n, inner, out): out[o, j, i] = x[o, index[o, j, i], i]
// for a dense index [outer, m, inner]; x and out share any element type.
// scatterAdd(g, gOffset, index, indexOffset, m, outer, n, inner, out): float32;
// out[o, index[o, j, i], i] += g[o, j, i] for a dense index [outer, m, inner].
napi_value gather(napi_env env, IndexArgs& a) {
  const Array& x = a.x.data;
  const int64_t x_off = a.x.offset;
  const int64_t m = dim(a.m, "m"), outer = dim(a.outer, "outer"), n = dim(a.n, "n"), inner = dim(a.inner, "inner");
  const Index idx = index_view(a.index, 1, count3(outer, m, inner));
  const Array& out = a.out;
  if (out.type != x.type) throw ArgError("out must have the element type of x");
  need(x, x_off, count3(outer, n, inner), "x");
  need(out, 0, count3(outer, m, inner), "out");
  check_indices(idx, n);
  const size_t es = element_size(x.type);
  auto run = [&](auto* dst, const auto* src) {
    parallel_for(outer * m, std::max<int64_t>(1, 32768 / (inner + 1)), [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; r++) {
        const int64_t o = r / m;
        const int32_t* ir = idx.base + r * inner;
        for (int64_t i = 0; i < inner; i++) dst[r * inner + i] = src[(o * n + ir[i]) * inner + i];
      }
    });
  };
  if (es == 1) run(static_cast<uint8_t*>(out.data), static_cast<const uint8_t*>(x.data) + x_off);
  else if (es == 2) run(static_cast<uint16_t*>(out.data), static_cast<const uint16_t*>(x.data) + x_off);
  else if (es == 4) run(static_cast<uint32_t*>(out.data), static_cast<const uint32_t*>(x.data) + x_off);
  else run(static_cast<uint64_t*>(out.data), static_cast<const uint64_t*>(x.data) + x_off);
  return undefined(env);
}

napi_value scatter_add(napi_env env, IndexArgs& a) {
  const Array& g = a.x.data;
  const int64_t g_off = a.x.offset;
  const int64_t m = dim(a.m, "m"), outer = dim(a.outer, "outer"), n = dim(a.n, "n"), inner = dim(a.inner, "inner");
  const Index idx = index_view(a.index, 1, count3(outer, m, inner));
  const Array& out = a.out;
  if (g.type != napi_float32_array || out.type != napi_float32_array) throw ArgError("g and out must be Float32Arrays");
  need(g, g_off, count3(outer, m, inner), "g");
  need(out, 0, count3(outer, n, inner), "out");
  check_indices(idx, n);
  const float* gs = g.f32() + g_off;
  float* os = out.f32();
  const Slices sl = make_slices(outer, inner);
  const int64_t work = std::max<int64_t>(1, m * sl.width);
  parallel_for(sl.count(), std::max<int64_t>(1, 32768 / work), [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; t++) {
      int64_t o, i0, i1;
      sl.get(t, &o, &i0, &i1);
      float* oo = os + o * n * inner;
      for (int64_t j = 0; j < m; j++) {
        const int64_t r = (o * m + j) * inner;
        for (int64_t i = i0; i < i1; i++) oo[idx.base[r + i] * inner + i] += gs[r + i];
      }
    }
  });
  return undefined(env);
}

// Sort keys: an order-preserving map of floats to unsigned integers in which every NaN is the
// largest value and -0 equals +0 (both as the reference compares them).
inline uint32_t sort_key(float x) {
  if (x != x) return 0xFFFFFFFFu;
  if (x == 0) x = 0;  // -0 -> +0
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// Sorts one row's keys, stable: afterwards order[t] is the position of the t-th smallest key,
// equal keys in position order. Long rows take an LSD radix sort (three stable 11-bit passes,
// skipping a pass when every key has the same digit); short ones a comparison sort of
// (key, position) pairs, which are all distinct, so an unstable sort of them is stable by key.
class RowSorter {
 public:
  explicit RowSorter(int64_t n) : n_(n) {
    if (n >= kRadixMin) {
      keys_.resize(2 * n);
      order_.resize(2 * n);
    } else {
      pairs_.resize(n);
    }
  }

  // keys: n sort keys; returns the positions in sorted order (valid until the next call).
  const uint32_t* sort(const uint32_t* keys) {
    if (n_ < kRadixMin) {
      for (int64_t j = 0; j < n_; j++) pairs_[j] = (static_cast<uint64_t>(keys[j]) << 32) | static_cast<uint64_t>(j);
      std::sort(pairs_.begin(), pairs_.end());
      order_.resize(n_);
      for (int64_t t = 0; t < n_; t++) order_[t] = static_cast<uint32_t>(pairs_[t]);
      return order_.data();
    }
    uint32_t *k0 = keys_.data(), *k1 = k0 + n_, *o0 = order_.data(), *o1 = o0 + n_;
    std::copy(keys, keys + n_, k0);
    for (int64_t j = 0; j < n_; j++) o0[j] = static_cast<uint32_t>(j);
    for (int shift = 0; shift < 32; shift += 11) {
      int64_t count[2048] = {};
      for (int64_t j = 0; j < n_; j++) count[(k0[j] >> shift) & 2047]++;
      if (count[(k0[0] >> shift) & 2047] == n_) continue;
      int64_t sum = 0;
      for (int64_t& c : count) {
        const int64_t here = c;
        c = sum;
        sum += here;
      }
      for (int64_t j = 0; j < n_; j++) {
        const int64_t to = count[(k0[j] >> shift) & 2047]++;
        k1[to] = k0[j];
        o1[to] = o0[j];
      }
      std::swap(k0, k1);
      std::swap(o0, o1);
    }
    return o0;
  }

 private:
  static constexpr int64_t kRadixMin = 1024;
  int64_t n_;
  std::vector<uint32_t> keys_, order_;
  std::vector<uint64_t> pairs_;
};

// sort(x, xOffset, rows, n, descending, values, indices): stable per-row sort of float32 rows;
// indices is an Int32Array or BigInt64Array.
struct SortArgs {
  SpanArg x;
  int64_t rows, n;
  bool descending;
  Array values, indices;
};
const Signature<SortArgs> kSort{"sort", {
    arg::span("x", &SortArgs::x),
    arg::integer("rows", &SortArgs::rows),
    arg::integer("n", &SortArgs::n),
    arg::flag("descending", &SortArgs::descending),
    arg::array("values", &SortArgs::values),
    arg::array("indices", &SortArgs::indices),
}};

napi_value sort_rows(napi_env env, SortArgs& a) {
  const Array& x = a.x.data;
  const int64_t x_off = a.x.offset;
  const int64_t rows = dim(a.rows, "rows"), n = dim(a.n, "n");
  const bool descending = a.descending;
  const Array &values = a.values, &indices = a.indices;
  if (x.type != napi_float32_array || values.type != napi_float32_array) throw ArgError("x and values must be Float32Arrays");
  if (indices.type != napi_int32_array && indices.type != napi_bigint64_array)
    throw ArgError("indices must be an Int32Array or a BigInt64Array");
  need(x, x_off, count3(rows, n, 1), "x");
  need(values, 0, count3(rows, n, 1), "values");
  need(indices, 0, count3(rows, n, 1), "indices");
  const float* xs = x.f32() + x_off;
  float* vs = values.f32();
  const bool wide = indices.type == napi_bigint64_array;
  parallel_for(rows, std::max<int64_t>(1, 8192 / (n + 1)), [&](int64_t begin, int64_t end) {
    RowSorter sorter(n);
    std::vector<uint32_t> keys(n);
    for (int64_t r = begin; r < end; r++) {
      const float* xr = xs + r * n;
      // Descending is ascending on complemented keys; ties still keep position order.
      for (int64_t j = 0; j < n; j++) keys[j] = descending ? ~sort_key(xr[j]) : sort_key(xr[j]);
      const uint32_t* order = sorter.sort(keys.data());
      for (int64_t t = 0; t < n; t++) {
        const uint32_t j = order[t];
        vs[r * n + t] = xr[j];
        if (wide)
          static_cast<int64_t*>(indices.data)[r * n + t] = j;
        else
          indices.i32()[r * n + t] = static_cast<int32_t>(j);
      }
    }
  });
  return undefined(env);
}

}  // namespace

void register_indexing(napi_env env, napi_value exports) {
  export_kernel<kIndexSelect, index_select>(env, exports);
  export_kernel<kIndexAdd, index_add>(env, exports);
  export_kernel<kGather, gather>(env, exports);
  export_kernel<kScatterAdd, scatter_add>(env, exports);
  export_kernel<kSort, sort_rows>(env, exports);
}

}  // namespace glimpse
