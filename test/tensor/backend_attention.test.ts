// Native fused attention (native/attention.cc) against the reference backend: forward output and
// log-sum-exp, and all three gradients, over masks, odd sizes and strided q/k/v. The whole file
// runs a second time in a child process with GLIMPSE_NO_AVX2=1 to cover the portable kernels.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AttentionArgs, Backend, Storage, View } from '../../src/tensor/backend.js';
import { contiguousStrides, numel } from '../../src/tensor/backend.js';
import { ReferenceBackend } from '../../src/tensor/backends/reference.js';
import { createNativeBackend } from '../../src/tensor/backends/native.js';
import { loadAddon } from '../../src/tensor/backends/native/addon.js';
import { assertClose, randInt, randomData, rng, storageData, rerunTestFile } from '../helpers.js';

const native = createNativeBackend();
const reference = new ReferenceBackend();
const skip = native ? false : 'the native addon is not built';
const portable = process.env.GLIMPSE_NO_AVX2 === '1';

/** How a [B, H, T, D] operand sits in memory. */
type Layout = 'dense' | 'bthd' | 'padded' | 'headBroadcast' | 'lastStrided';

/** The same random [B, H, T, D] data placed as `layout` says on each backend. */
function operand(r: () => number, backends: Backend[], shape: [number, number, number, number], layout: Layout): View[] {
  const [B, H, T, D] = shape;
  let alloc: number;
  let strides: number[];
  let offset = 0;
  switch (layout) {
    case 'dense':
      alloc = B * H * T * D;
      strides = contiguousStrides(shape);
      break;
    case 'bthd': // a [B, T, H, D] projection viewed as [B, H, T, D]
      alloc = B * T * H * D;
      strides = [T * H * D, D, H * D, 1];
      break;
    case 'padded': // rows of a wider buffer, starting mid-buffer
      alloc = B * H * T * (D + 3) + 2;
      strides = [H * T * (D + 3), T * (D + 3), D + 3, 1];
      offset = 2;
      break;
    case 'headBroadcast': // one head's data shared by all heads
      alloc = B * T * D;
      strides = [T * D, 0, D, 1];
      break;
    case 'lastStrided': // not supported natively: must fall back to the reference kernel
      alloc = B * H * T * D * 2;
      strides = [H * T * D * 2, T * D * 2, D * 2, 2];
      break;
  }
  const data = randomData(r, 'float32', alloc, -1, 1);
  return backends.map((b) => ({ storage: b.fromHost(data, 'float32'), offset, shape: [...shape], strides }));
}

interface Case {
  B: number; H: number; Tq: number; Tk: number; D: number; Dv: number;
  causal: boolean;
  /** 'none', random padding, or padding with whole batch rows masked */
  padding: 'none' | 'random' | 'someRowsEmpty';
  /** the mask's dtype (default bool); 'sharedRow' is one float32 row broadcast over the batch */
  maskKind?: 'bool' | 'int32' | 'float32' | 'sharedRow';
  layouts: [Layout, Layout, Layout];
  gLayout?: Layout;
}

function dense(s: Storage, shape: number[]): View {
  return { storage: s, offset: 0, shape, strides: contiguousStrides(shape) };
}

