// Neural-network ops: linear, layer norm, fused attention, patch convolution, dropout and the
// losses. Fused kernels carry their own backward; the rest are compositions whose gradients
// come from the ops they are made of.
import type { ActivationOp, View } from '../backend.js';
import { numel } from '../backend.js';
import { isGradEnabled, noGrad, record } from '../autograd.js';
import { isFloat } from '../dtype.js';
import { type Generator, bernoulli, getDefaultGenerator } from '../random.js';
import { Tensor } from '../tensor.js';
import { cast, erf, gelu, quickGelu, relu, sigmoid, softplus, tanh, where } from './elementwise.js';
import { gather } from './indexing.js';
import { logSoftmax } from './reduce.js';
import { matmul } from './linalg.js';
import { permute, reshape, sumTo } from './view.js';

/** What linear may apply after its bias: an ActivationOp, or 'gelu' for 'gelu_erf' (exact GELU). */
export type LinearActivation = ActivationOp | 'gelu';

const ACTIVATION_FNS: Record<ActivationOp, (x: Tensor) => Tensor> = {
  relu, gelu_erf: (x) => gelu(x), gelu_tanh: (x) => gelu(x, 'tanh'), quick_gelu: quickGelu, sigmoid, tanh, erf, softplus,
};

/**
 * act(x @ weight^T + bias), with weight [out, in] as PyTorch stores it; act is optional. With a
 * bias [out], the product, the bias and the activation are one kernel (Backend.linear).
 */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null, activation?: LinearActivation | null): Tensor {
  if (weight.ndim !== 2 || x.ndim === 0 || x.shape[x.ndim - 1] !== weight.shape[1]) {
    throw new Error(`linear: input [${x.shape}] does not fit weight [${weight.shape}] (expected last axis ${weight.shape[1]})`);
  }
  const act = activation === 'gelu' ? 'gelu_erf' : activation ?? null;
  if (act !== null && !Object.hasOwn(ACTIVATION_FNS, act)) throw new Error(`linear: unknown activation '${activation}'`);
  const [n, k] = weight.shape as [number, number];
  const fused = bias && bias.ndim === 1 && bias.shape[0] === n && bias.dtype === x.dtype && bias.dtype === weight.dtype &&
    bias.backend === x.backend && weight.backend === x.backend;
  if (!fused) {
    const y = matmul(x, weight.transpose(0, 1));
    const z = bias ? y.add(bias) : y;
    return act ? ACTIVATION_FNS[act](z) : z;
  }
  const lead = x.shape.slice(0, -1);
  const y = fusedLinear(reshape(x, [numel(lead), k]), weight, bias, act);
  return reshape(y, [...lead, n]);
}

/**
 * act(x @ weight^T + bias) for x [rows, k], one kernel forward and one node on the tape. The
 * backward needs the pre-activation, which the kernel writes only when a gradient is recorded.
 */
function fusedLinear(x: Tensor, weight: Tensor, bias: Tensor, act: ActivationOp | null): Tensor {
  const rows = x.shape[0]!;
  const n = weight.shape[0]!;
  const b = x.backend;
  const bv = noGrad(() => bias.contiguous());
  const keepPre = act !== null && isGradEnabled() && (x.requiresGrad || weight.requiresGrad || bias.requiresGrad);
  const pre = keepPre ? new Tensor(b.empty(x.dtype, rows * n), [rows, n]) : null;
  const out = new Tensor(b.empty(x.dtype, rows * n), [rows, n]);
  b.linear(x.view('linear'), weight.view('linear'), bv.view('linear'), act, pre && pre.storage, out.storage);
  return record('linear', [x, weight, bias], out, (g) => {
    let gPre = g;
    if (act) {
      gPre = new Tensor(b.empty(g.dtype, g.size), g.shape);
      b.unaryGrad(act, pre!.view(), g.view(), gPre.storage);
    }
    return [
      x.requiresGrad ? matmul(gPre, weight) : null,
      weight.requiresGrad ? matmul(gPre.transpose(0, 1), x) : null,
      bias.requiresGrad ? sumTo(gPre, bias.shape) : null,
    ];
  });
}

function checkLayerNormArgs(op: string, x: Tensor, weight: Tensor | null, bias: Tensor | null): void {
  const n = x.shape[x.ndim - 1]!;
  for (const [name, p] of [['weight', weight], ['bias', bias]] as const) {
    if (p && (p.ndim !== 1 || p.shape[0] !== n)) throw new Error(`${op}: ${name} [${p.shape}] must be [${n}] for input [${x.shape}]`);
  }
  if (!isFloat(x.dtype)) throw new TypeError(`${op}: input must be float, got ${x.dtype}`);
}

