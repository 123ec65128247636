// Training losses: CLIP's symmetric InfoNCE, SigLIP's pairwise sigmoid loss (computed one chunk of
// texts at a time, as open_clip exchanges text chunks between devices), CatLIP's multi-label
// binary cross-entropy over a caption vocabulary, plain cross-entropy for classification, and
// OadTR's soft-label cross-entropy with an ignored (ambiguous) class.
//
// The contrastive losses take L2-normalised features and the model's learnable parameters as
// they are stored: `logitScale` is the log of the inverse temperature (exp is taken here) and
// `logitBias` SigLIP's additive bias. Gradients flow into all of them.
import { noGrad } from '../tensor/autograd.js';
import { indexSelect } from '../tensor/ops/indexing.js';
import { binaryCrossEntropyWithLogits, crossEntropy, type Reduction } from '../tensor/ops/nn.js';
import { logSoftmax } from '../tensor/ops/reduce.js';
import { arange, type Tensor, type TensorLike, tensor } from '../tensor/tensor.js';

/** open_clip clamps logit_scale into [0, ln 100]: the inverse temperature stays in [1, 100]. */
export const LOGIT_SCALE_MAX = Math.log(100);

/** SigLIP's initial parameters (the paper's t' = log 10, b = -10). */
export const SIGLIP_INIT = { logitScale: Math.log(10), logitBias: -10 } as const;

function checkPairs(what: string, imageFeatures: Tensor, textFeatures: Tensor): number {
  const [n, d] = imageFeatures.shape;
  if (imageFeatures.ndim !== 2 || textFeatures.ndim !== 2) {
    throw new Error(`${what}: features must be [N, D], got images [${imageFeatures.shape}] and texts [${textFeatures.shape}]`);
  }
  if (textFeatures.shape[0] !== n || textFeatures.shape[1] !== d) {
    throw new Error(`${what}: image features [${imageFeatures.shape}] and text features [${textFeatures.shape}] must pair up (same N and D)`);
  }
  if (n === 0) throw new Error(`${what}: an empty batch`);
  return n!;
}

function checkNegatives(imageFeatures: Tensor, textFeatures: Tensor): number {
  if (imageFeatures.ndim !== 2 || textFeatures.ndim !== 2 || imageFeatures.shape[1] !== textFeatures.shape[1]) {
    throw new Error(`SigLIP loss: features must be [N, D] and [M, D], got images [${imageFeatures.shape}] and texts [${textFeatures.shape}]`);
  }
  if (imageFeatures.shape[0] === 0) throw new Error('SigLIP loss: an empty batch');
  return imageFeatures.shape[0]!;
}

const expScale = (logitScale: TensorLike): TensorLike => (typeof logitScale === 'number' ? Math.exp(logitScale) : logitScale.exp());

/** exp(logitScale) * a @ b^T: the logits of every row of `a` against every row of `b`. */
export function contrastiveLogits(a: Tensor, b: Tensor, logitScale: TensorLike): Tensor {
  return a.matmul(b.transpose(0, 1)).mul(expScale(logitScale));
}

/**
 * InfoNCE of logits [B, M] whose row i matches column labelOffset + i: the mean over rows of the
 * softmax cross-entropy. One direction of CLIP's loss; a rank of a data-parallel job passes its
 * own rows against every rank's columns, its rows starting at labelOffset.
 */
export function infoNceLoss(logits: Tensor, labelOffset = 0): Tensor {
  const [b, m] = logits.shape;
  if (logits.ndim !== 2) throw new Error(`InfoNCE: logits must be [B, M], got [${logits.shape}]`);
  if (!Number.isInteger(labelOffset) || labelOffset < 0 || labelOffset + b! > m!) {
    throw new Error(`InfoNCE: rows ${labelOffset}..${labelOffset + b!} match columns that logits [${logits.shape}] do not have`);
  }
  const labels = arange(labelOffset, labelOffset + b!, 1, { dtype: 'int32', backend: logits.backend });
  return crossEntropy(logits, labels);
}

/**
 * CLIP's contrastive loss (open_clip's ClipLoss on one device): logits = exp(logitScale) *
 * img @ txt^T, and the mean of the cross-entropy over rows (image -> text) and over columns
 * (text -> image), image i matching text i.
 */
