// The fused kernels (native/fused.cc) against the ops they replace, same run, same threads:
//   - the linear kernel (the product with the bias and activation as its epilogue) vs matmul then
//     biasActivation, at 800 and 50 rows (a ViT-B/32 batch of 16, and of 1) through fc1 (768 -> 3072,
//     gelu) and fc2 (3072 -> 768, bias only);
//   - linear + GELU: matmul, add bias, gelu (three ops) vs linear(x, w, b, 'gelu'), at 800 x 768 -> 3072
//     (a ViT-B/32 batch of 16 through fc1), and a plain linear (bias only) at 800 x 768 -> 768;
//   - residual add + layer norm: add then layerNorm vs addLayerNorm, at 800 x 768 and 8192 x 768;
//   - a whole pre-LN transformer block (ViT-B: 768 wide, 12 heads, MLP 3072) at [16, 50, 768],
//     composed as before the fusions vs TransformerBlock.forward.
// The forward kernels alone on preallocated storages (what the fusion saves in memory passes),
// then forward and forward+backward through the op layer (autograd and the allocation of every
// result included), on the native backend. Figures are milliseconds per call, the best over
// rounds that time each path in turn (the machine may be shared: the best is the least
// disturbed); op-level calls are timed one by one after a full garbage collection, so a
// collection that one path's garbage triggers does not land in the other's time. speedup =
// unfused / fused.
//   npm run bench -- fused [--rounds N] [--threads T] [--no-block]
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Storage, View } from '../src/tensor/backend.js';
import { contiguousStrides } from '../src/tensor/backend.js';
import { defaultBackend, getBackend } from '../src/tensor/device.js';
import { loadAddon } from '../src/tensor/backends/native/addon.js';
import { Generator, randn } from '../src/tensor/random.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { matmul } from '../src/tensor/ops/linalg.js';
import { addLayerNorm, layerNorm, linear, scaledDotProductAttention } from '../src/tensor/ops/nn.js';
import type { Linear } from '../src/nn/layers.js';
import { TransformerBlock } from '../src/nn/transformer.js';
import { flag, timeInterleaved } from './lib/timing.js';

// The op-level paths allocate every result, and when the garbage collector runs depends on what
// ran before: each call is timed alone, after a full collection (outside the timed region).
v8.setFlagsFromString('--expose-gc');
const collectGarbage = vm.runInNewContext('gc') as () => void;

/** As timeInterleaved, but each call timed alone after a collection; ~100 ms of calls per round. */
function timeCalls(fns: (() => void)[], rounds: number): number[] {
  const once = (fn: () => void) => {
    collectGarbage();
    const t0 = process.hrtime.bigint();
    fn();
    return Number(process.hrtime.bigint() - t0) / 1e9;
  };
  const calls = fns.map((fn) => {
    fn(); // warm-up
    return Math.max(1, Math.round(0.1 / Math.max(once(fn), 1e-6)));
  });
  const best = fns.map(() => Infinity);
  for (let r = 0; r < rounds; r++) {
    fns.forEach((fn, k) => {
      for (let c = 0; c < calls[k]!; c++) best[k] = Math.min(best[k]!, once(fn));
    });
  }
  return best;
}

/** Unfused vs fused, forward and forward+backward; the two must agree to float rounding. */
function compare(name: string, unfused: () => Tensor, fused: () => Tensor, grad: Tensor, params: Tensor[], rounds: number) {
  const a = unfused().toArray();
  const b = fused().toArray();
  let maxErr = 0;
  let maxRef = 0;
  a.forEach((v, i) => {
    maxErr = Math.max(maxErr, Math.abs(v - b[i]!));
    maxRef = Math.max(maxRef, Math.abs(v));
  });
  if (!(maxErr <= 1e-5 * maxRef)) throw new Error(`${name}: the fused path differs from the unfused one (${maxErr} of ${maxRef})`);
  const step = (f: () => Tensor) => () => {
    f().backward(grad);
    for (const p of params) p.zeroGrad();
  };
  const [uf, ff, ub, fb] = timeCalls([() => void unfused(), () => void fused(), step(unfused), step(fused)], rounds);
  const ms = (s: number) => +(s * 1e3).toFixed(3);
  return {
    name,
    maxRelDiff: +(maxErr / maxRef).toExponential(2),
    forward: { unfusedMs: ms(uf!), fusedMs: ms(ff!), speedup: +(uf! / ff!).toFixed(3) },
    forwardBackward: { unfusedMs: ms(ub!), fusedMs: ms(fb!), speedup: +(ub! / fb!).toFixed(3) },
  };
}

