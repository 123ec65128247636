// Fused attention (native/attention.cc) against the same computation composed from separate
// native kernels (matmul, softmax, softmaxGrad), same run, same threads.
//   npm run bench -- attention [--rounds R] [--repeats N] [--threads T]
// Each round times the fused and the composed path back to back; a figure is the best round's
// median, so a burst of load from other processes during one round does not decide a ratio.
// GFLOP/s count model FLOPs: forward 2·B·H·Tq·Tk·(D + Dv); backward twice that (the fused
// backward's recomputation of the scores is not counted). The composed path gets the softmax
// scale folded into its copies of q and k outside the timed region, so it is not charged for an
// elementwise pass the fused kernel does inside: the ratios are conservative.
import type { AttentionArgs, Storage, View } from '../src/tensor/backend.js';
import { contiguousStrides } from '../src/tensor/backend.js';
import { type NativeBackend, createNativeBackend } from '../src/tensor/backends/native.js';
import { loadAddon } from '../src/tensor/backends/native/addon.js';
import { flag, timeIt } from './lib/timing.js';

const SHAPES = [
  { name: 'ViT-B/32 224px', B: 16, H: 12, T: 50, D: 64 },
  { name: 'ViT-B/16 384px-like', B: 2, H: 12, T: 577, D: 64 },
];

function view(storage: Storage, shape: number[], strides = contiguousStrides(shape), offset = 0): View {
  return { storage, offset, shape, strides };
}

/** Median seconds per call, with enough calls per timed run to last ~30 ms. */
function time(fn: () => void, repeats: number): number {
  const t0 = process.hrtime.bigint();
  fn();
  const once = Number(process.hrtime.bigint() - t0) / 1e9;
  return timeIt(fn, { inner: Math.max(1, Math.round(0.03 / Math.max(once, 1e-6))), repeats });
}

