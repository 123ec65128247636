// The reference backend: every kernel as a plain loop in TypeScript, computing in float64 and
// rounding on store. It is slow on purpose-built paths and has none: it exists to be obviously
// right, so the native backend and every gradient can be checked against it.
import type {
  ActivationOp, AdamWStep, AttentionArgs, Backend, BinaryOp, ReduceOp, SgdStep, Storage, UnaryOp, View,
} from '../backend.js';
import { contiguousStrides, numel } from '../backend.js';
import type { DType, TypedArray } from '../dtype.js';
import { allocHost } from '../dtype.js';
import { HostStorage, hostData, viewData } from './host.js';
import { erf, erfc } from './scalar_math.js';

/** Element offsets of a view's logical indices, in row-major order. */
export function viewOffsets(v: View): Int32Array {
  const n = numel(v.shape);
  const out = new Int32Array(n);
  const nd = v.shape.length;
  const idx = new Array<number>(nd).fill(0);
  let off = v.offset;
  for (let i = 0; i < n; i++) {
    out[i] = off;
    for (let d = nd - 1; d >= 0; d--) {
      idx[d]!++;
      off += v.strides[d]!;
      if (idx[d]! < v.shape[d]!) break;
      off -= v.strides[d]! * v.shape[d]!;
      idx[d] = 0;
    }
  }
  return out;
}

function checkBounds(v: View, what: string): void {
  const len = v.storage.length;
  if (numel(v.shape) === 0) return;
  let lo = v.offset;
  let hi = v.offset;
  for (let d = 0; d < v.shape.length; d++) {
    const span = (v.shape[d]! - 1) * v.strides[d]!;
    if (span < 0) lo += span;
    else hi += span;
  }
  if (lo < 0 || hi >= len) {
    throw new RangeError(`${what}: view [${v.shape}] strides [${v.strides}] offset ${v.offset} reaches outside its storage of ${len} elements`);
  }
}

/** Reads a view's elements as numbers (bigints become numbers). */
function readAll(v: View, what = 'input'): Float64Array {
  checkBounds(v, what);
  const data = viewData(v);
  const offs = viewOffsets(v);
  const out = new Float64Array(offs.length);
  if (data instanceof BigInt64Array) for (let i = 0; i < offs.length; i++) out[i] = Number(data[offs[i]!]!);
  else for (let i = 0; i < offs.length; i++) out[i] = data[offs[i]!]!;
  return out;
}

/** Stores numbers into a typed array with the dtype's conversion (truncation for integers). */
function store(data: TypedArray, dtype: DType, i: number, x: number): void {
  if (data instanceof BigInt64Array) data[i] = BigInt(Math.trunc(Number.isFinite(x) ? x : 0));
  else if (dtype === 'bool') data[i] = x !== 0 ? 1 : 0; // NaN is true, as in PyTorch
  else if (dtype === 'int32' || dtype === 'uint8') data[i] = Number.isFinite(x) ? Math.trunc(x) : 0;
  else data[i] = x;
}

function writeAll(out: Storage, values: ArrayLike<number>): void {
  const data = hostData(out);
  if (data.length < values.length) throw new RangeError(`output of ${data.length} elements is too small for ${values.length}`);
  for (let i = 0; i < values.length; i++) store(data, out.dtype, i, values[i]!);
}

/** A float64 value as the dtype stores it, for kernels whose later steps read a stored result. */
function roundingOf(dtype: DType): (x: number) => number {
  return dtype === 'float32' ? Math.fround : (x) => x;
}

function checkSameShape(what: string, ...views: View[]): void {
  const s0 = views[0]!.shape;
  for (const v of views) {
    if (v.shape.length !== s0.length || v.shape.some((d, i) => d !== s0[i])) {
      throw new Error(`${what}: shapes differ: ${views.map((x) => `[${x.shape}]`).join(' vs ')}`);
    }
  }
}

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);