/** The forward kernels alone, on preallocated storages: what the fusion saves in memory passes. */
function kernelBench(rounds: number) {
  const be = getBackend('native');
  const rand = (k: number, lo = -1, hi = 1) => be.fromHost(Float32Array.from({ length: k }, () => lo + (hi - lo) * Math.random()), 'float32');
  const view = (s: Storage, shape: number[]): View => ({ storage: s, offset: 0, shape, strides: contiguousStrides(shape) });
  const out: object[] = [];
  for (const [rows, k, n, act] of [[800, 768, 3072, 'gelu_erf'], [800, 3072, 768, null], [50, 768, 3072, 'gelu_erf'],
    [50, 3072, 768, null]] as const) {
    const x = view(rand(rows * k), [rows, k]);
    const w = view(rand(n * k, -0.05, 0.05), [n, k]);
    const bias = view(rand(n), [n]);
    const y = be.alloc('float32', rows * n);
    const product = be.alloc('float32', rows * n);
    const [u, f] = timeInterleaved([
      () => {
        be.matmul({ ...x, shape: [1, rows, k], strides: [0, k, 1] }, { ...w, shape: [1, k, n], strides: [0, 1, k] }, product);
        be.biasActivation(view(product, [rows, n]), bias, act, rows, n, null, product);
      },
      () => be.linear(x, w, bias, act, null, y),
    ], rounds);
    out.push({ name: `linear${act ? ' + gelu' : ''} ${rows} x ${k} -> ${n}: matmul, biasActivation vs linear`,
      unfusedMs: +(u! * 1e3).toFixed(3), fusedMs: +(f! * 1e3).toFixed(3), speedup: +(u! / f!).toFixed(3) });
  }
  {
    const [rows, n] = [800, 3072];
    const x = view(rand(rows * n, -3, 3), [rows, n]);
    const bias = view(rand(n), [n]);
    const pre = be.alloc('float32', rows * n);
    const y = be.alloc('float32', rows * n);
    const [u, f] = timeInterleaved([
      () => {
        be.binary('add', x, { ...bias, shape: [rows, n], strides: [0, 1] }, pre);
        be.unary('gelu_erf', view(pre, [rows, n]), y);
      },
      () => be.biasActivation(x, bias, 'gelu_erf', rows, n, pre, y),
    ], rounds);
    out.push({ name: `bias + gelu ${rows} x ${n}: add, gelu vs biasActivation`, unfusedMs: +(u! * 1e3).toFixed(3),
      fusedMs: +(f! * 1e3).toFixed(3), speedup: +(u! / f!).toFixed(3) });
  }
  for (const [rows, n] of [[800, 768], [8192, 768]] as const) {
    const x = view(rand(rows * n), [rows, n]);
    const r = view(rand(rows * n), [rows, n]);
    const gamma = view(rand(n, 0.5, 1.5), [n]);
    const beta = view(rand(n), [n]);
    const sum = be.alloc('float32', rows * n);
    const y = be.alloc('float32', rows * n);
    const mean = be.alloc('float32', rows);
    const rstd = be.alloc('float32', rows);
    const [u, f] = timeInterleaved([
      () => {
        be.binary('add', x, r, sum);
        be.layerNorm(view(sum, [rows, n]), gamma, beta, rows, n, 1e-5, y, mean, rstd);
      },
      () => be.addLayerNorm(x, r, gamma, beta, rows, n, 1e-5, sum, y, mean, rstd),
    ], rounds);
    out.push({ name: `add + layerNorm ${rows} x ${n}: add, layerNorm vs addLayerNorm`, unfusedMs: +(u! * 1e3).toFixed(3),
      fusedMs: +(f! * 1e3).toFixed(3), speedup: +(u! / f!).toFixed(3) });
  }
  return out;
}