export function clipContrastiveLoss(imageFeatures: Tensor, textFeatures: Tensor, logitScale: TensorLike): Tensor {
  checkPairs('CLIP loss', imageFeatures, textFeatures);
  return clipLoss(contrastiveLogits(imageFeatures, textFeatures, logitScale));
}

/** The contrastive loss of square logits [N, N] (pair i matches i), for the loss registry. */
export function clipLoss(logits: Tensor): Tensor {
  const [n, m] = logits.shape;
  if (logits.ndim !== 2 || n !== m) throw new Error(`CLIP loss: needs as many texts as images (square logits [N, N], pair i matches i), got [${logits.shape}]`);
  return infoNceLoss(logits).add(infoNceLoss(logits.transpose(0, 1))).mul(0.5);
}

export interface SigmoidLossOptions {
  /**
   * Texts per chunk (default 256). Each chunk's logits [N, chunk] are made, reduced and
   * released before the next, so memory grows with N * chunk, never N * N.
   */
  chunkSize?: number;
}

// -1 on the diagonal, +1 elsewhere: softplus(minusLabels * x) = -log sigmoid(labels * x). Kept
// for the few sizes a run uses (the chunk, the last chunk, the registry's batch); no gradient.
const minusLabelCache = new Map<string, Tensor>();
const MINUS_LABEL_CACHE_SIZE = 8;
function minusLabels(k: number, like: Tensor): Tensor {
  const key = `${k}/${like.dtype}/${like.backend.name}`;
  let t = minusLabelCache.get(key);
  if (!t) {
    const data = new Float32Array(k * k).fill(1);
    for (let i = 0; i < k; i++) data[i * k + i] = -1;
    t = tensor(data, { shape: [k, k], dtype: like.dtype, backend: like.backend });
    if (minusLabelCache.size >= MINUS_LABEL_CACHE_SIZE) minusLabelCache.delete(minusLabelCache.keys().next().value!);
    minusLabelCache.set(key, t);
  }
  return t;
}

export interface SigmoidSumOptions extends SigmoidLossOptions {
  /**
   * Whether `texts` are the images' own texts (text i pairs with image i: the positives on the
   * diagonal) rather than texts of other samples (negatives only). Default true.
   */
  positives?: boolean;
}

/**
 * The sum, not yet divided by the batch, of SigLIP's -log sigmoid(z * logit) over every image
 * against every text, logits = exp(logitScale) * img @ txt^T + logitBias, z = +1 for a matching
 * pair and -1 otherwise. With `positives`, texts [N, D] are the images' own (N images, N texts);
 * without, texts [M, D] belong to other samples and every pair is a negative.
 *
 * Texts go in chunks as open_clip passes them between devices: a chunk's rows of matching
 * images (its "own" block) carry the diagonal of positives, every other row is all negatives,
 * so no label matrix larger than chunk x chunk is ever built.
 */
export function sigmoidLossSum(imageFeatures: Tensor, textFeatures: Tensor, logitScale: TensorLike, logitBias: TensorLike,
  options: SigmoidSumOptions = {}): Tensor {
  const positives = options.positives ?? true;
  const n = positives ? checkPairs('SigLIP loss', imageFeatures, textFeatures) : checkNegatives(imageFeatures, textFeatures);
  const m = textFeatures.shape[0]!;
  const chunk = options.chunkSize ?? 256;
  if (!Number.isInteger(chunk) || chunk < 1) throw new Error(`SigLIP loss: chunkSize must be a positive integer, got ${chunk}`);
  const scale = expScale(logitScale);
  const textsT = textFeatures.transpose(0, 1);
  let total: Tensor | null = null;
  for (let start = 0; start < m; start += chunk) {
    const end = Math.min(m, start + chunk);
    const logits = imageFeatures.matmul(textsT.slice(1, start, end)).mul(scale).add(logitBias);
    let part: Tensor;
    if (positives) {
      // Own block: images start..end against their own texts.
      part = logits.slice(0, start, end).mul(minusLabels(end - start, logits)).softplus().sum();
      // Every other image against this chunk: negatives only, -log sigmoid(-x) = softplus(x).
      if (start > 0) part = part.add(logits.slice(0, 0, start).softplus().sum());
      if (end < n) part = part.add(logits.slice(0, end, n).softplus().sum());
    } else {
      part = logits.softplus().sum();
    }
    total = total ? total.add(part) : part;
  }
  return total!;
}