/** A layer norm's output and the per-row statistics its backward needs: rows of n. */
interface LayerNormState {
  out: Tensor;
  mean: Tensor;
  rstd: Tensor;
  rows: number;
  n: number;
}

function layerNormOutputs(x: Tensor): LayerNormState {
  const n = x.shape[x.ndim - 1]!;
  const rows = n === 0 ? 0 : x.size / n;
  const b = x.backend;
  return {
    out: new Tensor(b.empty(x.dtype, x.size), x.shape),
    mean: new Tensor(b.empty(x.dtype, rows), [rows]),
    rstd: new Tensor(b.empty(x.dtype, rows), [rows]),
    rows,
    n,
  };
}

/**
 * Records a layer norm of x whose forward has run: src holds x's values densely (the kernel's
 * input), w the dense weight.
 */
function recordLayerNorm(x: Tensor, src: Tensor, weight: Tensor | null, bias: Tensor | null, w: Tensor | null,
  st: LayerNormState): Tensor {
  const { rows, n } = st;
  const b = x.backend;
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  return record('layerNorm', inputs, st.out, (g) => {
    const dx = new Tensor(b.empty(x.dtype, x.size), x.shape);
    const dw = weight?.requiresGrad ? new Tensor(b.empty(x.dtype, n), [n]) : null;
    const db = bias?.requiresGrad ? new Tensor(b.empty(x.dtype, n), [n]) : null;
    b.layerNormGrad(src.view(), g.contiguous().view(), w?.view() ?? null, st.mean.view(), st.rstd.view(), rows, n,
      dx.storage, dw?.storage ?? null, db?.storage ?? null);
    return [dx, ...(weight ? [dw] : []), ...(bias ? [db] : [])];
  });
}

/** Layer norm over the last axis (torch.nn.functional.layer_norm with normalized_shape = [n]). */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  checkLayerNormArgs('layerNorm', x, weight, bias);
  const src = noGrad(() => x.contiguous());
  const w = weight ? noGrad(() => weight.contiguous()) : null;
  const bb = bias ? noGrad(() => bias.contiguous()) : null;
  const st = layerNormOutputs(x);
  x.backend.layerNorm(src.view('layerNorm'), w?.view('layerNorm') ?? null, bb?.view('layerNorm') ?? null, st.rows, st.n, eps,
    st.out.storage, st.mean.storage, st.rstd.storage);
  return recordLayerNorm(x, src, weight, bias, w, st);
}

export interface AddLayerNormResult {
  /** x + residual: the residual stream that continues past the norm. */
  sum: Tensor;
  /** layerNorm(x + residual). */
  normed: Tensor;
}

/**
 * x + residual and the layer norm of that sum, from one pass over the rows: the step between
 * two branches of a pre-LN transformer. Both results are differentiable. x and residual have
 * the same shape (other shapes broadcast through an unfused add).
 */
export function addLayerNorm(x: Tensor, residual: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): AddLayerNormResult {
  const same = x.ndim === residual.ndim && x.shape.every((d, i) => d === residual.shape[i]) && x.dtype === residual.dtype &&
    x.backend === residual.backend;
  if (!same) {
    const sum = x.add(residual);
    return { sum, normed: layerNorm(sum, weight, bias, eps) };
  }
  checkLayerNormArgs('addLayerNorm', x, weight, bias);
  const xs = noGrad(() => x.contiguous());
  const rs = noGrad(() => residual.contiguous());
  const w = weight ? noGrad(() => weight.contiguous()) : null;
  const bb = bias ? noGrad(() => bias.contiguous()) : null;
  const b = x.backend;
  const sum = new Tensor(b.empty(x.dtype, x.size), x.shape);
  const st = layerNormOutputs(x);
  b.addLayerNorm(xs.view('addLayerNorm'), rs.view('addLayerNorm'), w?.view('addLayerNorm') ?? null,
    bb?.view('addLayerNorm') ?? null, st.rows, st.n, eps, sum.storage, st.out.storage, st.mean.storage, st.rstd.storage);
  // Two nodes, as add then layerNorm would record them: the norm's gradient reaches x and
  // residual through the sum, added to whatever reaches the sum from its other uses.
  const recorded = record('add', [x, residual], sum, (g) => [g, g]);
  return { sum: recorded, normed: recordLayerNorm(recorded, sum, weight, bias, w, st) };
}

