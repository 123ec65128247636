// One harness for every differentiable op (as ggml's test-backend-ops): each case is checked
// (1) by finite differences in float64 on the reference backend (the library's gradcheck), and
// (2) native against reference in float32, forward and backward,
// on random shapes with odd sizes, size-1 broadcast axes and non-contiguous inputs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backend } from '../../src/tensor/backend.js';
import type { DType } from '../../src/tensor/dtype.js';
import { type Tensor, tensor, getBackend, hasBackend, Generator, gradcheck } from '../../src/tensor/index.js';
import * as G from '../../src/tensor/index.js';
import { assertClose, randInt, randomData, rng } from '../helpers.js';

type Layout = 'dense' | 'transposed' | 'sliced' | 'broadcast';

interface InputSpec {
  shape: number[];
  lo?: number;
  hi?: number;
  /** keep values at least this far from 0 (for log, div, abs, relu kinks) */
  awayFromZero?: number;
  layout?: Layout;
  dtype?: DType;
  /** integer inputs (indices, targets) get values in [0, hi) and no gradient */
  int?: boolean;
}

interface OpCase {
  name: string;
  inputs: (r: () => number) => InputSpec[];
  fn: (...xs: Tensor[]) => Tensor;
  /** relative tolerance native vs reference (default 1e-5) */
  rtol?: number;
  /** skip the finite-difference check (ops without a gradient) */
  noGrad?: boolean;
}

const dims = (r: () => number, n: number, lo = 1, hi = 9) => Array.from({ length: n }, () => randInt(r, lo, hi));

/** The leaf tensor that holds an input's data, in the memory layout the spec asks for. */
function makeLeaf(spec: InputSpec, data: Float64Array | Int32Array, backend: Backend, dtype: DType): Tensor {
  const shape = spec.shape;
  const layout = spec.layout ?? 'dense';
  const nd = shape.length;
  let baseShape = [...shape];
  if (layout === 'transposed' && nd >= 2) [baseShape[nd - 1], baseShape[nd - 2]] = [shape[nd - 2]!, shape[nd - 1]!];
  if (layout === 'sliced' && nd >= 1) baseShape[nd - 1] = shape[nd - 1]! * 2 + 1;
  if (layout === 'broadcast') baseShape = shape.map((d, i) => (i % 2 === 0 ? 1 : d));
  const n = baseShape.reduce((a, b) => a * b, 1);
  if (spec.int) return tensor(Int32Array.from(data.subarray(0, n)), { shape: baseShape, dtype: spec.dtype ?? 'int32', backend });
  return tensor(Float64Array.from(data.subarray(0, n)), { shape: baseShape, dtype, backend, requiresGrad: true });
}

/** The view of the leaf that the op sees: transposed, strided or broadcast as the spec says. */
function applyLayout(spec: InputSpec, leaf: Tensor): Tensor {
  const layout = spec.layout ?? 'dense';
  if (layout === 'transposed' && spec.shape.length >= 2) return leaf.transpose(-1, -2);
  if (layout === 'sliced' && spec.shape.length >= 1) return leaf.slice(-1, 1, undefined, 2);
  if (layout === 'broadcast') return leaf.expand(spec.shape);
  return leaf;
}

function specData(r: () => number, spec: InputSpec): Float64Array | Int32Array {
  const n = spec.shape.reduce((a, b) => a * b, 1) * 3 + 1;
  if (spec.int) return randomData(r, 'int32', n, 0, spec.hi ?? 4) as Int32Array;
  const d = randomData(r, 'float64', n, spec.lo ?? -2, spec.hi ?? 2) as Float64Array;
  if (spec.awayFromZero) for (let i = 0; i < n; i++) if (Math.abs(d[i]!) < spec.awayFromZero) d[i] = d[i]! < 0 ? -spec.awayFromZero : spec.awayFromZero;
  return d;
}

