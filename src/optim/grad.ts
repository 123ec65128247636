// Gradient utilities: global-norm clipping and gradient accumulation over micro-batches.
import { noGrad } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';

export interface ClipGradNormOptions {
  /** Throw when the total norm is NaN or infinite (default false: return it, change nothing). */
  errorIfNonfinite?: boolean;
}

/**
 * Scales the gradients of `params` in place so their global L2 norm (over all of them together)
 * is at most maxNorm, as torch.nn.utils.clip_grad_norm_: when the norm exceeds maxNorm every
 * gradient is multiplied by maxNorm / (norm + 1e-6). Returns the norm before clipping.
 * Parameters without a gradient are skipped.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, opts: ClipGradNormOptions = {}): number {
  if (!(maxNorm >= 0)) throw new RangeError(`clipGradNorm: maxNorm must be >= 0, got ${maxNorm}`);
  const grads = [...params].flatMap((p) => (p.grad ? [p.grad] : []));
  return noGrad(() => {
    let sumSq = 0;
    for (const g of grads) sumSq += g.square().sum().item();
    const total = Math.sqrt(sumSq);
    if (!Number.isFinite(total)) {
      if (opts.errorIfNonfinite) throw new Error(`clipGradNorm: the total gradient norm is ${total}`);
      return total;
    }
    const coef = maxNorm / (total + 1e-6);
    if (coef < 1) {
      for (const g of grads) g.copy_(g.mul(coef), 'clipGradNorm');
    }
    return total;
  });
}

/**
 * Gradient accumulation. backward() adds into .grad, so k micro-batches can stand in for one
 * large batch: each micro-batch's mean loss is weighted by its share of the examples before
 * its backward, which makes the accumulated gradients equal to those of one backward on the
 * mean loss of the whole batch. Then call optimizer.step() and optimizer.zeroGrad() as usual:
 *
 *   const loss = accumulateGradients(chunks, (c) => crossEntropy(model.forward(c.x), c.y), (c) => c.y.shape[0]);
 *   clipGradNorm(model.parameters(), 1);
 *   opt.step();
 *   opt.zeroGrad();
 *
 * `lossOf` must return the mean loss over the micro-batch's sizeOf(batch) items (default: every
 * micro-batch counts the same, right for equal sizes). Returns the whole batch's mean loss.
 * Exact only for losses that are means of per-item terms: a loss coupling a batch's items (CLIP's
 * and SigLIP's, whose negatives are the other items) changes when the batch is cut; the trainer's
 * clip and siglip tasks accumulate their own way.
 */
export interface AccumulateOptions {
  /**
   * Runs each micro-batch's loss and backward but the last (data-parallel training's no_sync:
   * gradients accumulate locally and are synchronised in the last backward only).
   */
  noSync?: <T>(fn: () => T) => T;
}

export function accumulateGradients<B>(microBatches: readonly B[], lossOf: (batch: B) => Tensor, sizeOf?: (batch: B) => number,
  options: AccumulateOptions = {}): number {
  if (microBatches.length === 0) throw new Error('accumulateGradients: no micro-batches');
  const sizes = microBatches.map((b) => (sizeOf ? sizeOf(b) : 1));
  const total = sizes.reduce((a, b) => a + b, 0);
  if (!(total > 0) || sizes.some((s) => !(s >= 0))) throw new Error(`accumulateGradients: invalid micro-batch sizes [${sizes}]`);
  let mean = 0;
  microBatches.forEach((b, i) => {
    const pass = () => {
      const loss = lossOf(b);
      if (loss.size !== 1) throw new Error(`accumulateGradients: the loss must be a scalar, got [${loss.shape}]`);
      const w = sizes[i]! / total;
      loss.mul(w).backward();
      mean += w * loss.detach().item();
    };
    if (i < microBatches.length - 1 && options.noSync) options.noSync(pass);
    else pass();
  });
  return mean;
}