export interface AttentionOptions {
  /** Query i attends keys j <= i. */
  causal?: boolean;
  /** [B, Tk]: nonzero (true) where a key may be attended to, as HF's attention_mask. */
  keyPadding?: Tensor | null;
  /** Defaults to 1/sqrt(head dim). */
  scale?: number;
}

/** The last axis must be dense for the kernels; other axes may have any strides. */
function innerDense(t: Tensor): Tensor {
  return t.strides[t.ndim - 1] === 1 || t.shape[t.ndim - 1] === 1 ? t : noGrad(() => t.contiguous());
}

/**
 * softmax(q k^T * scale + masks) v for q [B, H, Tq, D], k [B, H, Tk, D], v [B, H, Tk, Dv], as one
 * fused kernel: the masks are applied while scores are computed, never materialised.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  if (q.ndim !== 4 || k.ndim !== 4 || v.ndim !== 4) {
    throw new Error(`attention: q, k, v must be [B, H, T, D]; got [${q.shape}], [${k.shape}], [${v.shape}]`);
  }
  const [B, H, Tq, D] = q.shape as [number, number, number, number];
  const Tk = k.shape[2]!;
  const Dv = v.shape[3]!;
  if (k.shape[0] !== B || k.shape[1] !== H || k.shape[3] !== D || v.shape[0] !== B || v.shape[1] !== H || v.shape[2] !== Tk) {
    throw new Error(`attention: q [${q.shape}], k [${k.shape}], v [${v.shape}] do not fit together`);
  }
  let pad: View | null = null;
  if (opts.keyPadding) {
    const m = opts.keyPadding;
    if (m.ndim !== 2 || m.shape[0] !== B || m.shape[1] !== Tk) throw new Error(`attention: keyPadding [${m.shape}] must be [${B}, ${Tk}]`);
    pad = noGrad(() => cast(m, 'uint8').contiguous()).view();
  }
  const qd = innerDense(q);
  const kd = innerDense(k);
  const vd = innerDense(v);
  const args = { q: qd.view('attention'), k: kd.view('attention'), v: vd.view('attention'), keyPadding: pad,
    causal: opts.causal ?? false, scale: opts.scale ?? 1 / Math.sqrt(D) };
  const b = q.backend;
  const out = new Tensor(b.empty(q.dtype, B * H * Tq * Dv), [B, H, Tq, Dv]);
  const lse = new Tensor(b.empty(q.dtype, B * H * Tq), [B, H, Tq]);
  b.attention(args, out.storage, lse.storage);
  return record('attention', [q, k, v], out, (g) => {
    const dq = new Tensor(b.empty(q.dtype, q.size), q.shape);
    const dk = new Tensor(b.empty(q.dtype, k.size), k.shape);
    const dv = new Tensor(b.empty(q.dtype, v.size), v.shape);
    // The gradient usually arrives as a permuted view of the output projection's gradient; the
    // kernels read any strides but the last, so it is not copied.
    b.attentionGrad(args, out.view(), lse.view(), innerDense(g).view(), dq.storage, dk.storage, dv.storage);
    return [dq, dk, dv];
  });
}

/**
 * Convolution whose stride equals its kernel size and has no padding (a ViT patch embedding):
 * x [B, C, H, W], weight [D, C, p, p] -> [B, D, H/p, W/p]. It is a reshape and one matmul.
 */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, stride?: number | [number, number]): Tensor {
  if (x.ndim !== 4 || weight.ndim !== 4) throw new Error(`conv2d: expected x [B, C, H, W] and weight [D, C, kh, kw], got [${x.shape}] and [${weight.shape}]`);
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const [D, Cw, ph, pw] = weight.shape as [number, number, number, number];
  const [sh, sw] = stride === undefined ? [ph, pw] : typeof stride === 'number' ? [stride, stride] : stride;
  if (sh !== ph || sw !== pw) throw new Error(`conv2d: only stride == kernel size is supported (kernel ${ph}x${pw}, stride ${sh}x${sw})`);
  if (Cw !== C) throw new Error(`conv2d: input has ${C} channels but weight [${weight.shape}] expects ${Cw}`);
  if (H % ph !== 0 || W % pw !== 0) throw new Error(`conv2d: image ${H}x${W} is not a multiple of the ${ph}x${pw} patch`);
  const gh = H / ph;
  const gw = W / pw;
  const patches = reshape(permute(reshape(x, [B, C, gh, ph, gw, pw]), [0, 2, 4, 1, 3, 5]), [B * gh * gw, C * ph * pw]);
  const y = linear(patches, reshape(weight, [D, C * ph * pw]), bias);
  return permute(reshape(y, [B, gh, gw, D]), [0, 3, 1, 2]);
}