function shapeBench(be: NativeBackend, s: (typeof SHAPES)[number], rounds: number, repeats: number) {
  const { B, H, T, D } = s;
  const BH = B * H;
  const rand = (n: number, mul = 1) => be.fromHost(Float32Array.from({ length: n }, () => (Math.random() * 2 - 1) * mul), 'float32');
  const n = BH * T * D;
  const scale = 1 / Math.sqrt(D);
  const qData = Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
  const kData = Float32Array.from({ length: n }, () => Math.random() * 2 - 1);
  const q = be.fromHost(qData, 'float32');
  const k = be.fromHost(kData, 'float32');
  const v = rand(n);
  const gOut = rand(n);
  const shape4 = [B, H, T, D];
  const args: AttentionArgs = { q: view(q, shape4), k: view(k, shape4), v: view(v, shape4), keyPadding: null, causal: false, scale };
  const out = be.alloc('float32', n);
  const lse = be.alloc('float32', BH * T);
  const dq = be.alloc('float32', n);
  const dk = be.alloc('float32', n);
  const dv = be.alloc('float32', n);
  const fwd = () => be.attention(args, out, lse);
  const fwdBwd = () => {
    fwd();
    be.attentionGrad(args, view(out, shape4), view(lse, [B, H, T]), view(gOut, shape4), dq, dk, dv);
  };

  // Composed: S = (q·scale) k^T; P = softmax(S); O = P v; and the backward through the same ops.
  const qs = be.fromHost(qData.map((x) => x * scale), 'float32');
  const ks = be.fromHost(kData.map((x) => x * scale), 'float32');
  const bhtd = (st: Storage) => view(st, [BH, T, D]);
  const bhdt = (st: Storage) => view(st, [BH, D, T], [T * D, 1, D]); // transposed, read in place
  const S = be.alloc('float32', BH * T * T);
  const P = be.alloc('float32', BH * T * T);
  const dP = be.alloc('float32', BH * T * T);
  const dS = be.alloc('float32', BH * T * T);
  const O = be.alloc('float32', n);
  const cdq = be.alloc('float32', n);
  const cdk = be.alloc('float32', n);
  const cdv = be.alloc('float32', n);
  const tt = (st: Storage) => view(st, [BH, T, T]);
  const ttT = (st: Storage) => view(st, [BH, T, T], [T * T, 1, T]);
  const cFwd = () => {
    be.matmul(bhtd(qs), bhdt(k), S);
    be.softmax(tt(S), BH * T, T, false, P);
    be.matmul(tt(P), bhtd(v), O);
  };
  const cFwdBwd = () => {
    cFwd();
    be.matmul(ttT(P), bhtd(gOut), cdv); // dV = P^T dO
    be.matmul(bhtd(gOut), bhdt(v), dP); // dP = dO V^T
    be.softmaxGrad(tt(P), tt(dP), BH * T, T, false, dS);
    be.matmul(tt(dS), bhtd(ks), cdq); // dQ = scale dS K
    be.matmul(ttT(dS), bhtd(qs), cdk); // dK = scale dS^T Q
  };

  // The two paths must agree before their times mean anything.
  fwdBwd();
  cFwdBwd();
  const maxDiff = (a: Storage, b: Storage) => {
    const x = be.toHost(view(a, [n])) as Float32Array;
    const y = be.toHost(view(b, [n])) as Float32Array;
    let m = 0;
    let ref = 0;
    for (let i = 0; i < n; i++) {
      m = Math.max(m, Math.abs(x[i]! - y[i]!));
      ref = Math.max(ref, Math.abs(y[i]!));
    }
    return m / ref;
  };
  const agreement = Math.max(maxDiff(out, O), maxDiff(dq, cdq), maxDiff(dk, cdk), maxDiff(dv, cdv));
  if (!(agreement < 1e-4)) throw new Error(`bench attention: fused and composed results differ (${agreement})`);

  const flopFwd = 2 * BH * T * T * (D + D);
  const flopFwdBwd = 3 * flopFwd;
  let [tf, tfb, cf, cfb] = [Infinity, Infinity, Infinity, Infinity];
  for (let r = 0; r < rounds; r++) {
    tf = Math.min(tf, time(fwd, repeats));
    cf = Math.min(cf, time(cFwd, repeats));
    tfb = Math.min(tfb, time(fwdBwd, repeats));
    cfb = Math.min(cfb, time(cFwdBwd, repeats));
  }
  const ms = (t: number) => +(t * 1e3).toFixed(3);
  const gf = (flop: number, t: number) => +(flop / t / 1e9).toFixed(1);
  return {
    shape: `${s.name}: B=${B} H=${H} T=${T} D=${D}`,
    fused: { forwardMs: ms(tf), forwardGflops: gf(flopFwd, tf), forwardBackwardMs: ms(tfb), forwardBackwardGflops: gf(flopFwdBwd, tfb) },
    composed: { forwardMs: ms(cf), forwardGflops: gf(flopFwd, cf), forwardBackwardMs: ms(cfb), forwardBackwardGflops: gf(flopFwdBwd, cfb) },
    speedup: { forward: +(cf / tf).toFixed(2), forwardBackward: +(cfb / tfb).toFixed(2) },
    maxRelDifference: agreement,
  };
}

export async function run(args: string[]): Promise<object> {
  const be = createNativeBackend();
  const addon = loadAddon();
  if (!be || !addon) throw new Error('bench attention: the native addon is not built');
  const threads = flag(args, '--threads', 2);
  addon.setNumThreads!(threads);
  const rounds = flag(args, '--rounds', 3);
  const repeats = flag(args, '--repeats', 5);
  return {
    threads,
    note: 'speedup = composed time / fused time, measured in this run; composed = matmul + softmax + matmul (and softmaxGrad + 4 matmuls backward) through the native backend',
    results: SHAPES.map((s) => shapeBench(be, s, rounds, repeats)),
  };
}