function param(shape: number[], g: Generator, scale = 1): Tensor {
  return randn(shape, { generator: g, backend: getBackend('native') }).mul(scale).setRequiresGrad(true);
}

function linearBench(rows: number, k: number, n: number, act: 'gelu' | null, rounds: number, g: Generator) {
  const x = param([rows, k], g);
  const w = param([n, k], g, 1 / Math.sqrt(k));
  const b = param([n], g);
  const grad = randn([rows, n], { generator: g, backend: getBackend('native') });
  const unfused = () => {
    const y = matmul(x, w.transpose(0, 1)).add(b);
    return act ? y.gelu() : y;
  };
  return compare(`linear${act ? ' + gelu' : ''} ${rows} x ${k} -> ${n}`, unfused, () => linear(x, w, b, act), grad, [x, w, b], rounds);
}

function normBench(rows: number, n: number, rounds: number, g: Generator) {
  const x = param([rows, n], g);
  const r = param([rows, n], g);
  const w = param([n], g, 0.1).add(1).detach().setRequiresGrad(true);
  const b = param([n], g, 0.1);
  const grad = randn([rows, n], { generator: g, backend: getBackend('native') });
  // Both results feed the loss, as in a block: the sum continues the residual stream.
  const unfused = () => {
    const s = x.add(r);
    return layerNorm(s, w, b).add(s);
  };
  const fused = () => {
    const { sum, normed } = addLayerNorm(x, r, w, b);
    return normed.add(sum);
  };
  return compare(`add + layerNorm ${rows} x ${n}`, unfused, fused, grad, [x, r, w, b], rounds);
}

/** The block's forward as it was composed before the fusions: separate add, bias and activation ops. */
function blockBefore(block: TransformerBlock, x: Tensor): Tensor {
  const lin = (t: Tensor, l: Linear) => matmul(t, l.weight.transpose(0, 1)).add(l.bias!);
  const [B, T, D] = x.shape as [number, number, number];
  const { numHeads } = block;
  const heads = (t: Tensor) => t.reshape(B, T, numHeads, D / numHeads).permute(0, 2, 1, 3);
  const a = block.attn;
  const hx = block.ln1.forward(x);
  const o = scaledDotProductAttention(heads(lin(hx, a.qProj)), heads(lin(hx, a.kProj)), heads(lin(hx, a.vProj)));
  const h = x.add(lin(o.permute(0, 2, 1, 3).reshape(B, T, D), a.outProj));
  return h.add(lin(lin(block.ln2.forward(h), block.mlp.fc1).gelu(), block.mlp.fc2));
}

function blockBench(rounds: number, g: Generator) {
  const block = new TransformerBlock(768, 12, { generator: g });
  const x = param([16, 50, 768], g);
  const grad = randn([16, 50, 768], { generator: g, backend: getBackend('native') });
  return compare('pre-LN block [16, 50, 768], 12 heads, MLP 3072', () => blockBefore(block, x), () => block.forward(x), grad,
    [x, ...block.parameters()], rounds);
}

export async function run(args: string[]): Promise<object> {
  const addon = loadAddon();
  if (!addon || defaultBackend().name !== 'native') throw new Error('fused bench: the native backend is not the default (is the addon built?)');
  const threads = flag(args, '--threads', 0);
  if (threads > 0) addon.setNumThreads!(threads);
  const rounds = flag(args, '--rounds', 5);
  const g = new Generator(1);
  return {
    threads: addon.numThreads!(),
    avx2: addon.hasAvx2Fma!(),
    timing: `best of ${rounds} interleaved rounds; speedup = unfused / fused`,
    kernels: kernelBench(rounds),
    ops: [
      linearBench(800, 768, 3072, 'gelu', rounds, g),
      linearBench(800, 768, 768, null, rounds, g),
      normBench(800, 768, rounds, g),
      normBench(8192, 768, rounds, g),
    ],
    block: args.includes('--no-block') ? null : blockBench(Math.max(2, Math.ceil(rounds / 2)), g),
  };
}
