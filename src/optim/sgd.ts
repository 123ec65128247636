// Stochastic gradient descent with momentum, dampening, Nesterov momentum and (coupled) weight
// decay, as torch.optim.SGD.
import { sgdUpdate_ } from '../tensor/ops/optim.js';
import type { Tensor } from '../tensor/tensor.js';
import { type ParamGroup, type ParamGroupSpec, type ParamState, Optimizer } from './optimizer.js';

export interface SGDHyper {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
}

export type SGDOptions = Partial<SGDHyper>;

/**
 * Per step, with g the gradient: d = g + wd p; with momentum, buf = d on the first step and
 * momentum buf + (1 - dampening) d after, and d = d + momentum buf (Nesterov) or buf; then
 * p <- p - lr d. Defaults as PyTorch: lr 1e-3, no momentum, no decay.
 */
export class SGD extends Optimizer<SGDHyper> {
  constructor(params: Iterable<Tensor> | Iterable<ParamGroupSpec<SGDHyper>>, opts: SGDOptions = {}) {
    super(params, {
      lr: opts.lr ?? 1e-3,
      momentum: opts.momentum ?? 0,
      dampening: opts.dampening ?? 0,
      weightDecay: opts.weightDecay ?? 0,
      nesterov: opts.nesterov ?? false,
    });
  }

  protected override validate(g: ParamGroup<SGDHyper>): void {
    super.validate(g);
    if (!(g.momentum >= 0)) throw new RangeError(`SGD: momentum must be >= 0, got ${g.momentum}`);
    if (!(g.weightDecay >= 0)) throw new RangeError(`SGD: weightDecay must be >= 0, got ${g.weightDecay}`);
    if (g.nesterov && (g.momentum <= 0 || g.dampening !== 0)) throw new Error('SGD: Nesterov momentum needs momentum > 0 and dampening 0');
  }

  protected update(p: Tensor, grad: Tensor, group: ParamGroup<SGDHyper>, state: ParamState): void {
    let buf: Tensor | null = null;
    let firstStep = false;
    if (group.momentum !== 0) {
      firstStep = !state.buffers.momentumBuffer;
      buf = this.buffer(state, 'momentumBuffer', p);
    }
    sgdUpdate_(p, grad, buf, {
      lr: group.lr,
      momentum: group.momentum,
      dampening: group.dampening,
      weightDecay: group.weightDecay,
      nesterov: group.nesterov,
      firstStep,
    });
  }
}
