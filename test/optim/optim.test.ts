// Optimizers against PyTorch's update formulas computed here in double precision, parameter
// groups, clipping, accumulation, schedules, resuming from a state dict, and a tiny training run.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Generator, randn, randint } from '../../src/tensor/random.js';
import { type Tensor, tensor, zeros } from '../../src/tensor/tensor.js';
import { crossEntropy } from '../../src/tensor/ops/nn.js';
import { Embedding, LayerNorm, Linear, Module, TransformerEncoder } from '../../src/nn/index.js';
import {
  AdamW, LRScheduler, SGD, accumulateGradients, clipGradNorm, constantSchedule, defaultNoDecay, paramGroupsNoDecay,
  stepSchedule, warmupCosineSchedule,
} from '../../src/optim/index.js';
import { assertClose } from '../helpers.js';

const P0 = [0.5, -1.25, 2, 0, 3e-3, -0.7];
const GRADS = [
  [0.1, -0.2, 0.3, 0.05, -1, 2],
  [-0.3, 0.1, 0.2, 0, 0.5, -1.5],
  [0.2, 0.2, -0.4, 1e-4, 0.25, 0.7],
];

/** Runs `steps` updates with the fixed gradients above. */
function run(opt: AdamW | SGD, p: Tensor, steps = GRADS.length): void {
  for (let s = 0; s < steps; s++) {
    p.grad = tensor(GRADS[s]!);
    opt.step();
  }
}

test('AdamW follows PyTorch: decoupled decay, moments, bias correction', () => {
  const lr = 0.01;
  const [b1, b2] = [0.9, 0.99];
  const eps = 1e-8;
  const wd = 0.1;
  const p = tensor(P0, { requiresGrad: true });
  run(new AdamW([p], { lr, betas: [b1, b2], eps, weightDecay: wd }), p);
  const want = [...P0];
  const m = new Array(P0.length).fill(0);
  const v = new Array(P0.length).fill(0);
  GRADS.forEach((g, s) => {
    const t = s + 1;
    for (let i = 0; i < want.length; i++) {
      want[i]! *= 1 - lr * wd;
      m[i] = b1 * m[i] + (1 - b1) * g[i]!;
      v[i] = b2 * v[i] + (1 - b2) * g[i]! ** 2;
      const mhat = m[i] / (1 - b1 ** t);
      const vhat = v[i] / (1 - b2 ** t);
      want[i]! -= (lr * mhat) / (Math.sqrt(vhat) + eps);
    }
  });
  assertClose(p.toArray(), want, 1e-5, 1e-7, 'AdamW');
  // One step moves every weight with a nonzero gradient by about lr (Adam's normalised step).
  const q = tensor([1, 1], { requiresGrad: true });
  q.grad = tensor([5, -0.001]);
  new AdamW([q], { lr: 0.1, weightDecay: 0 }).step();
  assertClose(q.toArray(), [0.9, 1.1], 1e-5, 1e-6, 'first step');
});

function sgdByHand(lr: number, momentum: number, dampening: number, wd: number, nesterov: boolean): number[] {
  const p = [...P0];
  let buf: number[] | null = null;
  for (const g of GRADS) {
    const d = g.map((gi, i) => gi + wd * p[i]!);
    let step = d;
    if (momentum !== 0) {
      buf = buf ? buf.map((b, i) => momentum * b + (1 - dampening) * d[i]!) : [...d];
      step = nesterov ? d.map((di, i) => di + momentum * buf![i]!) : buf;
    }
    for (let i = 0; i < p.length; i++) p[i]! -= lr * step[i]!;
  }
  return p;
}

test('SGD follows PyTorch: plain, momentum with dampening, Nesterov, weight decay', () => {
  for (const [momentum, dampening, wd, nesterov] of [[0, 0, 0, false], [0.9, 0.1, 0.01, false], [0.8, 0, 0.05, true], [0.9, 0, 0, false]] as const) {
    const p = tensor(P0, { requiresGrad: true });
    run(new SGD([p], { lr: 0.1, momentum, dampening, weightDecay: wd, nesterov }), p);
    assertClose(p.toArray(), sgdByHand(0.1, momentum, dampening, wd, nesterov), 1e-5, 1e-7, `SGD ${momentum} ${dampening} ${wd} ${nesterov}`);
  }
  assert.throws(() => new SGD([tensor([1], { requiresGrad: true })], { nesterov: true }), /Nesterov/);
});