/** Zeroes each element with probability p and scales the rest by 1/(1-p); identity when not training. */
export function dropout(x: Tensor, p: number, training = true, generator?: Generator): Tensor {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`dropout: p must be in [0, 1], got ${p}`);
  if (!training || p === 0) return x;
  if (p === 1) return x.mul(0);
  const keep = bernoulli(x.shape, 1 - p, { generator: generator ?? getDefaultGenerator(), dtype: x.dtype, backend: x.backend });
  return x.mul(keep.mul(1 / (1 - p)));
}

export type Reduction = 'mean' | 'sum' | 'none';

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (and not counted in the mean). Default -100. */
  ignoreIndex?: number;
  labelSmoothing?: number;
  reduction?: Reduction;
}

/**
 * Cross-entropy of logits [N, C] (or [N, C, d1, ...]) against class indices [N] (or [N, d1, ...]),
 * as torch.nn.functional.cross_entropy, with ignore_index and label smoothing.
 */
export function crossEntropy(logits: Tensor, target: Tensor, opts: CrossEntropyOptions = {}): Tensor {
  const ignore = opts.ignoreIndex ?? -100;
  const eps = opts.labelSmoothing ?? 0;
  if (!(eps >= 0 && eps <= 1)) throw new RangeError(`crossEntropy: labelSmoothing must be in [0, 1], got ${eps}`);
  if (logits.ndim < 2) throw new Error(`crossEntropy: logits must be [N, C, ...], got [${logits.shape}]`);
  const C = logits.shape[1]!;
  const expected = [logits.shape[0]!, ...logits.shape.slice(2)];
  if (target.ndim !== expected.length || target.shape.some((d, i) => d !== expected[i])) {
    throw new Error(`crossEntropy: target [${target.shape}] must be [${expected}] for logits [${logits.shape}]`);
  }
  // Classes to the last axis, everything else flattened into rows.
  const rows = logits.ndim === 2 ? logits : reshape(permute(logits, [0, ...[...Array(logits.ndim - 2).keys()].map((i) => i + 2), 1]), [-1, C]);
  const t = reshape(cast(target, 'int32'), [-1, 1]);
  const valid = t.ne(ignore);
  const logp = logSoftmax(rows, -1);
  const safeTarget = where(valid, t, 0);
  const tv = t.toArray();
  const bad = tv.find((v) => v !== ignore && (v < 0 || v >= C));
  if (bad !== undefined) throw new RangeError(`crossEntropy: target ${bad} is out of range for ${C} classes`);
  let loss = gather(logp, 1, safeTarget).neg();
  if (eps > 0) loss = loss.mul(1 - eps).add(logp.mean(-1, true).neg().mul(eps));
  loss = where(valid, loss, 0).squeeze(-1);
  const reduction = opts.reduction ?? 'mean';
  if (reduction === 'none') return reshape(loss, target.shape);
  if (reduction === 'sum') return loss.sum();
  return loss.sum().div(cast(valid, logits.dtype).sum());
}

export interface BceOptions {
  reduction?: Reduction;
  /** Weight of the positive term per class, as torch's pos_weight. */
  posWeight?: Tensor | null;
}

/** Binary cross-entropy on logits, stable for large |x|: softplus(x) - x y (weighted by pos_weight). */
export function binaryCrossEntropyWithLogits(logits: Tensor, target: Tensor, opts: BceOptions = {}): Tensor {
  if (logits.shape.length !== target.shape.length || logits.shape.some((d, i) => d !== target.shape[i])) {
    throw new Error(`binaryCrossEntropyWithLogits: logits [${logits.shape}] and target [${target.shape}] differ`);
  }
  const y = cast(target, logits.dtype);
  let loss: Tensor;
  if (opts.posWeight) {
    // (1 - y) x + (1 + (pw - 1) y) softplus(-x)
    const w = opts.posWeight.sub(1).mul(y).add(1);
    loss = y.neg().add(1).mul(logits).add(w.mul(logits.neg().softplus()));
  } else {
    loss = logits.softplus().sub(logits.mul(y));
  }
  const reduction = opts.reduction ?? 'mean';
  return reduction === 'none' ? loss : reduction === 'sum' ? loss.sum() : loss.mean();
}