/** loss = sum(fn(...) * w) for a fixed random w, so every output element matters. */
function weightedLoss(out: Tensor, w: Float64Array): Tensor {
  const wt = tensor(Float64Array.from(w.subarray(0, out.size)), { shape: out.shape, dtype: out.dtype, backend: out.backend });
  return out.mul(wt).sum();
}

function gradCheck(c: OpCase, specs: InputSpec[], datas: (Float64Array | Int32Array)[], seed: number): void {
  const leaves = specs.map((s, i) => makeLeaf(s, datas[i]!, getBackend('reference'), 'float64'));
  try {
    gradcheck((...xs) => c.fn(...xs.map((x, i) => applyLayout(specs[i]!, x))), leaves, { generator: new Generator(seed) });
  } catch (e) {
    throw new Error(`${c.name} (inputs ${specs.map((s) => `[${s.shape}] ${s.layout ?? 'dense'}`).join(', ')}): ${(e as Error).message}`, { cause: e });
  }
}

function crossBackend(c: OpCase, specs: InputSpec[], datas: (Float64Array | Int32Array)[], w: Float64Array): void {
  const run = (backend: Backend) => {
    const leaves = specs.map((s, i) => makeLeaf(s, datas[i]!, backend, 'float32'));
    const out = c.fn(...leaves.map((x, i) => applyLayout(specs[i]!, x)));
    let grads: (number[] | null)[] = [];
    if (!c.noGrad && out.requiresGrad) {
      weightedLoss(out, w).backward();
      grads = leaves.map((x) => x.grad?.toArray() ?? null);
    }
    return { out: out.toArray(), shape: out.shape, grads };
  };
  const ref = run(getBackend('reference'));
  const nat = run(getBackend('native'));
  assert.deepEqual(nat.shape, ref.shape, `${c.name}: output shapes differ`);
  const rtol = c.rtol ?? 1e-5;
  const scale = (xs: number[]) => Math.max(1e-3, ...xs.map(Math.abs).filter(Number.isFinite));
  assertClose(nat.out, ref.out, rtol, rtol * scale(ref.out), `${c.name} forward`);
  ref.grads.forEach((g, i) => {
    if (!g) return;
    assertClose(nat.grads[i]!, g, rtol * 10, rtol * 10 * scale(g), `${c.name} gradient of input ${i}`);
  });
}

const layouts: Layout[] = ['dense', 'transposed', 'sliced', 'broadcast'];
const FUSED_ACTS: (G.LinearActivation | null)[] = [null, 'gelu', 'gelu_tanh', 'quick_gelu', 'relu', 'sigmoid', 'tanh', 'erf', 'softplus'];
const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;

function unaryCase(name: string, fn: (x: Tensor) => Tensor, spec: Partial<InputSpec> = {}): OpCase {
  return { name, inputs: (r) => [{ shape: dims(r, randInt(r, 1, 3)), layout: pick(r, layouts), ...spec }], fn };
}

function binaryCase(name: string, fn: (a: Tensor, b: Tensor) => Tensor, bSpec: Partial<InputSpec> = {}): OpCase {
  return {
    name,
    inputs: (r) => {
      const shape = dims(r, randInt(r, 1, 3));
      // b broadcasts: a suffix of a's shape with some axes set to 1
      const bShape = shape.slice(randInt(r, 0, shape.length - 1)).map((d) => (r() < 0.3 ? 1 : d));
      return [{ shape, layout: pick(r, layouts) }, { shape: bShape, layout: pick(r, ['dense', 'transposed'] as Layout[]), ...bSpec }];
    },
    fn,
  };
}