test('parameter groups have their own hyperparameters; parameters without gradients are skipped', () => {
  const a = tensor([1, 2], { requiresGrad: true });
  const b = tensor([3], { requiresGrad: true });
  const c = tensor([4], { requiresGrad: true });
  const opt = new SGD([{ params: [a] }, { params: [b], lr: 1 }, { params: [c] }], { lr: 0.1 });
  assert.deepEqual(opt.paramGroups.map((g) => g.lr), [0.1, 1, 0.1]);
  a.grad = tensor([1, 1]);
  b.grad = tensor([1]);
  opt.step();
  assertClose(a.toArray(), [0.9, 1.9], 1e-6, 0, 'a');
  assert.deepEqual(b.toArray(), [2]);
  assert.deepEqual(c.toArray(), [4]);
  opt.zeroGrad();
  assert.equal(a.grad, null);
  assert.throws(() => new SGD([{ params: [a] }, { params: [a] }]), /more than one place/);
  assert.throws(() => new AdamW([a.mul(2)]), /not a leaf/);
  const big = tensor([1, 2, 3, 4], { requiresGrad: true });
  assert.throws(() => new AdamW([big.slice(0, 1, 3).detach()]), /view of a larger or strided storage/);
  assert.throws(() => new AdamW([tensor([1, 2, 3, 4], { shape: [2, 2] }).T]), /strided storage/);
  assert.throws(() => new AdamW([a], { betas: [0.9, 1] }), /betas/);
});

class Toy extends Module {
  readonly embeddings: Embedding;
  readonly proj: Linear;
  readonly ln_f: LayerNorm;
  readonly head: Linear;
  constructor(g?: Generator) {
    super();
    this.embeddings = this.module('embeddings', new Embedding(10, 4, { generator: g }));
    this.proj = this.module('proj', new Linear(4, 8, { generator: g }));
    this.ln_f = this.module('ln_f', new LayerNorm(8));
    this.head = this.module('head', new Linear(8, 3, { generator: g }));
  }
  forward(ids: Tensor): Tensor {
    return this.head.forward(this.ln_f.forward(this.proj.forward(this.embeddings.forward(ids)).relu()));
  }
}

test('paramGroupsNoDecay: no decay on 1-d parameters, norms, biases and embeddings', () => {
  const net = new Toy();
  net.requiresGrad_(false, 'head.bias');
  const [decay, noDecay] = paramGroupsNoDecay(net, { weightDecay: 0.05 });
  const names = new Map(net.namedParameters().map(([k, p]) => [p, k]));
  assert.deepEqual(decay.params.map((p) => names.get(p)), ['proj.weight', 'head.weight']);
  assert.deepEqual(noDecay.params.map((p) => names.get(p)), ['embeddings.weight', 'proj.bias', 'ln_f.weight', 'ln_f.bias']);
  assert.equal(decay.weightDecay, 0.05);
  assert.equal(noDecay.weightDecay, 0);
  assert.equal(defaultNoDecay('encoder.layer_norm1.weight', zeros([3, 3])), true);
  assert.equal(defaultNoDecay('vision.ln_post.weight', zeros([3, 3])), true);
  assert.equal(defaultNoDecay('vision.lnx', zeros([3, 3])), true);
  assert.equal(defaultNoDecay('mlp.fc1.weight', zeros([3, 3])), false);
  const custom = paramGroupsNoDecay(net, { weightDecay: 0.1, skip: (name) => name.startsWith('head') });
  assert.deepEqual(custom[1].params.map((p) => names.get(p)), ['head.weight']);
  const opt = new AdamW(paramGroupsNoDecay(net, { weightDecay: 0.05 }), { lr: 1e-3 });
  assert.deepEqual(opt.paramGroups.map((g) => g.weightDecay), [0.05, 0]);
});

test('clipGradNorm scales all gradients by maxNorm / (total + 1e-6) when above, in place', () => {
  const a = tensor([3, 0], { requiresGrad: true });
  const b = tensor([[4]], { requiresGrad: true });
  const c = tensor([1], { requiresGrad: true });
  a.grad = tensor([3, 0]);
  b.grad = tensor([[4]]);
  const ga = a.grad;
  const total = clipGradNorm([a, b, c], 4);
  assertClose([total], [5], 1e-7, 0, 'norm');
  const coef = 4 / (5 + 1e-6);
  assert.equal(a.grad, ga, 'in place');
  assertClose(a.grad.toArray(), [3 * coef, 0], 1e-6, 0, 'a');
  assertClose(b.grad.toArray(), [4 * coef], 1e-6, 0, 'b');
  assertClose([clipGradNorm([a, b], 4.5)], [4], 1e-5, 0, 'below');
  assertClose(b.grad.toArray(), [4 * coef], 1e-6, 0, 'unchanged below maxNorm');
  a.grad = tensor([NaN, 1]);
  assert.ok(Number.isNaN(clipGradNorm([a], 1)));
  assert.throws(() => clipGradNorm([a], 1, { errorIfNonfinite: true }), /NaN/);
});

function cloneModel(src: Toy): Toy {
  const m = new Toy(new Generator(99));
  m.loadStateDict(src.stateDict());
  return m;
}