function runCase(c: Case, seed: number): void {
  const r = rng(seed);
  const backends: Backend[] = [native!, reference];
  const [qn, qr] = operand(r, backends, [c.B, c.H, c.Tq, c.D], c.layouts[0]);
  const [kn, kr] = operand(r, backends, [c.B, c.H, c.Tk, c.D], c.layouts[1]);
  const [vn, vr] = operand(r, backends, [c.B, c.H, c.Tk, c.Dv], c.layouts[2]);
  let pads: (View | null)[] = [null, null];
  if (c.padding !== 'none') {
    const mask = new Uint8Array(c.B * c.Tk);
    for (let i = 0; i < mask.length; i++) mask[i] = r() < 0.7 ? 1 : 0;
    // Batch 0 masks only key 0 (so with causal, query 0 sees no key); the last batch sees no keys.
    if (c.padding === 'someRowsEmpty') {
      mask.fill(1, 0, c.Tk);
      mask[0] = 0;
      if (c.B > 1) mask.fill(0, (c.B - 1) * c.Tk, c.B * c.Tk);
    }
    const kind = c.maskKind ?? 'bool';
    if (kind === 'bool') pads = backends.map((b) => dense(b.fromHost(mask, 'bool'), [c.B, c.Tk]));
    else if (kind === 'int32') pads = backends.map((b) => dense(b.fromHost(Int32Array.from(mask, (x) => x * 7), 'int32'), [c.B, c.Tk]));
    else if (kind === 'float32') pads = backends.map((b) => dense(b.fromHost(Float32Array.from(mask, (x) => x * 0.5), 'float32'), [c.B, c.Tk]));
    else {
      const row = Float32Array.from(mask.subarray(0, c.Tk));
      pads = backends.map((b) => ({ storage: b.fromHost(row, 'float32'), offset: 0, shape: [c.B, c.Tk], strides: [0, 1] }));
    }
  }
  const scale = 1 / Math.sqrt(c.D);
  const args = (q: View, k: View, v: View, pad: View | null): AttentionArgs =>
    ({ q, k, v, keyPadding: pad, causal: c.causal, scale });
  const an = args(qn!, kn!, vn!, pads[0]!);
  const ar = args(qr!, kr!, vr!, pads[1]!);
  const what = `${JSON.stringify(c)} seed ${seed}`;

  const outShape = [c.B, c.H, c.Tq, c.Dv];
  const lseShape = [c.B, c.H, c.Tq];
  const outs = backends.map((b) => [b.alloc('float32', numel(outShape)), b.alloc('float32', numel(lseShape))]);
  for (const s of outs[0]!) (storageData(s) as Float32Array).fill(Number.NaN);
  native!.attention(an, outs[0]![0]!, outs[0]![1]!);
  reference.attention(ar, outs[1]![0]!, outs[1]![1]!);
  const oN = storageData(outs[0]![0]!) as Float32Array;
  const oR = storageData(outs[1]![0]!) as Float32Array;
  assertClose(oN, oR, 2e-5, 2e-7, `out ${what}`);
  assertClose(storageData(outs[0]![1]!) as Float32Array, storageData(outs[1]![1]!) as Float32Array, 2e-6, 2e-7, `lse ${what}`);

  const [gn, gr] = operand(r, backends, [c.B, c.H, c.Tq, c.Dv], c.gLayout ?? 'dense');
  const grads = backends.map((b) => [
    b.alloc('float32', c.B * c.H * c.Tq * c.D), b.alloc('float32', c.B * c.H * c.Tk * c.D),
    b.alloc('float32', c.B * c.H * c.Tk * c.Dv),
  ]);
  // Garbage in the outputs must be overwritten, not accumulated into.
  for (const s of grads[0]!) (storageData(s) as Float32Array).fill(Number.NaN);
  native!.attentionGrad(an, dense(outs[0]![0]!, outShape), dense(outs[0]![1]!, lseShape), gn!, grads[0]![0]!, grads[0]![1]!, grads[0]![2]!);
  reference.attentionGrad(ar, dense(outs[1]![0]!, outShape), dense(outs[1]![1]!, lseShape), gr!, grads[1]![0]!, grads[1]![1]!, grads[1]![2]!);
  const names = ['dq', 'dk', 'dv'];
  for (let t = 0; t < 3; t++) {
    const a = storageData(grads[0]![t]!) as Float32Array;
    const e = storageData(grads[1]![t]!) as Float32Array;
    let max = 0;
    for (const x of e) max = Math.max(max, Math.abs(x));
    assertClose(a, e, 2e-5, 4e-6 * max + 1e-8, `${names[t]} ${what}`);
  }
}

test('the portable path is selected when GLIMPSE_NO_AVX2=1', { skip }, () => {
  const addon = loadAddon()!;
  if (portable) assert.equal(addon.hasAvx2Fma!(), false);
});

test('attention matches the reference on random shapes, masks and layouts', { skip }, () => {
  const r = rng(7);
  const layouts: Layout[] = ['dense', 'bthd', 'padded', 'headBroadcast'];
  for (let t = 0; t < 40; t++) {
    const pick = <T>(xs: T[]) => xs[randInt(r, 0, xs.length - 1)]!;
    const c: Case = {
      B: randInt(r, 1, 3), H: randInt(r, 1, 3), Tq: pick([1, 2, 5, 9, 17, 33]), Tk: pick([1, 3, 8, 13, 24, 37]),
      D: pick([1, 3, 8, 16, 19]), Dv: pick([1, 5, 8, 16, 23]), causal: r() < 0.5,
      padding: pick(['none', 'random', 'someRowsEmpty'] as const), maskKind: pick(['bool', 'int32', 'float32', 'sharedRow'] as const),
      layouts: [pick(layouts), pick(layouts), pick(layouts)], gLayout: pick(layouts),
    };
    runCase(c, 100 + t);
  }
});

