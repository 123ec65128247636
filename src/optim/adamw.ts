// AdamW (Loshchilov & Hutter): Adam with weight decay applied to the weights directly rather
// than through the gradient, as torch.optim.AdamW (amsgrad off, not maximizing).
import { adamwUpdate_ } from '../tensor/ops/optim.js';
import type { Tensor } from '../tensor/tensor.js';
import { type ParamGroup, type ParamGroupSpec, type ParamState, Optimizer } from './optimizer.js';

export interface AdamWHyper {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

export type AdamWOptions = Partial<AdamWHyper>;

/**
 * Per step t, with g the gradient:
 *   p <- p (1 - lr wd);  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g²
 *   p <- p - lr/(1 - b1^t) m / (sqrt(v)/sqrt(1 - b2^t) + eps)
 * Defaults as PyTorch: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 1e-2.
 */
export class AdamW extends Optimizer<AdamWHyper> {
  constructor(params: Iterable<Tensor> | Iterable<ParamGroupSpec<AdamWHyper>>, opts: AdamWOptions = {}) {
    super(params, {
      lr: opts.lr ?? 1e-3,
      betas: opts.betas ?? [0.9, 0.999],
      eps: opts.eps ?? 1e-8,
      weightDecay: opts.weightDecay ?? 1e-2,
    });
  }

  protected override validate(g: ParamGroup<AdamWHyper>): void {
    super.validate(g);
    const [b1, b2] = g.betas;
    if (!(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1)) throw new RangeError(`AdamW: betas must be in [0, 1), got [${g.betas}]`);
    if (!(g.eps >= 0)) throw new RangeError(`AdamW: eps must be >= 0, got ${g.eps}`);
    if (!(g.weightDecay >= 0)) throw new RangeError(`AdamW: weightDecay must be >= 0, got ${g.weightDecay}`);
  }

  protected update(p: Tensor, grad: Tensor, group: ParamGroup<AdamWHyper>, state: ParamState): void {
    const m = this.buffer(state, 'expAvg', p);
    const v = this.buffer(state, 'expAvgSq', p);
    const [beta1, beta2] = group.betas;
    adamwUpdate_(p, grad, m, v, {
      lr: group.lr,
      beta1,
      beta2,
      eps: group.eps,
      weightDecay: group.weightDecay,
      biasCorrection1: 1 - beta1 ** state.step,
      biasCorrection2: 1 - beta2 ** state.step,
    });
  }
}
