// Matrix multiplication with NumPy/PyTorch semantics: batch axes broadcast, 1-d operands are
// promoted to a row or a column and the added axis removed again.
import type { View } from '../backend.js';
import { numel } from '../backend.js';
import { noGrad, record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import { broadcastView } from './elementwise.js';
import { broadcastShapes, reshape, sumTo, unsqueeze, squeeze } from './view.js';

/**
 * Folds the batch axes of a view into one, when their strides allow it without a copy
 * (broadcast axes have stride 0 and fold with each other); null otherwise.
 */
function foldBatch(v: View): View | null {
  const nb = v.shape.length - 2;
  const axes = [...Array(nb).keys()].filter((i) => v.shape[i] !== 1);
  for (let k = 0; k + 1 < axes.length; k++) {
    const i = axes[k]!;
    const j = axes[k + 1]!;
    if (v.strides[i] !== v.strides[j]! * v.shape[j]!) return null;
  }
  const batch = numel(v.shape.slice(0, nb));
  const stride = axes.length > 0 ? v.strides[axes[axes.length - 1]!]! : 0;
  return {
    storage: v.storage,
    offset: v.offset,
    shape: [batch, v.shape[nb]!, v.shape[nb + 1]!],
    strides: [stride, v.strides[nb]!, v.strides[nb + 1]!],
  };
}

function dense3d(t: Tensor, shape: readonly number[]): View {
  const v = broadcastView(t, shape, 'matmul');
  return foldBatch(v) ?? foldBatch(broadcastView(noGrad(() => t.expand(shape).contiguous()), shape, 'matmul'))!;
}

export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.ndim === 0 || b.ndim === 0) throw new Error(`matmul: operands must be at least 1-d, got [${a.shape}] and [${b.shape}]`);
  if (a.ndim === 1) return squeeze(matmul(unsqueeze(a, 0), b), -2);
  if (b.ndim === 1) return squeeze(matmul(a, unsqueeze(b, 1)), -1);
  if (a.backend !== b.backend) throw new Error(`matmul: operands are on different backends (${a.backend.name}, ${b.backend.name})`);
  if (a.dtype !== b.dtype) throw new Error(`matmul: dtypes differ (${a.dtype} and ${b.dtype})`);
  const [M, K] = a.shape.slice(-2) as [number, number];
  const [K2, N] = b.shape.slice(-2) as [number, number];
  if (K !== K2) throw new Error(`matmul: shapes [${a.shape}] and [${b.shape}] cannot be multiplied (${K} != ${K2})`);
  // A stack of rows times one matrix is a single large product: fold a's batch into its rows.
  if (b.ndim === 2 && a.ndim > 2) {
    const rows = reshape(a, [-1, K]);
    return reshape(matmul(rows, b), [...a.shape.slice(0, -1), N]);
  }
  const batch = broadcastShapes('matmul', a.shape.slice(0, -2), b.shape.slice(0, -2));
  const outShape = [...batch, M, N];
  const out = new Tensor(a.backend.empty(a.dtype, numel(outShape)), outShape);
  a.backend.matmul(dense3d(a, [...batch, M, K]), dense3d(b, [...batch, K, N]), out.storage);
  return record('matmul', [a, b], out, (g) => [
    a.requiresGrad ? sumTo(matmul(g, b.transpose(-2, -1)), a.shape) : null,
    b.requiresGrad ? sumTo(matmul(a.transpose(-2, -1), g), b.shape) : null,
  ]);
}
