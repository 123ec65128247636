// Parameter groups that exempt some parameters from weight decay.
import type { Module } from '../nn/module.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * The default rule for parameters that should not be decayed: anything with fewer than two
 * dimensions (biases, norm scales, class tokens), and anything whose dotted name has a part that
 * contains 'bias', 'norm' or 'embed', or starts with 'ln' (ln_1, ln_f, ln_post): biases,
 * layer/batch norms, and token and position embeddings.
 */
export function defaultNoDecay(name: string, p: Tensor): boolean {
  if (p.ndim < 2) return true;
  return name.toLowerCase().split('.').some((part) => /bias|norm|embed/.test(part) || part.startsWith('ln'));
}

export interface NoDecayOptions {
  weightDecay: number;
  /** True for parameters that get no weight decay; default defaultNoDecay. */
  skip?: (name: string, p: Tensor) => boolean;
}

/**
 * Two parameter groups over the model's trainable parameters: those to decay, with
 * `weightDecay`, and those `skip` exempts, with 0. Pass them to an optimizer.
 */
export function paramGroupsNoDecay(model: Module, opts: NoDecayOptions): [{ params: Tensor[]; weightDecay: number }, { params: Tensor[]; weightDecay: number }] {
  const skip = opts.skip ?? defaultNoDecay;
  const decay: Tensor[] = [];
  const noDecay: Tensor[] = [];
  for (const [name, p] of model.namedParameters()) {
    if (!p.requiresGrad) continue;
    (skip(name, p) ? noDecay : decay).push(p);
  }
  return [{ params: decay, weightDecay: opts.weightDecay }, { params: noDecay, weightDecay: 0 }];
}