test('gradient accumulation over micro-batches equals one batch with the mean loss', () => {
  const g = new Generator(5);
  const ids = randint(0, 10, [12], { generator: g });
  const y = randint(0, 3, [12], { generator: g });
  const base = new Toy(new Generator(1));
  const whole = cloneModel(base);
  crossEntropy(whole.forward(ids), y).backward();
  const lossOf = (m: Toy) => ([s, e]: [number, number]) => crossEntropy(m.forward(ids.slice(0, s, e)), y.slice(0, s, e));
  // Equal sizes (4 x 3) and unequal sizes (5 + 7) weighted by their counts.
  for (const chunks of [[[0, 3], [3, 6], [6, 9], [9, 12]], [[0, 5], [5, 12]]] as [number, number][][]) {
    const acc = cloneModel(base);
    const mean = accumulateGradients(chunks, lossOf(acc), ([s, e]) => e - s);
    assertClose([mean], [crossEntropy(whole.forward(ids), y).item()], 1e-5, 1e-6, 'mean loss');
    const want = whole.namedParameters();
    acc.namedParameters().forEach(([k, p], i) => assertClose(p.grad!.toArray(), want[i]![1].grad!.toArray(), 1e-4, 1e-6, `grad ${k}`));
    // And the same update.
    const o1 = new AdamW(acc.parameters(), { lr: 0.1 });
    o1.step();
    const w2 = cloneModel(base);
    w2.parameters().forEach((p, i) => (p.grad = want[i]![1].grad!.clone()));
    new AdamW(w2.parameters(), { lr: 0.1 }).step();
    acc.parameters().forEach((p, i) => assertClose(p.toArray(), w2.parameters()[i]!.toArray(), 1e-4, 1e-5, 'updated weights'));
  }
});

test('schedules at key steps', () => {
  const cos = warmupCosineSchedule({ warmupSteps: 10, totalSteps: 110, minLrRatio: 0.1 });
  assert.equal(cos(0), 0);
  assert.equal(cos(5), 0.5);
  assert.equal(cos(10), 1);
  assertClose([cos(60)], [0.55], 1e-12, 0, 'middle');
  assertClose([cos(35)], [0.1 + 0.9 * 0.5 * (1 + Math.cos(Math.PI / 4))], 1e-12, 0, 'quarter');
  assertClose([cos(110), cos(500)], [0.1, 0.1], 1e-12, 0, 'end');
  const plain = warmupCosineSchedule({ totalSteps: 4 });
  assert.deepEqual([0, 2, 4].map(plain), [1, 0.5, 0]);
  const constant = constantSchedule({ warmupSteps: 4 });
  assert.deepEqual([0, 1, 4, 1000].map(constant), [0, 0.25, 1, 1]);
  assert.deepEqual([0, 5, 1000].map(constantSchedule()), [1, 1, 1]);
  const step = stepSchedule({ stepSize: 3, gamma: 0.5 });
  assert.deepEqual([0, 2, 3, 5, 6, 9].map(step), [1, 1, 0.5, 0.5, 0.25, 0.125]);
});

test('LRScheduler scales every group from its own base lr', () => {
  const a = tensor([1], { requiresGrad: true });
  const b = tensor([1], { requiresGrad: true });
  const opt = new SGD([{ params: [a], lr: 0.1 }, { params: [b], lr: 1 }]);
  const sched = new LRScheduler(opt, constantSchedule({ warmupSteps: 2 }));
  assert.deepEqual(sched.lastLr(), [0, 0]);
  sched.step();
  assert.deepEqual(sched.lastLr(), [0.05, 0.5]);
  sched.step();
  assert.deepEqual(sched.lastLr(), [0.1, 1]);
  assert.equal(sched.currentStep, 2);
});

