// Single-precision matrix multiply for the other kernel families (attention, ...).
//
//   C = alpha * op(A) op(B) + beta * C   with op(A): M x K, op(B): K x N, C: M x N, all row-major.
//
// op(X) is X, or X transposed when transX is set (then X is stored K x M resp. N x K). lda, ldb and
// ldc are the distances between consecutive stored rows. beta == 0 overwrites C without reading it,
// so C may start out holding garbage or NaNs.
//
// Threading: a call runs on the shared pool (parallel_for) when it is big enough (about 80^3
// multiply-adds). A call made from inside another parallel_for body runs serially on the calling
// thread, since nested regions are serial, so a kernel may parallelise over its own loop (e.g. over
// attention heads) and call sgemm inside it. Packing buffers belong to the calling thread (grown on
// demand, kept for the next call; std::bad_alloc if that fails), so concurrent calls are safe.
#pragma once
#include <cstdint>
#include <functional>

namespace glimpse {

void sgemm(bool transA, bool transB, int64_t M, int64_t N, int64_t K, float alpha,
           const float* A, int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc);

// batch independent products; problem p uses A + p * strideA, B + p * strideB, C + p * strideC.
// A stride of 0 shares that operand across the batch. Small problems run in parallel over the batch.
void sgemm_batched(bool transA, bool transB, int64_t batch, int64_t M, int64_t N, int64_t K, float alpha,
                   const float* A, int64_t lda, int64_t strideA, const float* B, int64_t ldb, int64_t strideB,
                   float beta, float* C, int64_t ldc, int64_t strideC);

// The general form both of the above reduce to: element (i, k) of op(A) is A[i * rsA + k * csA],
// element (k, j) of op(B) is B[k * rsB + j * csB], element (i, j) of C is C[i * rsC + j * csC].
// Any strides work (0 included, for broadcast inputs); unit strides take the fast packing paths.
void sgemm_strided(int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t rsA, int64_t csA,
                   const float* B, int64_t rsB, int64_t csB, float beta, float* C, int64_t rsC, int64_t csC);

// What sgemm_epilogue applies to C: called once for each block of C as soon as the block's values
// are final (still in cache): c points at C(row0, col0), a block of rows x cols, rows ldc apart.
// The blocks are disjoint and cover C; calls run concurrently on the pool's threads.
using GemmEpilogue =
    std::function<void(float* c, int64_t ldc, int64_t row0, int64_t rows, int64_t col0, int64_t cols)>;

// C = A B with A and B read as sgemm_strided reads them (alpha 1, beta 0) and C dense row-major
// (ldc apart), then the epilogue over C block by block (e.g. a linear layer's bias and activation,
// without another pass over C from memory). Every path of sgemm_strided keeps its arithmetic, so C
// before the epilogue is bit for bit what sgemm_strided writes.
void sgemm_epilogue(int64_t M, int64_t N, int64_t K, const float* A, int64_t rsA, int64_t csA, const float* B,
                    int64_t rsB, int64_t csB, float* C, int64_t ldc, const GemmEpilogue& epilogue);

}  // namespace glimpse