test('attention at model shapes: ViT-like, causal text with padding, Tq != Tk', { skip }, () => {
  runCase({ B: 2, H: 2, Tq: 50, Tk: 50, D: 64, Dv: 64, causal: false, padding: 'none', layouts: ['bthd', 'bthd', 'bthd'] }, 1);
  runCase({ B: 3, H: 2, Tq: 77, Tk: 77, D: 32, Dv: 32, causal: true, padding: 'someRowsEmpty', layouts: ['dense', 'dense', 'dense'] }, 2);
  runCase({ B: 1, H: 1, Tq: 130, Tk: 40, D: 16, Dv: 24, causal: true, padding: 'random', layouts: ['padded', 'dense', 'bthd'] }, 3);
  runCase({ B: 1, H: 2, Tq: 20, Tk: 100, D: 16, Dv: 8, causal: true, padding: 'none', layouts: ['dense', 'padded', 'dense'] }, 4);
  // Longer rows than one score block holds (blocks shrink below 64 rows past Tk = 1024).
  runCase({ B: 1, H: 1, Tq: 70, Tk: 1100, D: 4, Dv: 4, causal: false, padding: 'random', layouts: ['dense', 'dense', 'dense'] }, 5);
});

test('attention falls back to the reference for a non-unit last stride', { skip }, () => {
  runCase({ B: 2, H: 2, Tq: 6, Tk: 7, D: 5, Dv: 3, causal: true, padding: 'random', layouts: ['lastStrided', 'dense', 'lastStrided'] }, 9);
});

test('a NaN score makes its row NaN on both backends (it is not a masked row, whose output is 0)', { skip }, () => {
  const shape = [1, 1, 3, 4];
  for (const b of [native!, reference]) {
    const q = Float32Array.from({ length: 12 }, (_, i) => (i % 5) / 5);
    q[4] = Number.NaN; // query row 1
    const view = (data: Float32Array): View => dense(b.fromHost(data, 'float32'), shape);
    const out = b.alloc('float32', 12), lse = b.alloc('float32', 3);
    b.attention({ q: view(q), k: view(q.map((x, i) => (i === 4 ? 0.5 : x))), v: view(Float32Array.from({ length: 12 }, (_, i) => i)),
      keyPadding: null, causal: false, scale: 1 }, out, lse);
    const o = storageData(out) as Float32Array;
    assert.ok(o.slice(4, 8).every(Number.isNaN), `${b.name}: row 1 ${Array.from(o.slice(4, 8))}`);
    assert.ok(o.slice(0, 4).every(Number.isFinite) && o.slice(8).every(Number.isFinite), `${b.name}: other rows`);
    assert.ok(Number.isNaN((storageData(lse) as Float32Array)[1]!), `${b.name}: lse of row 1`);
  }
});

test('attention rejects views that reach outside their arrays and short outputs', { skip }, () => {
  const b = native!;
  const shape = [1, 2, 4, 8];
  const ok = () => dense(b.alloc('float32', 64), shape);
  const short: View = { storage: b.alloc('float32', 63), offset: 0, shape, strides: contiguousStrides(shape) };
  const shifted: View = { ...ok(), offset: 1 };
  const args = (q: View): AttentionArgs => ({ q, k: ok(), v: ok(), keyPadding: null, causal: false, scale: 1 });
  assert.throws(() => b.attention(args(short), b.alloc('float32', 64), b.alloc('float32', 8)), /outside/);
  assert.throws(() => b.attention(args(shifted), b.alloc('float32', 64), b.alloc('float32', 8)), /outside/);
  assert.throws(() => b.attention(args(ok()), b.alloc('float32', 63), b.alloc('float32', 8)), /out must hold 64/);
  assert.throws(() => b.attention(args(ok()), b.alloc('float32', 64), b.alloc('float32', 7)), /lse must hold 8/);
  const lse = dense(b.alloc('float32', 8), [1, 2, 4]);
  assert.throws(() => b.attentionGrad(args(ok()), ok(), lse, short, b.alloc('float32', 64), b.alloc('float32', 64),
    b.alloc('float32', 64)), /outside/);
  assert.throws(() => b.attentionGrad(args(ok()), ok(), lse, ok(), b.alloc('float32', 64), b.alloc('float32', 10),
    b.alloc('float32', 64)), /dk must hold 64/);
  const k3 = dense(b.alloc('float32', 64), [1, 2, 4, 8]);
  const v3 = dense(b.alloc('float32', 48), [1, 2, 3, 8]);
  assert.throws(() => b.attention({ q: ok(), k: k3, v: v3, keyPadding: null, causal: false, scale: 1 },
    b.alloc('float32', 64), b.alloc('float32', 8)), /do not fit/);
});

if (!portable) {
  test('the portable kernels (child process with GLIMPSE_NO_AVX2=1)', { skip }, () => {
    rerunTestFile(import.meta.url, { GLIMPSE_NO_AVX2: '1' });
  });
}