function sigmoid(x: number): number {
  return x >= 0 ? 1 / (1 + Math.exp(-x)) : Math.exp(x) / (1 + Math.exp(x));
}

/** sigmoid'(x) = e / (1 + e)^2 with e = exp(-|x|): no cancellation in s (1 - s) for large |x|. */
function sigmoidSlope(x: number): number {
  const e = Math.exp(-Math.abs(x));
  return e / ((1 + e) * (1 + e));
}

function softplus(x: number): number {
  return Math.max(x, 0) + Math.log1p(Math.exp(-Math.abs(x)));
}

export function unaryFn(op: UnaryOp): (x: number) => number {
  switch (op) {
    case 'neg': return (x) => -x;
    case 'abs': return Math.abs;
    case 'sign': return (x) => (x > 0 ? 1 : x < 0 ? -1 : x === 0 ? 0 : NaN);
    case 'exp': return Math.exp;
    case 'log': return Math.log;
    case 'sqrt': return Math.sqrt;
    case 'rsqrt': return (x) => 1 / Math.sqrt(x);
    case 'reciprocal': return (x) => 1 / x;
    case 'square': return (x) => x * x;
    case 'sin': return Math.sin;
    case 'cos': return Math.cos;
    case 'tanh': return Math.tanh;
    case 'sigmoid': return sigmoid;
    case 'softplus': return softplus;
    case 'erf': return erf;
    case 'relu': return (x) => (x > 0 ? x : x === x ? 0 : NaN);
    // x * Phi(x), with Phi from erfc so the negative tail keeps its relative accuracy
    case 'gelu_erf': return (x) => 0.5 * x * erfc(-x / Math.SQRT2);
    // 0.5 x (1 + tanh u) = x sigmoid(2u), which does not cancel for negative x
    case 'gelu_tanh': return (x) => x * sigmoid(2 * SQRT_2_OVER_PI * (x + 0.044715 * x * x * x));
    case 'quick_gelu': return (x) => x * sigmoid(1.702 * x);
  }
}

/** The derivative f'(x) of each activation. */
export function activationDerivative(op: ActivationOp): (x: number) => number {
  switch (op) {
    case 'relu': return (x) => (x > 0 ? 1 : 0);
    case 'gelu_erf': return (x) => 0.5 * erfc(-x / Math.SQRT2) + (x * Math.exp(-0.5 * x * x)) / Math.sqrt(2 * Math.PI);
    case 'gelu_tanh': return (x) => {
      // with s = sigmoid(2u): 0.5 (1 + tanh u) = s and 1 - tanh^2 u = 4 s (1 - s)
      const u = SQRT_2_OVER_PI * (x + 0.044715 * x * x * x);
      const s = sigmoid(2 * u);
      return s + 2 * x * sigmoidSlope(2 * u) * SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x);
    };
    case 'quick_gelu': return (x) => sigmoid(1.702 * x) + 1.702 * x * sigmoidSlope(1.702 * x);
    case 'sigmoid': return sigmoidSlope;
    // 1 - tanh^2 x = 4 sigmoid'(2x), which keeps its value where tanh^2 rounds to 1
    case 'tanh': return (x) => 4 * sigmoidSlope(2 * x);
    case 'erf': return (x) => (2 / Math.sqrt(Math.PI)) * Math.exp(-x * x);
    case 'softplus': return sigmoid;
  }
}

export function binaryFn(op: BinaryOp): (a: number, b: number) => number {
  switch (op) {
    case 'add': return (a, b) => a + b;
    case 'sub': return (a, b) => a - b;
    case 'mul': return (a, b) => a * b;
    case 'div': return (a, b) => a / b;
    case 'pow': return Math.pow;
    // NaN propagates, as torch.maximum / torch.minimum do
    case 'maximum': return (a, b) => (a !== a || b !== b ? NaN : Math.max(a, b));
    case 'minimum': return (a, b) => (a !== a || b !== b ? NaN : Math.min(a, b));
    case 'eq': return (a, b) => +(a === b);
    case 'ne': return (a, b) => +(a !== b);
    case 'lt': return (a, b) => +(a < b);
    case 'le': return (a, b) => +(a <= b);
    case 'gt': return (a, b) => +(a > b);
    case 'ge': return (a, b) => +(a >= b);
    case 'and': return (a, b) => +(a !== 0 && b !== 0);
    case 'or': return (a, b) => +(a !== 0 || b !== 0);
  }
}

