// The optimizers' fused update kernels as in-place tensor ops: each updates a dense parameter
// and its state buffers from a dense gradient of the same dtype and backend, outside autograd.
import type { AdamWStep, SgdStep } from '../backend.js';
import type { Tensor } from '../tensor.js';

function checkDense(op: string, p: Tensor, ...others: Tensor[]): void {
  for (const t of [p, ...others]) {
    if (t.backend !== p.backend || t.dtype !== p.dtype || t.size !== p.size || t.offset !== 0 || !t.isContiguous() || t.storage.length !== p.size) {
      throw new Error(`${op}: parameter, gradient and state must be dense ${p.dtype} tensors of ${p.size} elements on one backend`);
    }
  }
}

/** One AdamW update of p (moments m and v updated too). */
export function adamwUpdate_(p: Tensor, grad: Tensor, m: Tensor, v: Tensor, hp: AdamWStep): void {
  checkDense('adamwUpdate_', p, grad, m, v);
  p.backend.adamw(p.storage, grad.storage, m.storage, v.storage, hp);
}

/** One SGD update of p (and of its momentum buffer, when momentum is on). */
export function sgdUpdate_(p: Tensor, grad: Tensor, momentumBuf: Tensor | null, hp: SgdStep): void {
  checkDense('sgdUpdate_', p, grad, ...(momentumBuf ? [momentumBuf] : []));
  p.backend.sgd(p.storage, grad.storage, momentumBuf?.storage ?? null, hp);
}