/**
 * SigLIP's pairwise sigmoid loss (open_clip's SigLipLoss): logits = exp(logitScale) *
 * img @ txt^T + logitBias, -log sigmoid(z * logit) summed over all pairs (z = +1 for the N
 * matching pairs, -1 for the others) and divided by N. Computed in text chunks
 * (sigmoidLossSum); the value equals the unchunked loss up to the order of the sums.
 */
export function siglipSigmoidLoss(imageFeatures: Tensor, textFeatures: Tensor, logitScale: TensorLike, logitBias: TensorLike,
  options: SigmoidLossOptions = {}): Tensor {
  return sigmoidLossSum(imageFeatures, textFeatures, logitScale, logitBias, { chunkSize: options.chunkSize, positives: true })
    .div(imageFeatures.shape[0]!);
}

/** The sigmoid loss of square logits [N, N] (bias already added; pair i matches i), for the loss registry. */
export function siglipLoss(logits: Tensor): Tensor {
  const [n, m] = logits.shape;
  if (logits.ndim !== 2 || n !== m) throw new Error(`SigLIP loss: needs as many texts as images (square logits [N, N], pair i matches i), got [${logits.shape}]`);
  return logits.mul(minusLabels(n!, logits)).softplus().sum().div(n!);
}

/**
 * Clamps a logit-scale parameter into [0, ln 100] in place, without recording a gradient, as
 * open_clip does after every optimizer step (train.py: `logit_scale.clamp_(0, math.log(100))`),
 * so the inverse temperature exp(logitScale) never exceeds 100. The trainer calls it right after
 * `optimizer.step()` for CLIP and SigLIP models (SigLIP's bias is not clamped).
 */
export function clampLogitScale(param: Tensor, max: number = LOGIT_SCALE_MAX): void {
  if (!(max >= 0)) throw new Error(`clampLogitScale: max must be >= 0, got ${max}`);
  noGrad(() => {
    param.copy_(param.clamp(0, max), 'clampLogitScale');
  });
}

export interface ClassificationLossOptions {
  /** Weight moved from the target class onto a uniform distribution (torch's label_smoothing). */
  labelSmoothing?: number;
  reduction?: Reduction;
}

/** Cross-entropy of logits [N, C] against class ids [N], optionally with label smoothing. */
export function classificationLoss(logits: Tensor, labels: Tensor, options: ClassificationLossOptions = {}): Tensor {
  return crossEntropy(logits, labels, { labelSmoothing: options.labelSmoothing, reduction: options.reduction });
}

export interface MultiLabelLossOptions {
  /**
   * 'batch-mean' (default): summed over the vocabulary, averaged over the batch, so a large
   * vocabulary does not shrink the gradient; 'mean': over every element, as torch's default;
   * 'sum'; 'none'.
   */
  reduction?: 'batch-mean' | Reduction;
}

/**
 * CatLIP's loss: binary cross-entropy with logits of an image classifier head [B, V] against
 * multi-hot caption targets [B, V] (from CaptionVocab.multiHot).
 */
export function catlipLoss(logits: Tensor, targets: Tensor, options: MultiLabelLossOptions = {}): Tensor {
  if (logits.ndim !== 2) throw new Error(`CatLIP loss: logits must be [B, V], got [${logits.shape}]`);
  const reduction = options.reduction ?? 'batch-mean';
  if (reduction !== 'batch-mean') return binaryCrossEntropyWithLogits(logits, targets, { reduction });
  return binaryCrossEntropyWithLogits(logits, targets, { reduction: 'sum' }).div(logits.shape[0]!);
}

export interface SoftLabelLossOptions {
  /** A class whose column is left out and whose samples (target 1 there) are dropped; null: none. */
  ignoreClass?: number | null;
}