function indexValues(index: View, n: number, what: string): Int32Array {
  const vals = readAll(index, `${what} index`);
  const out = new Int32Array(vals.length);
  for (let i = 0; i < vals.length; i++) {
    const j = vals[i]!;
    if (!(j >= 0 && j < n) || !Number.isInteger(j)) throw new RangeError(`${what}: index ${j} is out of range for a dimension of size ${n}`);
    out[i] = j;
  }
  return out;
}

/** NaN sorts as the largest value, as torch.sort does. */
function compareAscending(a: number, b: number): number {
  const an = a !== a;
  const bn = b !== b;
  if (an || bn) return an === bn ? 0 : an ? 1 : -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

export class ReferenceBackend implements Backend {
  readonly name: string = 'reference';

  alloc(dtype: DType, length: number): Storage {
    return new HostStorage(this, dtype, allocHost(dtype, length));
  }

  /** Zero-filled here too: the reference backend favours simple over fast. */
  empty(dtype: DType, length: number): Storage {
    return this.alloc(dtype, length);
  }

  fromHost(data: TypedArray, dtype: DType): Storage {
    const copy = allocHost(dtype, data.length);
    if (copy.constructor !== data.constructor) {
      throw new TypeError(`fromHost: a ${data.constructor.name} cannot hold dtype ${dtype}`);
    }
    (copy as Float32Array).set(data as Float32Array);
    return new HostStorage(this, dtype, copy);
  }

  toHost(x: View): TypedArray {
    const out = this.alloc(x.storage.dtype, numel(x.shape));
    this.copy({ storage: out, offset: 0, shape: x.shape, strides: contiguousStrides(x.shape) }, x);
    return hostData(out);
  }

  copy(dst: View, src: View): void {
    checkSameShape('copy', dst, src);
    checkBounds(dst, 'copy destination');
    checkBounds(src, 'copy source');
    const d = viewData(dst);
    const s = viewData(src);
    const dOffs = viewOffsets(dst);
    const sOffs = viewOffsets(src);
    // Snapshot first so overlapping src/dst behave as a copy of the old values.
    const vals = s instanceof BigInt64Array && d instanceof BigInt64Array
      ? Array.from(sOffs, (o) => s[o]!)
      : Array.from(readAll(src));
    for (let i = 0; i < dOffs.length; i++) {
      const v = vals[i]!;
      if (typeof v === 'bigint') (d as BigInt64Array)[dOffs[i]!] = v;
      else store(d, dst.storage.dtype, dOffs[i]!, v);
    }
  }

  fill(dst: View, value: number): void {
    checkBounds(dst, 'fill');
    const d = viewData(dst);
    for (const o of viewOffsets(dst)) store(d, dst.storage.dtype, o, value);
  }

  unary(op: UnaryOp, x: View, out: Storage): void {
    const f = unaryFn(op);
    writeAll(out, readAll(x).map(f));
  }

  unaryGrad(op: ActivationOp, x: View, g: View, out: Storage): void {
    checkSameShape(`unaryGrad(${op})`, x, g);
    const df = activationDerivative(op);
    const xs = readAll(x);
    const gs = readAll(g);
    writeAll(out, xs.map((v, i) => gs[i]! * df(v)));
  }

  binary(op: BinaryOp, a: View, b: View, out: Storage): void {
    checkSameShape(`binary(${op})`, a, b);
    const f = binaryFn(op);
    const as = readAll(a);
    const bs = readAll(b);
    writeAll(out, as.map((v, i) => f(v, bs[i]!)));
  }

  where(cond: View, a: View, b: View, out: Storage): void {
    checkSameShape('where', cond, a, b);
    const cs = readAll(cond);
    const as = readAll(a);
    const bs = readAll(b);
    writeAll(out, cs.map((c, i) => (c !== 0 ? as[i]! : bs[i]!)));
  }

  reduce(op: ReduceOp, x: View, outer: number, n: number, inner: number, out: Storage): void {
    const xs = readAll(x);
    if (xs.length !== outer * n * inner) throw new Error(`reduce: ${xs.length} elements do not form [${outer}, ${n}, ${inner}]`);
    const res = new Float64Array(outer * inner);
    for (let o = 0; o < outer; o++) {
      for (let i = 0; i < inner; i++) {
        const at = (j: number) => xs[(o * n + j) * inner + i]!;
        let acc: number;
        if (op === 'sum') {
          acc = 0;
          for (let j = 0; j < n; j++) acc += at(j);
        } else if (op === 'max' || op === 'min') {
          if (n === 0) throw new Error(`reduce(${op}): cannot reduce an empty axis`);
          acc = at(0);
          for (let j = 1; j < n && acc === acc; j++) {
            const v = at(j);
            if (v !== v || (op === 'max' ? v > acc : v < acc)) acc = v;
          }
        } else {
          if (n === 0) throw new Error(`reduce(${op}): cannot reduce an empty axis`);
          // The first extremum; a NaN counts as the extremum, as torch.argmax does.
          acc = 0;
          let best = at(0);
          for (let j = 1; j < n && best === best; j++) {
            const v = at(j);
            if (v !== v || (op === 'argmax' ? v > best : v < best)) {
              best = v;
              acc = j;
            }
          }
        }
        res[o * inner + i] = acc;
      }
    }
    writeAll(out, res);
  }

  softmax(x: View, rows: number, n: number, log: boolean, out: Storage): void {
    const xs = readAll(x);
    const res = new Float64Array(rows * n);
    for (let r = 0; r < rows; r++) {
      let max = -Infinity;
      for (let j = 0; j < n; j++) max = Math.max(max, xs[r * n + j]!);
      let sum = 0;
      for (let j = 0; j < n; j++) sum += Math.exp(xs[r * n + j]! - max);
      for (let j = 0; j < n; j++) {
        const z = xs[r * n + j]! - max;
        res[r * n + j] = log ? z - Math.log(sum) : Math.exp(z) / sum;
      }
    }
    writeAll(out, res);
  }

  softmaxGrad(y: View, g: View, rows: number, n: number, log: boolean, out: Storage): void {
    const ys = readAll(y);
    const gs = readAll(g);
    const res = new Float64Array(rows * n);
    for (let r = 0; r < rows; r++) {
      let dot = 0;
      for (let j = 0; j < n; j++) dot += log ? gs[r * n + j]! : gs[r * n + j]! * ys[r * n + j]!;
      for (let j = 0; j < n; j++) {
        const k = r * n + j;
        res[k] = log ? gs[k]! - Math.exp(ys[k]!) * dot : ys[k]! * (gs[k]! - dot);
      }
    }
    writeAll(out, res);
  }

  layerNorm(x: View, gamma: View | null, beta: View | null, rows: number, n: number, eps: number,
    out: Storage, mean: Storage, rstd: Storage): void {
    const xs = readAll(x);
    const gs = gamma ? readAll(gamma) : null;
    const bs = beta ? readAll(beta) : null;
    const res = new Float64Array(rows * n);
    const means = new Float64Array(rows);
    const rstds = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let mu = 0;
      for (let j = 0; j < n; j++) mu += xs[r * n + j]!;
      mu /= n;
      let v = 0;
      for (let j = 0; j < n; j++) v += (xs[r * n + j]! - mu) ** 2;
      const rs = 1 / Math.sqrt(v / n + eps);
      means[r] = mu;
      rstds[r] = rs;
      for (let j = 0; j < n; j++) {
        res[r * n + j] = (xs[r * n + j]! - mu) * rs * (gs ? gs[j]! : 1) + (bs ? bs[j]! : 0);
      }
    }
    writeAll(out, res);
    writeAll(mean, means);
    writeAll(rstd, rstds);
  }

  layerNormGrad(x: View, g: View, gamma: View | null, mean: View, rstd: View, rows: number, n: number,
    dx: Storage, dgamma: Storage | null, dbeta: Storage | null): void {
    const xs = readAll(x);
    const gOut = readAll(g);
    const gam = gamma ? readAll(gamma) : null;
    const mus = readAll(mean);
    const rss = readAll(rstd);
    const dxs = new Float64Array(rows * n);
    const dg = new Float64Array(n);
    const db = new Float64Array(n);
    for (let r = 0; r < rows; r++) {
      let meanD = 0;
      let meanDX = 0;
      for (let j = 0; j < n; j++) {
        const k = r * n + j;
        const xhat = (xs[k]! - mus[r]!) * rss[r]!;
        const d = gOut[k]! * (gam ? gam[j]! : 1);
        meanD += d;
        meanDX += d * xhat;
        dg[j]! += gOut[k]! * xhat;
        db[j]! += gOut[k]!;
      }
      meanD /= n;
      meanDX /= n;
      for (let j = 0; j < n; j++) {
        const k = r * n + j;
        const xhat = (xs[k]! - mus[r]!) * rss[r]!;
        const d = gOut[k]! * (gam ? gam[j]! : 1);
        dxs[k] = rss[r]! * (d - meanD - xhat * meanDX);
      }
    }
    writeAll(dx, dxs);
    if (dgamma) writeAll(dgamma, dg);
    if (dbeta) writeAll(dbeta, db);
  }

  biasActivation(x: View, bias: View, act: ActivationOp | null, rows: number, n: number,
    pre: Storage | null, out: Storage): void {
    const xs = readAll(x, 'biasActivation x');
    const bs = readAll(bias, 'biasActivation bias');
    if (xs.length !== rows * n || bs.length !== n) {
      throw new Error(`biasActivation: x [${x.shape}] and bias [${bias.shape}] do not form [${rows}, ${n}] and [${n}]`);
    }
    const f = act ? unaryFn(act) : (v: number) => v;
    const round = roundingOf(out.dtype);
    const sums = new Float64Array(rows * n);
    for (let r = 0; r < rows; r++) for (let j = 0; j < n; j++) sums[r * n + j] = round(xs[r * n + j]! + bs[j]!);
    if (pre) writeAll(pre, sums);
    writeAll(out, sums.map(f));
  }

  /**
   * matmul, then biasActivation over the product, each computing in float64 and rounding on store.
   * Both go through `this`, so a backend that extends this one and lacks a case of its own linear
   * kernel runs its own matmul and biasActivation.
   */
  linear(x: View, weight: View, bias: View, act: ActivationOp | null, pre: Storage | null, out: Storage): void {
    const [rows, k] = x.shape as [number, number];
    const [n, k2] = weight.shape as [number, number];
    if (x.shape.length !== 2 || weight.shape.length !== 2 || bias.shape.length !== 1 || k !== k2 || bias.shape[0] !== n) {
      throw new Error(`linear: x [${x.shape}], weight [${weight.shape}] and bias [${bias.shape}] do not form [rows, k], [n, k] and [n]`);
    }
    // The product goes where biasActivation may update it in place: into pre when kept, else out.
    const product = pre ?? out;
    this.matmul({ ...x, shape: [1, rows, k], strides: [0, x.strides[0]!, x.strides[1]!] },
      { ...weight, shape: [1, k, n], strides: [0, weight.strides[1]!, weight.strides[0]!] }, product);
    this.biasActivation({ storage: product, offset: 0, shape: [rows, n], strides: [n, 1] }, bias, act, rows, n, pre, out);
  }

  addLayerNorm(x: View, residual: View, gamma: View | null, beta: View | null, rows: number, n: number, eps: number,
    sum: Storage, out: Storage, mean: Storage, rstd: Storage): void {
    const xs = readAll(x, 'addLayerNorm x');
    const rs = readAll(residual, 'addLayerNorm residual');
    if (xs.length !== rows * n || rs.length !== rows * n) {
      throw new Error(`addLayerNorm: x [${x.shape}] and residual [${residual.shape}] do not both form [${rows}, ${n}]`);
    }
    const round = roundingOf(sum.dtype);
    writeAll(sum, xs.map((v, i) => round(v + rs[i]!)));
    this.layerNorm({ storage: sum, offset: 0, shape: [rows, n], strides: [n, 1] }, gamma, beta, rows, n, eps, out, mean, rstd);
  }

  matmul(a: View, b: View, out: Storage): void {
    const [batch, M, K] = a.shape as [number, number, number];
    const [batchB, K2, N] = b.shape as [number, number, number];
    if (a.shape.length !== 3 || b.shape.length !== 3 || batch !== batchB || K !== K2) {
      throw new Error(`matmul: shapes [${a.shape}] and [${b.shape}] do not form [batch, M, K] @ [batch, K, N]`);
    }
    const as = readAll(a);
    const bs = readAll(b);
    const res = new Float64Array(batch * M * N);
    for (let p = 0; p < batch; p++) {
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < N; j++) {
          let acc = 0;
          for (let k = 0; k < K; k++) acc += as[(p * M + i) * K + k]! * bs[(p * K + k) * N + j]!;
          res[(p * M + i) * N + j] = acc;
        }
      }
    }
    writeAll(out, res);
  }

  /** Per (batch, head): the masked, scaled scores and their row log-sum-exp. */
  private attentionScores(args: AttentionArgs) {
    const [B, H, Tq, D] = args.q.shape as [number, number, number, number];
    const Tk = args.k.shape[2]!;
    const Dv = args.v.shape[3]!;
    const q = readAll(args.q, 'attention q');
    const k = readAll(args.k, 'attention k');
    const v = readAll(args.v, 'attention v');
    const pad = args.keyPadding ? readAll(args.keyPadding, 'attention keyPadding') : null;
    if (args.k.shape[3] !== D || args.v.shape[2] !== Tk || args.k.shape[0] !== B || args.v.shape[0] !== B ||
      args.k.shape[1] !== H || args.v.shape[1] !== H) {
      throw new Error(`attention: q [${args.q.shape}], k [${args.k.shape}], v [${args.v.shape}] do not fit together`);
    }
    if (pad && pad.length !== B * Tk) throw new Error(`attention: keyPadding [${args.keyPadding!.shape}] must be [${B}, ${Tk}]`);
    // p[bh][i][j]: attention probabilities, 0 where masked; lse[bh][i]
    const p = new Float64Array(B * H * Tq * Tk);
    const lse = new Float64Array(B * H * Tq);
    for (let bh = 0; bh < B * H; bh++) {
      const bIdx = Math.floor(bh / H);
      for (let i = 0; i < Tq; i++) {
        const s = new Float64Array(Tk).fill(-Infinity);
        let max = -Infinity;
        for (let j = 0; j < Tk; j++) {
          if (args.causal && j > i) continue;
          if (pad && pad[bIdx * Tk + j] === 0) continue;
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[(bh * Tq + i) * D + d]! * k[(bh * Tk + j) * D + d]!;
          s[j] = dot * args.scale;
          max = Math.max(max, s[j]!);
        }
        // A row with every key masked attends to nothing: output 0, lse -inf. A NaN score is not a
        // mask (NaN > -Infinity is false): it makes the row NaN, as in the native kernel.
        let sum = 0;
        if (max !== -Infinity) for (let j = 0; j < Tk; j++) sum += Math.exp(s[j]! - max);
        const l = max !== -Infinity ? max + Math.log(sum) : -Infinity;
        lse[bh * Tq + i] = l;
        for (let j = 0; j < Tk; j++) p[(bh * Tq + i) * Tk + j] = l !== -Infinity ? Math.exp(s[j]! - l) : 0;
      }
    }
    return { B, H, Tq, Tk, D, Dv, q, k, v, p, lse };
  }

  attention(args: AttentionArgs, out: Storage, lse: Storage): void {
    const { B, H, Tq, Tk, Dv, v, p, lse: l } = this.attentionScores(args);
    const o = new Float64Array(B * H * Tq * Dv);
    for (let bh = 0; bh < B * H; bh++) {
      for (let i = 0; i < Tq; i++) {
        for (let j = 0; j < Tk; j++) {
          const pij = p[(bh * Tq + i) * Tk + j]!;
          if (pij === 0) continue;
          for (let d = 0; d < Dv; d++) o[(bh * Tq + i) * Dv + d]! += pij * v[(bh * Tk + j) * Dv + d]!;
        }
      }
    }
    writeAll(out, o);
    writeAll(lse, l);
  }

  attentionGrad(args: AttentionArgs, _out: View, _lse: View, gOut: View, dq: Storage, dk: Storage, dv: Storage): void {
    // Recomputes the probabilities in float64 rather than trusting the saved float32 ones.
    const { B, H, Tq, Tk, D, Dv, q, k, v, p } = this.attentionScores(args);
    const go = readAll(gOut, 'attention gOut');
    const gq = new Float64Array(B * H * Tq * D);
    const gk = new Float64Array(B * H * Tk * D);
    const gv = new Float64Array(B * H * Tk * Dv);
    for (let bh = 0; bh < B * H; bh++) {
      for (let i = 0; i < Tq; i++) {
        const row = (bh * Tq + i) * Tk;
        // dP_ij = dO_i . V_j ; dS_ij = P_ij (dP_ij - sum_j P_ij dP_ij)
        const dp = new Float64Array(Tk);
        let rowDot = 0;
        for (let j = 0; j < Tk; j++) {
          let acc = 0;
          for (let d = 0; d < Dv; d++) acc += go[(bh * Tq + i) * Dv + d]! * v[(bh * Tk + j) * Dv + d]!;
          dp[j] = acc;
          rowDot += p[row + j]! * acc;
        }
        for (let j = 0; j < Tk; j++) {
          const pij = p[row + j]!;
          if (pij === 0) continue;
          const ds = pij * (dp[j]! - rowDot) * args.scale;
          for (let d = 0; d < Dv; d++) gv[(bh * Tk + j) * Dv + d]! += pij * go[(bh * Tq + i) * Dv + d]!;
          for (let d = 0; d < D; d++) {
            gq[(bh * Tq + i) * D + d]! += ds * k[(bh * Tk + j) * D + d]!;
            gk[(bh * Tk + j) * D + d]! += ds * q[(bh * Tq + i) * D + d]!;
          }
        }
      }
    }
    writeAll(dq, gq);
    writeAll(dk, gk);
    writeAll(dv, gv);
  }

  indexSelect(x: View, index: View, outer: number, n: number, inner: number, out: Storage): void {
    const xs = readAll(x);
    const idx = indexValues(index, n, 'indexSelect');
    const m = idx.length;
    const res = new Float64Array(outer * m * inner);
    for (let o = 0; o < outer; o++)
      for (let j = 0; j < m; j++)
        for (let i = 0; i < inner; i++) res[(o * m + j) * inner + i] = xs[(o * n + idx[j]!) * inner + i]!;
    writeAll(out, res);
  }

  indexAdd(g: View, index: View, outer: number, n: number, inner: number, out: Storage): void {
    const gs = readAll(g);
    const idx = indexValues(index, n, 'indexAdd');
    const m = idx.length;
    const res = Float64Array.from(hostData(out) as Float32Array);
    for (let o = 0; o < outer; o++)
      for (let j = 0; j < m; j++)
        for (let i = 0; i < inner; i++) res[(o * n + idx[j]!) * inner + i]! += gs[(o * m + j) * inner + i]!;
    writeAll(out, res);
  }

  gather(x: View, index: View, outer: number, n: number, inner: number, out: Storage): void {
    const xs = readAll(x);
    const idx = indexValues(index, n, 'gather');
    const m = idx.length / (outer * inner);
    const res = new Float64Array(idx.length);
    for (let o = 0; o < outer; o++)
      for (let j = 0; j < m; j++)
        for (let i = 0; i < inner; i++) {
          const k = (o * m + j) * inner + i;
          res[k] = xs[(o * n + idx[k]!) * inner + i]!;
        }
    writeAll(out, res);
  }

  scatterAdd(g: View, index: View, outer: number, n: number, inner: number, out: Storage): void {
    const gs = readAll(g);
    const idx = indexValues(index, n, 'scatterAdd');
    const m = idx.length / (outer * inner);
    const res = Float64Array.from(hostData(out) as Float32Array);
    for (let o = 0; o < outer; o++)
      for (let j = 0; j < m; j++)
        for (let i = 0; i < inner; i++) {
          const k = (o * m + j) * inner + i;
          res[(o * n + idx[k]!) * inner + i]! += gs[k]!;
        }
    writeAll(out, res);
  }

  sort(x: View, rows: number, n: number, descending: boolean, values: Storage, indices: Storage): void {
    const xs = readAll(x);
    const vals = new Float64Array(rows * n);
    const ids = new Float64Array(rows * n);
    for (let r = 0; r < rows; r++) {
      const order = Array.from({ length: n }, (_, j) => j);
      const row = (j: number) => xs[r * n + j]!;
      // Array.prototype.sort is stable, so equal values keep their order.
      order.sort((i, j) => (descending ? -compareAscending(row(i), row(j)) : compareAscending(row(i), row(j))));
      order.forEach((j, t) => {
        vals[r * n + t] = row(j);
        ids[r * n + t] = j;
      });
    }
    writeAll(values, vals);
    writeAll(indices, ids);
  }

  adamw(param: Storage, grad: Storage, m: Storage, v: Storage, hp: AdamWStep): void {
    const p = hostData(param) as Float32Array;
    const g = hostData(grad) as Float32Array;
    const ms = hostData(m) as Float32Array;
    const vs = hostData(v) as Float32Array;
    const stepSize = hp.lr / hp.biasCorrection1;
    const bc2Sqrt = Math.sqrt(hp.biasCorrection2);
    for (let i = 0; i < p.length; i++) {
      // The order of PyTorch's AdamW: decay, moments, then the step.
      p[i] = p[i]! * (1 - hp.lr * hp.weightDecay);
      ms[i] = ms[i]! + (g[i]! - ms[i]!) * (1 - hp.beta1);
      vs[i] = vs[i]! * hp.beta2 + (1 - hp.beta2) * g[i]! * g[i]!;
      p[i] = p[i]! - (stepSize * ms[i]!) / (Math.sqrt(vs[i]!) / bc2Sqrt + hp.eps);
    }
  }

  sgd(param: Storage, grad: Storage, momentumBuf: Storage | null, hp: SgdStep): void {
    const p = hostData(param) as Float32Array;
    const g = hostData(grad) as Float32Array;
    const buf = momentumBuf ? (hostData(momentumBuf) as Float32Array) : null;
    for (let i = 0; i < p.length; i++) {
      let d = g[i]! + hp.weightDecay * p[i]!;
      if (buf) {
        buf[i] = hp.firstStep ? d : hp.momentum * buf[i]! + (1 - hp.dampening) * d;
        d = hp.nesterov ? d + hp.momentum * buf[i]! : buf[i]!;
      }
      p[i] = p[i]! - hp.lr * d;
    }
  }
}
