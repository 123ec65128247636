// Native optimizer updates (native/optim.cc) against the reference backend. They evaluate the same
// expressions in double and round each stored value once, so the results must be bit-identical.
// The whole file runs a second time in a child process with GLIMPSE_NO_AVX2=1.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AdamWStep, Backend, SgdStep, Storage } from '../../src/tensor/backend.js';
import { ReferenceBackend } from '../../src/tensor/backends/reference.js';
import { createNativeBackend } from '../../src/tensor/backends/native.js';
import { loadAddon } from '../../src/tensor/backends/native/addon.js';
import { randomData, rng, storageData, rerunTestFile } from '../helpers.js';

const native = createNativeBackend();
const reference = new ReferenceBackend();
const skip = native ? false : 'the native addon is not built';
const portable = process.env.GLIMPSE_NO_AVX2 === '1';

// Tails of every length mod 4 and 8, and sizes large enough to run on several threads.
const LENGTHS = [0, 1, 3, 4, 7, 8, 9, 17, 1000, 70001];

function sameBits(a: Storage, b: Storage, what: string): void {
  const x = new Uint32Array((storageData(a) as Float32Array).buffer);
  const y = new Uint32Array((storageData(b) as Float32Array).buffer);
  assert.equal(x.length, y.length);
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== y[i]) {
      const fx = (storageData(a) as Float32Array)[i];
      const fy = (storageData(b) as Float32Array)[i];
      assert.fail(`${what}: element ${i} is ${fx}, the reference has ${fy}`);
    }
  }
}

/** The same random float32 data on both backends. */
function pair(r: () => number, n: number, lo: number, hi: number): Storage[] {
  const data = randomData(r, 'float32', n, lo, hi);
  // Exact zeros and tiny values exercise eps and the sqrt of 0.
  for (let i = 0; i < n; i += 13) (data as Float32Array)[i] = i % 26 === 0 ? 0 : 1e-30;
  return [native!, reference].map((b: Backend) => b.fromHost(data, 'float32'));
}

test('the portable path is selected when GLIMPSE_NO_AVX2=1', { skip }, () => {
  if (portable) assert.equal(loadAddon()!.hasAvx2Fma!(), false);
});

test('adamw is bit-identical to the reference over several steps', { skip }, () => {
  const r = rng(11);
  for (const n of LENGTHS) {
    const [pn, pr] = pair(r, n, -1, 1);
    const [mn, mr] = pair(r, n, -0.1, 0.1);
    const [vn, vr] = pair(r, n, 0, 0.01);
    const beta1 = 0.9 - 0.1 * r();
    const beta2 = 0.999 - 0.01 * r();
    for (let t = 1; t <= 3; t++) {
      const [gn, gr] = pair(r, n, -3, 3);
      const hp: AdamWStep = {
        lr: 1e-3 * (1 + r()), beta1, beta2, eps: t === 2 ? 1e-6 : 1e-8, weightDecay: t === 3 ? 0 : 0.05 * r(),
        biasCorrection1: 1 - beta1 ** t, biasCorrection2: 1 - beta2 ** t,
      };
      native!.adamw(pn!, gn!, mn!, vn!, hp);
      reference.adamw(pr!, gr!, mr!, vr!, hp);
      sameBits(pn!, pr!, `adamw param n=${n} step ${t}`);
      sameBits(mn!, mr!, `adamw m n=${n} step ${t}`);
      sameBits(vn!, vr!, `adamw v n=${n} step ${t}`);
    }
  }
});

test('sgd is bit-identical to the reference, with and without momentum', { skip }, () => {
  const r = rng(12);
  const variants: Omit<SgdStep, 'lr' | 'firstStep'>[] = [
    { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false },
    { momentum: 0, dampening: 0, weightDecay: 1e-4, nesterov: false },
    { momentum: 0.9, dampening: 0, weightDecay: 5e-4, nesterov: false },
    { momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: true },
    { momentum: 0.7, dampening: 0.3, weightDecay: 1e-2, nesterov: false },
  ];
  for (const n of LENGTHS) {
    for (const variant of variants) {
      const [pn, pr] = pair(r, n, -1, 1);
      const bufs = variant.momentum ? pair(r, n, -5, 5) : [null, null];
      for (let t = 1; t <= 3; t++) {
        const [gn, gr] = pair(r, n, -2, 2);
        const hp: SgdStep = { ...variant, lr: 0.01 + 0.1 * r(), firstStep: t === 1 };
        native!.sgd(pn!, gn!, bufs[0]!, hp);
        reference.sgd(pr!, gr!, bufs[1]!, hp);
        const what = `sgd ${JSON.stringify(hp)} n=${n} step ${t}`;
        sameBits(pn!, pr!, `${what} param`);
        if (bufs[0]) sameBits(bufs[0], bufs[1]!, `${what} momentum buffer`);
      }
    }
  }
});

test('optimizer kernels reject state arrays whose length differs from the parameter', { skip }, () => {
  const b = native!;
  const f = (n: number) => b.alloc('float32', n);
  const hp: AdamWStep = { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0, biasCorrection1: 0.1, biasCorrection2: 0.001 };
  assert.throws(() => b.adamw(f(10), f(9), f(10), f(10), hp), /grad has 9 elements, the parameter has 10/);
  assert.throws(() => b.adamw(f(10), f(10), f(10), f(11), hp), /v has 11 elements/);
  const sgd: SgdStep = { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false, firstStep: true };
  assert.throws(() => b.sgd(f(10), f(10), f(3), sgd), /momentumBuf has 3 elements/);
  assert.throws(() => b.sgd(f(10), f(2), null, { ...sgd, momentum: 0 }), /grad has 2 elements/);
});

if (!portable) {
  test('the portable kernels (child process with GLIMPSE_NO_AVX2=1)', { skip }, () => {
    rerunTestFile(import.meta.url, { GLIMPSE_NO_AVX2: '1' });
  });
}