test('optimizer and scheduler state dicts resume training exactly', () => {
  const g = new Generator(3);
  const ids = randint(0, 10, [4, 6], { generator: g });
  const y = randint(0, 3, [4, 6], { generator: g });
  const train = (m: Toy, opt: AdamW, sched: LRScheduler, steps: number) => {
    for (let s = 0; s < steps; s++) {
      crossEntropy(m.forward(ids).permute(0, 2, 1), y).backward();
      clipGradNorm(m.parameters(), 0.5);
      opt.step();
      opt.zeroGrad();
      sched.step();
    }
  };
  const make = (m: Toy) => {
    const opt = new AdamW(paramGroupsNoDecay(m, { weightDecay: 0.1 }), { lr: 0.05 });
    return { opt, sched: new LRScheduler(opt, warmupCosineSchedule({ warmupSteps: 2, totalSteps: 8 })) };
  };
  const a = new Toy(new Generator(1));
  const { opt, sched } = make(a);
  train(a, opt, sched, 3);
  const saved = { model: Object.fromEntries(Object.entries(a.stateDict()).map(([k, t]) => [k, t.clone()])), opt: opt.stateDict(), sched: sched.stateDict() };
  assert.equal(saved.opt.state['0']!.step, 3);
  assert.deepEqual(Object.keys(saved.opt.state['0']!.buffers), ['expAvg', 'expAvgSq']);
  train(a, opt, sched, 4);

  const b = new Toy(new Generator(2));
  b.loadStateDict(saved.model);
  const resumed = make(b);
  resumed.opt.loadStateDict(saved.opt);
  resumed.sched.loadStateDict(saved.sched);
  assert.deepEqual(resumed.opt.paramGroups.map((x) => x.lr), saved.opt.paramGroups.map((x) => x.lr));
  train(b, resumed.opt, resumed.sched, 4);
  const pa = a.namedParameters();
  b.namedParameters().forEach(([k, p], i) => assert.deepEqual(p.toArray(), pa[i]![1].toArray(), k));

  // Loading checks shapes and group layout.
  const other = new AdamW([tensor([1, 2], { requiresGrad: true })]);
  assert.throws(() => other.loadStateDict(saved.opt), /2 parameter groups/);
  const groups = paramGroupsNoDecay(b, { weightDecay: 0.1 });
  groups[0].params[0] = tensor([1, 2, 3], { requiresGrad: true });
  const wrong = new AdamW(groups);
  assert.throws(() => wrong.loadStateDict(saved.opt), /state '0'.expAvg is \[8,4\] but the parameter is \[3\]/);
});

test('SGD state dict keeps the momentum buffer', () => {
  const p = tensor(P0, { requiresGrad: true });
  const opt = new SGD([p], { lr: 0.1, momentum: 0.9 });
  run(opt, p, 2);
  const sd = opt.stateDict();
  const q = tensor(p.toArray(), { requiresGrad: true });
  const opt2 = new SGD([q], { lr: 0.1, momentum: 0.9 });
  opt2.loadStateDict(sd);
  p.grad = tensor(GRADS[2]!);
  opt.step();
  q.grad = tensor(GRADS[2]!);
  opt2.step();
  assert.deepEqual(q.toArray(), p.toArray());
  assertClose(p.toArray(), sgdByHand(0.1, 0.9, 0, 0, false), 1e-5, 1e-7, 'after resume');
});

test('a tiny MLP and a tiny transformer learn toy problems', () => {
  // MLP: XOR-like quadrant labels of 2-d points.
  const g = new Generator(12);
  const x = randn([64, 2], { generator: g });
  const xs = x.toArray();
  const labels = tensor(Array.from({ length: 64 }, (_, i) => (xs[2 * i]! * xs[2 * i + 1]! > 0 ? 1 : 0)), { dtype: 'int32' });
  const fc1 = new Linear(2, 16, { generator: g });
  const fc2 = new Linear(16, 2, { generator: g });
  const params = [...fc1.parameters(), ...fc2.parameters()];
  const opt = new AdamW(params, { lr: 0.05, weightDecay: 0 });
  const loss = () => crossEntropy(fc2.forward(fc1.forward(x).relu()), labels);
  const first = loss().item();
  for (let s = 0; s < 150; s++) {
    loss().backward();
    opt.step();
    opt.zeroGrad();
  }
  const last = loss().item();
  assert.ok(last < 0.15 * first, `MLP loss ${first} -> ${last}`);

  // Transformer: label each sequence by the token at position 0, read out at the last position.
  class Tiny extends Module {
    readonly emb = this.module('emb', new Embedding(5, 8, { generator: g }));
    readonly pos = this.param('pos', randn([4, 8], { generator: g }).mul(0.1));
    readonly enc = this.module('enc', new TransformerEncoder(1, 8, 2, { generator: g, mlpDim: 16 }));
    readonly head = this.module('head', new Linear(8, 5, { generator: g }));
    forward(ids: Tensor): Tensor {
      const h = this.enc.forward(this.emb.forward(ids).add(this.pos));
      return this.head.forward(h.select(1, 3));
    }
  }
  const model = new Tiny();
  const ids = randint(0, 5, [16, 4], { generator: g });
  const target = ids.select(1, 0).contiguous();
  const topt = new AdamW(paramGroupsNoDecay(model, { weightDecay: 0.01 }), { lr: 0.03 });
  const tl = () => crossEntropy(model.forward(ids), target);
  const t0 = tl().item();
  for (let s = 0; s < 60; s++) {
    tl().backward();
    clipGradNorm(model.parameters(), 1);
    topt.step();
    topt.zeroGrad();
  }
  const t1 = tl().item();
  assert.ok(t1 < 0.2 * t0, `transformer loss ${t0} -> ${t1}`);
});