const cases: OpCase[] = [
  unaryCase('neg', (x) => x.neg()),
  unaryCase('abs', (x) => x.abs(), { awayFromZero: 0.05 }),
  unaryCase('exp', (x) => x.exp()),
  unaryCase('log', (x) => x.log(), { lo: 0.1, hi: 3 }),
  unaryCase('sqrt', (x) => x.sqrt(), { lo: 0.1, hi: 3 }),
  unaryCase('rsqrt', (x) => x.rsqrt(), { lo: 0.1, hi: 3 }),
  unaryCase('reciprocal', (x) => x.reciprocal(), { awayFromZero: 0.2 }),
  unaryCase('square', (x) => x.square()),
  unaryCase('sin', (x) => x.sin()),
  unaryCase('cos', (x) => x.cos()),
  unaryCase('tanh', (x) => x.tanh()),
  unaryCase('sigmoid', (x) => x.sigmoid(), { lo: -6, hi: 6 }),
  unaryCase('softplus', (x) => x.softplus(), { lo: -6, hi: 6 }),
  unaryCase('erf', (x) => x.erf()),
  unaryCase('relu', (x) => x.relu(), { awayFromZero: 0.05 }),
  unaryCase('gelu', (x) => x.gelu(), { lo: -4, hi: 4 }),
  unaryCase('gelu tanh', (x) => x.gelu('tanh'), { lo: -4, hi: 4 }),
  unaryCase('quick_gelu', (x) => x.quickGelu(), { lo: -4, hi: 4 }),
  unaryCase('pow scalar', (x) => x.pow(3)),
  unaryCase('clamp', (x) => x.clamp(-0.5, 0.7), { awayFromZero: 0 }),
  binaryCase('add', (a, b) => a.add(b)),
  binaryCase('sub', (a, b) => a.sub(b)),
  binaryCase('mul', (a, b) => a.mul(b)),
  binaryCase('div', (a, b) => a.div(b), { awayFromZero: 0.3 }),
  binaryCase('pow', (a, b) => a.abs().add(0.5).pow(b)),
  binaryCase('maximum', (a, b) => a.maximum(b)),
  binaryCase('minimum', (a, b) => a.minimum(b)),
  binaryCase('where', (a, b) => G.where(a.gt(0), a, b)),
  binaryCase('maskedFill', (a, b) => a.mul(b).maskedFill(b.lt(0), -1.5)),
  {
    name: 'sum / mean over axes',
    inputs: (r) => [{ shape: dims(r, 3), layout: pick(r, layouts) }],
    fn: (x) => x.sum([0, 2]).add(x.mean(1, true).sum(-1)).add(x.sum()),
  },
  {
    name: 'max / min',
    inputs: (r) => [{ shape: dims(r, 3, 2, 7), layout: pick(r, ['dense', 'transposed', 'sliced'] as Layout[]) }],
    fn: (x) => x.max(1).sum(-1).add(x.min(-1, true).sum([1, 2])).add(x.max()),
  },
  {
    name: 'logsumexp',
    inputs: (r) => [{ shape: dims(r, 2, 1, 40), lo: -5, hi: 5, layout: pick(r, layouts) }],
    fn: (x) => x.logsumexp(-1),
  },
  {
    name: 'softmax',
    inputs: (r) => [{ shape: dims(r, 3, 1, 20), lo: -5, hi: 5, layout: pick(r, layouts) }],
    fn: (x) => x.softmax(randInt(rng(x.size), 0, 2)),
  },
  {
    name: 'logSoftmax',
    inputs: (r) => [{ shape: dims(r, 2, 1, 60), lo: -5, hi: 5, layout: pick(r, layouts) }],
    fn: (x) => x.logSoftmax(-1),
  },
  {
    name: 'matmul 2d',
    inputs: (r) => {
      const [m, k, n] = dims(r, 3, 1, 40);
      return [{ shape: [m!, k!], layout: pick(r, ['dense', 'transposed', 'sliced'] as Layout[]) },
        { shape: [k!, n!], layout: pick(r, ['dense', 'transposed', 'sliced'] as Layout[]) }];
    },
    fn: (a, b) => a.matmul(b),
    rtol: 1e-4,
  },
  {
    name: 'matmul batched broadcast',
    inputs: (r) => {
      const [bt, m, k, n] = dims(r, 4, 1, 12);
      return [{ shape: [2, bt!, m!, k!], layout: pick(r, layouts) }, { shape: [bt!, k!, n!], layout: pick(r, layouts) }];
    },
    fn: (a, b) => a.matmul(b),
    rtol: 1e-4,
  },
  {
    name: 'matmul rows x matrix, vector',
    inputs: (r) => {
      const [b, t, k, n] = dims(r, 4, 1, 12);
      return [{ shape: [b!, t!, k!] }, { shape: [k!, n!], layout: 'transposed' }, { shape: [n!] }];
    },
    fn: (a, w, v) => a.matmul(w).matmul(v),
    rtol: 1e-4,
  },
  {
    name: 'reshape / permute / expand / slice / select / squeeze / flatten',
    inputs: (r) => [{ shape: [randInt(r, 1, 4), randInt(r, 2, 6), 1, randInt(r, 2, 5)], layout: pick(r, layouts) }],
    fn: (x) => x.permute(3, 0, 2, 1).reshape(x.shape[3]!, -1).expand(2, -1, -1).slice(-1, 1, undefined, 2)
      .select(0, 1).unsqueeze(0).squeeze().flatten().mul(2).add(x.squeeze(2).select(1, 0).contiguous().sum()),
  },
  {
    name: 'concat / stack / split',
    inputs: (r) => {
      const [a, b, c] = dims(r, 3, 1, 6);
      return [{ shape: [a!, b!], layout: pick(r, layouts) }, { shape: [a!, c!] }];
    },
    fn: (x, y) => {
      const j = G.concat([x, y, x], 1);
      const [p, q] = G.split(j, [1, j.shape[1]! - 1], 1);
      return G.stack([p!.sum(1), q!.sum(1)], 1).mul(G.concat([x.sum(1, true), y.sum(1, true)], 1));
    },
  },
  {
    name: 'indexSelect / embedding',
    inputs: (r) => {
      const [n, d, m] = dims(r, 3, 1, 9);
      return [{ shape: [n!, d!], layout: pick(r, ['dense', 'transposed'] as Layout[]) }, { shape: [m!, 2], int: true, hi: n! }];
    },
    fn: (w, ids) => G.embedding(w, ids).add(G.indexSelect(w, 1, G.tensor([0], { dtype: 'int32', backend: w.backend })).sum()),
  },
  {
    name: 'gather',
    inputs: (r) => {
      const [a, n, b, m] = dims(r, 4, 1, 7);
      return [{ shape: [a!, n!, b!], layout: pick(r, layouts) }, { shape: [a!, m!, b!], int: true, hi: n! }];
    },
    fn: (x, idx) => G.gather(x, 1, idx),
  },
  {
    name: 'topk / sort values',
    inputs: (r) => [{ shape: [randInt(r, 1, 5), randInt(r, 3, 30)], layout: pick(r, ['dense', 'transposed'] as Layout[]) }],
    fn: (x) => G.topk(x, 3, -1).values.sum(-1).add(G.sort(x, 0, true).values.sum(0).sum()),
  },
  {
    name: 'linear',
    inputs: (r) => {
      const [b, t, i, o] = dims(r, 4, 1, 20);
      return [{ shape: [b!, t!, i!], layout: pick(r, layouts) }, { shape: [o!, i!] }, { shape: [o!] }];
    },
    fn: (x, w, b) => G.linear(x, w, b),
    rtol: 1e-4,
  },
  {
    name: 'linear + activation (fused bias and activation)',
    inputs: (r) => {
      const [b, t, i, o] = dims(r, 4, 1, 20);
      return [{ shape: [b!, t!, i!], layout: pick(r, layouts) }, { shape: [o!, i!], layout: pick(r, ['dense', 'transposed'] as Layout[]) },
        { shape: [o!], layout: pick(r, ['dense', 'sliced'] as Layout[]) }, { shape: [1], int: true, hi: FUSED_ACTS.length }];
    },
    fn: (x, w, b, act) => G.linear(x, w, b, FUSED_ACTS[act.item()]),
    rtol: 1e-4,
  },
  {
    // the bias needs no gradient: a constant
    name: 'linear + gelu, bias without grad',
    inputs: (r) => {
      const [t, i, o] = dims(r, 3, 1, 20);
      return [{ shape: [t!, i!], layout: pick(r, layouts) }, { shape: [o!, i!] }];
    },
    fn: (x, w) => G.linear(x, w, G.arange(w.shape[0]!, undefined, 1, { backend: w.backend, dtype: w.dtype }).mul(0.3).sub(1), 'gelu'),
    rtol: 1e-4,
  },
  {
    // only the bias needs a gradient: x and the weight are constants
    name: 'linear + gelu_tanh, grad for the bias only, 1-d input',
    inputs: (r) => [{ shape: [randInt(r, 1, 20)], layout: pick(r, ['dense', 'sliced'] as Layout[]) }],
    fn: (b) => {
      const o = b.shape[0]!;
      const x = G.arange(3, undefined, 1, { backend: b.backend, dtype: b.dtype }).mul(0.4).sub(0.5);
      const w = G.arange(o * 3, undefined, 1, { backend: b.backend, dtype: b.dtype }).reshape(o, 3).mul(0.1).sin();
      return G.linear(x, w, b, 'gelu_tanh');
    },
  },
  {
    // only the weight needs a gradient (a first layer on data): the backward skips x's product
    name: 'linear + quick_gelu, grad for the weight only',
    inputs: (r) => {
      const [i, o] = dims(r, 2, 1, 20);
      return [{ shape: [o!, i!], layout: pick(r, ['dense', 'transposed'] as Layout[]) }];
    },
    fn: (w) => {
      const [o, i] = w.shape as [number, number];
      const x = G.arange(5 * i, undefined, 1, { backend: w.backend, dtype: w.dtype }).reshape(5, i).mul(0.37).cos();
      const b = G.arange(o, undefined, 1, { backend: w.backend, dtype: w.dtype }).mul(0.2).sub(0.6);
      return G.linear(x, w, b, 'quick_gelu');
    },
    rtol: 1e-4,
  },
  {
    name: 'addLayerNorm: both outputs',
    inputs: (r) => {
      const n = randInt(r, 2, 70);
      const shape = [randInt(r, 1, 5), randInt(r, 1, 4), n];
      return [{ shape, layout: pick(r, ['dense', 'sliced', 'transposed'] as Layout[]) }, { shape, layout: pick(r, layouts) },
        { shape: [n], lo: 0.5, hi: 1.5 }, { shape: [n] }];
    },
    fn: (x, res, w, b) => {
      const { sum, normed } = G.addLayerNorm(x, res, w, b, 1e-5);
      return G.concat([sum, normed, sum.mul(normed)], -1);
    },
    rtol: 1e-4,
  },
  {
    name: 'addLayerNorm: no affine, only normed used',
    inputs: (r) => {
      const shape = [randInt(r, 1, 6), randInt(r, 2, 40)];
      return [{ shape, layout: pick(r, layouts) }, { shape }];
    },
    fn: (x, res) => G.addLayerNorm(x, res, null, null, 1e-6).normed,
    rtol: 1e-4,
  },
  {
    name: 'layerNorm',
    inputs: (r) => {
      const n = randInt(r, 2, 70);
      return [{ shape: [randInt(r, 1, 5), randInt(r, 1, 4), n], layout: pick(r, ['dense', 'sliced', 'transposed'] as Layout[]) },
        { shape: [n], lo: 0.5, hi: 1.5 }, { shape: [n] }];
    },
    fn: (x, w, b) => G.layerNorm(x, w, b, 1e-5),
    rtol: 1e-4,
  },
  {
    name: 'attention (causal, padding, strided heads)',
    inputs: (r) => {
      const [B, H, Tq, Tk, D] = [randInt(r, 1, 2), randInt(r, 1, 3), randInt(r, 1, 9), randInt(r, 1, 9), randInt(r, 1, 9)];
      return [{ shape: [B, Tq, H, D] }, { shape: [B, Tk, H, D] }, { shape: [B, H, Tk, D], layout: 'sliced' },
        { shape: [B, Tk], int: true, hi: 2 }, { shape: [1], int: true, hi: 2 }];
    },
    // keep key 0 unmasked so no row is empty; q and k arrive as [B, T, H, D] permuted (strided heads)
    fn: (q, k, v, pad, causal) => {
      const keep = pad.add(G.arange(pad.shape[1]!, undefined, 1, { backend: pad.backend }).eq(0)).gt(0);
      return G.scaledDotProductAttention(q.permute(0, 2, 1, 3), k.permute(0, 2, 1, 3), v,
        { causal: causal.item() === 1, keyPadding: keep });
    },
    rtol: 1e-4,
  },
  {
    name: 'conv2d patch embedding',
    inputs: (r) => {
      const p = randInt(r, 1, 4);
      const [B, C, gh, gw, D] = [randInt(r, 1, 2), randInt(r, 1, 3), randInt(r, 1, 3), randInt(r, 1, 3), randInt(r, 1, 8)];
      return [{ shape: [B, C, gh * p, gw * p] }, { shape: [D, C, p, p] }, { shape: [D] }];
    },
    fn: (x, w, b) => G.conv2d(x, w, b),
    rtol: 1e-4,
  },
  {
    name: 'crossEntropy (ignore_index, label smoothing)',
    inputs: (r) => {
      const [n, c] = [randInt(r, 2, 9), randInt(r, 2, 12)];
      return [{ shape: [n, c], lo: -4, hi: 4, layout: pick(r, ['dense', 'transposed'] as Layout[]) }, { shape: [n], int: true, hi: c }];
    },
    fn: (x, t) => {
      const target = t.where(G.arange(t.shape[0]!, undefined, 1, { backend: t.backend }).ne(1), -100);
      return G.crossEntropy(x, target, { labelSmoothing: 0.1 }).add(G.crossEntropy(x, t, { reduction: 'sum' }));
    },
    rtol: 1e-4,
  },
  {
    name: 'crossEntropy over [N, C, T]',
    inputs: (r) => {
      const [n, c, t] = [randInt(r, 1, 4), randInt(r, 2, 6), randInt(r, 1, 5)];
      return [{ shape: [n, c, t] }, { shape: [n, t], int: true, hi: c }];
    },
    fn: (x, t) => G.crossEntropy(x, t, { reduction: 'none' }),
    rtol: 1e-4,
  },
  {
    name: 'binaryCrossEntropyWithLogits',
    inputs: (r) => {
      const s = dims(r, 2, 1, 8);
      return [{ shape: s, lo: -8, hi: 8, layout: pick(r, layouts) }, { shape: s, lo: 0, hi: 1 }, { shape: [s[1]!], lo: 0.5, hi: 2 }];
    },
    fn: (x, y, pw) => G.binaryCrossEntropyWithLogits(x, y).add(G.binaryCrossEntropyWithLogits(x, y, { posWeight: pw, reduction: 'sum' })),
  },
  {
    name: 'dropout (seeded)',
    inputs: (r) => [{ shape: dims(r, 2, 1, 20), layout: pick(r, layouts) }],
    fn: (x) => G.dropout(x, 0.3, true, new Generator(7)),
  },
];

const trials = 3;
const native = hasBackend('native');

for (const c of cases) {
  test(`op ${c.name}: finite differences (float64, reference)`, { skip: c.noGrad }, () => {
    const r = rng(1234 + c.name.length);
    for (let t = 0; t < trials; t++) {
      const specs = c.inputs(r);
      const datas = specs.map((s) => specData(r, s));
      gradCheck(c, specs, datas, t);
    }
  });
  test(`op ${c.name}: native vs reference (float32)`, { skip: !native && 'native addon not built' }, () => {
    const r = rng(99 + c.name.length);
    for (let t = 0; t < trials * 2; t++) {
      const specs = c.inputs(r);
      const datas = specs.map((s) => specData(r, s));
      crossBackend(c, specs, datas, randomData(r, 'float64', 100000, -1, 1) as Float64Array);
    }
  });
}