/**
 * OadTR's classification loss (its SetCriterion.loss_labels): the cross-entropy of logits [N, C]
 * against soft targets [N, C], -sum_c t_c log softmax(x)_c, averaged over the samples. With an
 * ignored class, its column is removed from both before the softmax, and samples whose target
 * for it is exactly 1 are left out of the mean. As the official code, when no sample has any
 * target mass on the other classes the loss is 0; so is it (where torch would give NaN) when
 * every sample is dropped.
 */
export function softLabelCrossEntropy(logits: Tensor, target: Tensor, options: SoftLabelLossOptions = {}): Tensor {
  if (logits.ndim !== 2) throw new Error(`soft-label cross-entropy: logits must be [N, C], got [${logits.shape}]`);
  const [n, c] = logits.shape as [number, number];
  if (target.ndim !== 2 || target.shape[0] !== n || target.shape[1] !== c) {
    throw new Error(`soft-label cross-entropy: targets must match logits [${n}, ${c}], got [${target.shape}]`);
  }
  if (n === 0) throw new Error('soft-label cross-entropy: an empty batch');
  const ignore = options.ignoreClass ?? null;
  if (ignore === null) return logSoftmax(logits, 1).mul(target).sum(1).neg().mean();
  if (!Number.isInteger(ignore) || ignore < 0 || ignore >= c) {
    throw new RangeError(`soft-label cross-entropy: ignoreClass ${ignore} is not one of the ${c} classes`);
  }
  const others = tensor(Int32Array.from({ length: c - 1 }, (_, i) => (i < ignore ? i : i + 1)), { shape: [c - 1], dtype: 'int32', backend: logits.backend });
  const perSample = logSoftmax(indexSelect(logits, 1, others), 1).mul(indexSelect(target, 1, others)).sum(1).neg();
  const ignored = target.detach().data();
  const kept: number[] = [];
  for (let i = 0; i < n; i++) if (Number(ignored[i * c + ignore]) !== 1) kept.push(i);
  if (kept.length === 0 || perSample.detach().sum().item() === 0) return logits.sum().mul(0);
  if (kept.length === n) return perSample.mean();
  return indexSelect(perSample, 0, tensor(Int32Array.from(kept), { shape: [kept.length], dtype: 'int32', backend: logits.backend })).mean();
}

/** A loss as the registry (src/models/registry.ts, kind 'loss') holds it. */
export interface LossTableEntry {
  readonly name: string;
  readonly aliases: readonly string[];
  readonly description: string;
  /** What the trainer feeds it: paired features, class ids, or caption tags. */
  readonly input: 'image-text pairs' | 'class labels' | 'caption tags';
  /** The loss of logits (and targets, for the losses that take them), the registry's form. */
  readonly fn: (logits: Tensor, target?: Tensor) => Tensor;
}

const needTarget = (name: string, target: Tensor | undefined): Tensor => {
  if (!target) throw new Error(`loss '${name}': needs a target`);
  return target;
};

/**
 * The training losses by name, for the registry (registerLoss with replace: true: clip and
 * siglip keep their names and aliases, ce and bce theirs).
 */
export const LOSSES: readonly LossTableEntry[] = [
  {
    name: 'clip', aliases: ['infonce', 'contrastive'], input: 'image-text pairs',
    description: "CLIP's symmetric InfoNCE: softmax cross-entropy over images and over texts, learnable temperature (clamped to <= 100)",
    fn: (l) => clipLoss(l),
  },
  {
    name: 'siglip', aliases: ['sigmoid'], input: 'image-text pairs',
    description: "SigLIP's pairwise sigmoid loss with learnable scale (init log 10) and bias (init -10), computed in text chunks",
    fn: (l) => siglipLoss(l),
  },
  {
    name: 'catlip', aliases: ['multi-label', 'caption-tags'], input: 'caption tags',
    description: "CatLIP: binary cross-entropy of an image classifier over the caption vocabulary's multi-hot targets",
    fn: (l, t) => catlipLoss(l, needTarget('catlip', t)),
  },
  {
    name: 'ce', aliases: ['cross-entropy', 'cross_entropy'], input: 'class labels',
    description: 'cross-entropy of logits [N, C] against class ids [N] (label smoothing an option)',
    fn: (l, t) => classificationLoss(l, needTarget('ce', t)),
  },
];
