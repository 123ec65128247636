// Parameter groups: exemption from weight decay, and layer-wise learning-rate decay.
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

export interface LayerDecayOptions {
  weightDecay: number;
  /** Each layer's lr is this factor times the next one's (BEiT/MAE use 0.65-0.75); in (0, 1]. */
  layerDecay: number;
  /** The lr of the last id (numLayers + 1: the final norm and the head). */
  baseLr: number;
  /** Transformer blocks L: ids run from 0 (embeddings) to L + 1 (after the blocks). */
  numLayers: number;
  /** A parameter's dotted name -> its layer id (e.g. vitLayerOf). */
  layerOf: (name: string) => number;
  /** True for parameters that get no weight decay; default defaultNoDecay. */
  skip?: (name: string, p: Tensor) => boolean;
}

/** A layer-wise group: its parameters share a layer id and whether they are decayed. */
export interface LayerDecayGroup {
  params: Tensor[];
  weightDecay: number;
  /** baseLr * layerDecay^(numLayers + 1 - layerId); schedulers scale it from here. */
  lr: number;
  layerId: number;
}

/**
 * Layer-wise learning-rate decay for fine-tuning a pre-trained transformer (BEiT, MAE): layers
 * near the input, which pre-training made most general, move least. Every trainable parameter
 * lands in one group per (layer id, decayed or not), in that order; empty groups are left out.
 * Pass them to an optimizer: an LRScheduler keeps each group's lr as its base and scales it.
 */
export function paramGroupsLayerDecay(model: Module, opts: LayerDecayOptions): LayerDecayGroup[] {
  const { numLayers: L, layerDecay, baseLr } = opts;
  if (!Number.isInteger(L) || L < 0) throw new RangeError(`paramGroupsLayerDecay: numLayers must be a non-negative integer, got ${L}`);
  if (!(layerDecay > 0 && layerDecay <= 1)) throw new RangeError(`paramGroupsLayerDecay: layerDecay must be in (0, 1], got ${layerDecay}`);
  if (!(baseLr >= 0)) throw new RangeError(`paramGroupsLayerDecay: baseLr must be >= 0, got ${baseLr}`);
  if (!(opts.weightDecay >= 0)) throw new RangeError(`paramGroupsLayerDecay: weightDecay must be >= 0, got ${opts.weightDecay}`);
  const skip = opts.skip ?? defaultNoDecay;
  // Index 2 * id + (0 decayed, 1 not), so groups come out ordered by layer.
  const slots: Tensor[][] = Array.from({ length: 2 * (L + 2) }, () => []);
  for (const [name, p] of model.namedParameters()) {
    if (!p.requiresGrad) continue;
    const id = opts.layerOf(name);
    if (!Number.isInteger(id) || id < 0 || id > L + 1) {
      throw new RangeError(`paramGroupsLayerDecay: layerOf('${name}') is ${id}; layer ids run from 0 to numLayers + 1 = ${L + 1}`);
    }
    slots[2 * id + (skip(name, p) ? 1 : 0)]!.push(p);
  }
  const groups: LayerDecayGroup[] = [];
  slots.forEach((params, i) => {
    if (params.length === 0) return;
    const layerId = i >> 1;
    groups.push({ params, weightDecay: i % 2 === 0 ? opts.weightDecay : 0, lr: baseLr * layerDecay ** (L + 1 - layerId), layerId });
  });
  return groups;
}

/**
 * Layer ids of a ViT's parameter names under `prefix` ('vit.' for ViTForImageClassification and
 * MAE pre-training, '' for a bare ViTModel): embeddings (CLS token, positions, patch projection)
 * 0, block i of encoder.layers i + 1, everything else (final norm, pooler, head) numLayers + 1.
 */
export function vitLayerOf(numLayers: number, prefix = 'vit.'): (name: string) => number {
  if (!Number.isInteger(numLayers) || numLayers < 0) throw new RangeError(`vitLayerOf: numLayers must be a non-negative integer, got ${numLayers}`);
  const block = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}encoder\\.layers\\.(\\d+)\\.`);
  return (name) => {
    if (name.startsWith(`${prefix}embeddings.`)) return 0;
    const m = block.exec(name);
    if (!m) return numLayers + 1;
    const i = Number(m[1]);
    if (i >= numLayers) throw new RangeError(`vitLayerOf: '${name}' is in block ${i}, but the model was said to have ${numLayers} blocks`);
    return i + 1;
  };
}
