// Modules: naming, state dicts, modes, freezing, initialisers, and the layers against
// straightforward compositions of tensor ops.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { erf } from '../../src/tensor/backends/scalar_math.js';
import { Generator, manualSeed, randn } from '../../src/tensor/random.js';
import { type Tensor, tensor, zeros } from '../../src/tensor/tensor.js';
import { scaledDotProductAttention } from '../../src/tensor/ops/nn.js';
import { concat } from '../../src/tensor/ops/indexing.js';
import {
  Dropout, Embedding, LayerNorm, Linear, MLP, Module, ModuleList, MultiHeadAttention, Sequential, StateDictError,
  TransformerBlock, TransformerEncoder, composedAttention, getActivation, init,
} from '../../src/nn/index.js';
import { assertClose } from '../helpers.js';

class Net extends Module {
  readonly embed: Embedding;
  readonly encoder: TransformerEncoder;
  readonly norm: LayerNorm;
  readonly head: Linear;
  constructor(g?: Generator) {
    super();
    this.embed = this.module('embed', new Embedding(11, 8, { generator: g }));
    this.encoder = this.module('encoder', new TransformerEncoder(2, 8, 2, { generator: g, mlpDim: 12 }));
    this.norm = this.module('norm', new LayerNorm(8));
    this.head = this.module('head', new Linear(8, 3, { generator: g }));
  }
  forward(ids: Tensor, keyPadding?: Tensor): Tensor {
    return this.head.forward(this.norm.forward(this.encoder.forward(this.embed.forward(ids), { keyPadding })));
  }
}

const IDS = tensor([[1, 2, 3, 4], [5, 6, 7, 0]], { dtype: 'int32' });

function values(m: Module): Map<string, number[]> {
  return new Map(m.namedParameters().map(([k, p]) => [k, p.toArray()]));
}

test('parameters are named by dotted paths, in registration order', () => {
  const net = new Net(new Generator(1));
  const names = net.namedParameters().map(([k]) => k);
  assert.deepEqual(names.slice(0, 5), [
    'embed.weight', 'encoder.layers.0.layer_norm1.weight', 'encoder.layers.0.layer_norm1.bias',
    'encoder.layers.0.self_attn.q_proj.weight', 'encoder.layers.0.self_attn.q_proj.bias',
  ]);
  assert.ok(names.includes('encoder.layers.1.mlp.fc2.bias'));
  assert.ok(names.includes('head.weight'));
  // 2 layers of: 2 norms (2*8 each), 4 projections (8*8+8), fc1 (8*12+12), fc2 (12*8+8)
  const perLayer = 2 * 16 + 4 * 72 + 108 + 104;
  assert.equal(net.numParameters(), 11 * 8 + 2 * perLayer + 16 + 27);
  assert.equal(net.parameters().length, names.length);
  assert.ok(net.parameters().every((p) => p.requiresGrad && p.isLeaf));
  assert.equal(net.getParameter('encoder.layers.1.self_attn.out_proj.weight'), (net.encoder.layers.get(1)).attn.outProj.weight);
  assert.equal(net.getSubmodule('encoder.layers.0.mlp'), net.encoder.layers.get(0).mlp);
  assert.throws(() => net.getSubmodule('encoder.layers.7'), /no submodule 'encoder\.layers\.7'/);
  assert.throws(() => net.param('embed', zeros([1])), /already registered/);
  assert.throws(() => net.module('a.b', new Linear(1, 1)), /invalid name/);
});

test('state dict round trip keeps parameter identity and reproduces outputs', () => {
  const a = new Net(new Generator(1)).eval();
  const b = new Net(new Generator(2)).eval();
  const before = b.parameters();
  const ya = a.forward(IDS).toArray();
  assert.notDeepEqual(b.forward(IDS).toArray(), ya);
  const res = b.loadStateDict(a.stateDict());
  assert.deepEqual(res, { missingKeys: [], unexpectedKeys: [] });
  assert.deepEqual(values(b), values(a));
  assert.ok(b.parameters().every((p, i) => p === before[i]), 'the same tensor objects');
  assert.deepEqual(b.forward(IDS).toArray(), ya);
  // stateDict shares storage: it is a view of the live weights, not a snapshot.
  const sd = a.stateDict();
  assert.notEqual(sd['head.bias'], a.head.bias);
  assert.deepEqual(sd['head.bias']!.toArray(), a.head.bias!.toArray());
});

test('loadStateDict converts dtypes and takes host data (as loadSafetensors returns)', () => {
  const a = new Linear(3, 2, { generator: new Generator(3) });
  const b = new Linear(3, 2, { generator: new Generator(4) });
  const host = Object.fromEntries(Object.entries(a.stateDict()).map(([k, t]) => [k, { shape: [...t.shape], data: Float64Array.from(t.toArray()), dtype: 'float64' as const }]));
  b.loadStateDict(host);
  assert.equal(b.weight.dtype, 'float32');
  assert.deepEqual(b.weight.toArray(), a.weight.toArray());
  const c = new Linear(3, 2, { dtype: 'float64', generator: new Generator(5) });
  c.loadStateDict(a.stateDict());
  assert.equal(c.weight.dtype, 'float64');
  assert.deepEqual(c.bias!.toArray(), a.bias!.toArray());
});

test('strict loading lists every missing, unexpected and mis-shaped key and changes nothing', () => {
  const a = new Net(new Generator(1));
  const b = new Net(new Generator(2));
  const sd: Record<string, Tensor> = a.stateDict();
  delete sd['head.bias'];
  delete sd['encoder.layers.1.layer_norm2.weight'];
  sd['extra.weight'] = zeros([2]);
  sd['head.weight'] = zeros([4, 8]);
  const snapshot = values(b);
  let err: unknown;
  try {
    b.loadStateDict(sd);
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof StateDictError);
  assert.deepEqual([...err.missingKeys].sort(), ['encoder.layers.1.layer_norm2.weight', 'head.bias']);
  assert.deepEqual(err.unexpectedKeys, ['extra.weight']);
  assert.equal(err.mismatchedKeys.length, 1);
  for (const k of ['encoder.layers.1.layer_norm2.weight', 'head.bias', 'extra.weight', 'head.weight: checkpoint [4,8] vs model [3,8]']) {
    assert.ok(err.message.includes(k), `message lists ${k}:\n${err.message}`);
  }
  assert.deepEqual(values(b), snapshot);
  // Non-strict: missing and unexpected keys are reported, shape mismatches still refused.
  assert.throws(() => b.loadStateDict(sd, { strict: false }), /shape mismatch/);
  sd['head.weight'] = a.head.weight;
  const res = b.loadStateDict(sd, { strict: false });
  assert.deepEqual(res.unexpectedKeys, ['extra.weight']);
  assert.equal(res.missingKeys.length, 2);
  assert.deepEqual(b.head.weight.toArray(), a.head.weight.toArray());
  assert.notDeepEqual(b.head.bias!.toArray(), a.head.bias!.toArray());
});

test('buffers: persistent ones are saved, non-persistent ones are not; tied parameters are listed once', () => {
  class Tied extends Module {
    readonly emb: Embedding;
    readonly out: Linear;
    constructor() {
      super();
      this.emb = this.module('emb', new Embedding(5, 4));
      this.out = this.module('out', new Linear(4, 5, { bias: false }));
      this.buffer('scale', tensor([2]));
      this.buffer('position_ids', tensor([0, 1, 2], { dtype: 'int32' }), false);
    }
  }
  class Shared extends Module {
    constructor(readonly p: Tensor) {
      super();
      this.param('weight', p);
    }
  }
  const t = new Tied();
  const root = new Module();
  root.module('a', t);
  const shared = new Shared(t.emb.weight);
  root.module('b', shared);
  assert.deepEqual(root.namedParameters().map(([k]) => k), ['a.emb.weight', 'a.out.weight']);
  assert.deepEqual(Object.keys(root.stateDict()).sort(), ['a.emb.weight', 'a.out.weight', 'a.scale', 'b.weight']);
  assert.deepEqual(root.namedBuffers().map(([k]) => k), ['a.scale', 'a.position_ids']);
  assert.throws(() => t.module('loop', root), /cycle/);
});

test('train() and eval() reach every module; Dropout is the identity in eval', () => {
  const net = new Net();
  const seq = net.module('extra', new Sequential([new Linear(8, 8), new Dropout(0.5)]));
  net.eval();
  assert.ok(net.modules().every((m) => !m.training));
  const x = randn([4, 8], { generator: new Generator(1) });
  assert.deepEqual(seq.forward(x).toArray(), seq.get(0).forward(x).toArray());
  net.train();
  assert.ok(net.modules().every((m) => m.training));
  const drop = new Dropout(0.5, { generator: new Generator(9) });
  const y = drop.forward(x).toArray();
  const xs = x.toArray();
  const zeroed = y.filter((v) => v === 0).length;
  assert.ok(zeroed > 4 && zeroed < 28, `${zeroed} of 32 dropped`);
  y.forEach((v, i) => assert.ok(v === 0 || Math.abs(v - 2 * xs[i]!) < 1e-6));
});

test('freezing by prefix keeps gradients out of the frozen parameters', () => {
  const net = new Net(new Generator(1));
  net.requiresGrad_(false, ['embed', 'encoder.layers.0']);
  const frozen = net.namedParameters().filter(([k]) => k.startsWith('embed.') || k.startsWith('encoder.layers.0.'));
  assert.ok(frozen.length > 5 && frozen.every(([, p]) => !p.requiresGrad));
  net.forward(IDS).square().mean().backward();
  for (const [k, p] of net.namedParameters()) {
    const isFrozen = frozen.some(([f]) => f === k);
    assert.equal(p.grad === null, isFrozen, k);
  }
  assert.equal(net.numParameters({ trainableOnly: true }), net.numParameters() - frozen.reduce((s, [, p]) => s + p.size, 0));
  // Freezing drops gradients already there; unfreezing everything restores requiresGrad.
  net.requiresGrad_(false, 'head');
  assert.equal(net.head.weight.grad, null);
  net.requiresGrad_(true);
  assert.ok(net.parameters().every((p) => p.requiresGrad));
  assert.throws(() => net.requiresGrad_(false, ['head', 'encoder.layer']), /no parameter under 'encoder\.layer'/);
  net.zeroGrad();
  assert.ok(net.parameters().every((p) => p.grad === null));
});

function stats(xs: number[]): { mean: number; std: number; min: number; max: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const std = Math.sqrt(xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length);
  return { mean, std, min: Math.min(...xs), max: Math.max(...xs) };
}

test('default initialisers match PyTorch in distribution', () => {
  const g = new Generator(11);
  const lin = new Linear(400, 250, { generator: g });
  const bound = 1 / 20;
  const w = stats(lin.weight.toArray());
  assert.ok(w.min >= -bound && w.max <= bound);
  assert.ok(w.min < -0.99 * bound && w.max > 0.99 * bound);
  assert.ok(Math.abs(w.mean) < 0.002, `mean ${w.mean}`);
  assert.ok(Math.abs(w.std - bound / Math.sqrt(3)) < 0.01 * bound, `std ${w.std}`);
  const b = stats(lin.bias!.toArray());
  assert.ok(b.min >= -bound && b.max <= bound && b.max - b.min > 1.8 * bound);
  const emb = stats(new Embedding(100, 1000, { generator: g }).weight.toArray());
  assert.ok(Math.abs(emb.mean) < 0.01 && Math.abs(emb.std - 1) < 0.01, `N(0,1): ${emb.mean} ${emb.std}`);
  const ln = new LayerNorm(6);
  assert.deepEqual(ln.weight!.toArray(), [1, 1, 1, 1, 1, 1]);
  assert.deepEqual(ln.bias!.toArray(), [0, 0, 0, 0, 0, 0]);
  assert.equal(new LayerNorm(6, { elementwiseAffine: false }).numParameters(), 0);
  const pad = new Embedding(5, 3, { paddingIdx: 2, generator: g });
  assert.deepEqual(pad.weight.select(0, 2).toArray(), [0, 0, 0]);
});

test('named initialisers: normal_, uniform_, xavierUniform_, truncNormal_, zeros_, ones_', () => {
  const g = new Generator(5);
  const t = zeros([200, 300]);
  const n = stats(init.normal_(t, 2, 3, g).toArray());
  assert.ok(Math.abs(n.mean - 2) < 0.03 && Math.abs(n.std - 3) < 0.03, `${n.mean} ${n.std}`);
  const u = stats(init.uniform_(t, -1, 3, g).toArray());
  assert.ok(u.min >= -1 && u.max <= 3 && Math.abs(u.mean - 1) < 0.02 && Math.abs(u.std - 4 / Math.sqrt(12)) < 0.01);
  const xb = Math.sqrt(6 / 500);
  const x = stats(init.xavierUniform_(t, 1, g).toArray());
  assert.ok(x.min >= -xb && x.max <= xb && x.max > 0.99 * xb);
  assert.deepEqual(init.zeros_(zeros([3])).toArray(), [0, 0, 0]);
  assert.deepEqual(init.ones_(zeros([2])).toArray(), [1, 1]);
  // Truncated normal: bounds and the analytic mean, in the body, in a narrow window and in a tail.
  const phi = (z: number) => Math.exp(-z * z / 2) / Math.sqrt(2 * Math.PI);
  const Phi = (z: number) => 0.5 * (1 + erf(z / Math.SQRT2));
  for (const [mean, std, a, b] of [[0, 0.02, -2, 2], [1, 2, 0, 5], [0, 1, 0.5, 1], [0, 1, -0.5, 1], [0, 1, 3, Infinity], [0, 1, -Infinity, -2.5]] as const) {
    const s = stats(init.truncNormal_(zeros([40000]), mean, std, a, b, g).toArray());
    const al = (a - mean) / std;
    const be = (b - mean) / std;
    const expected = mean + std * (phi(al) - phi(be)) / (Phi(be) - Phi(al));
    assert.ok(s.min >= a && s.max <= b, `[${a}, ${b}]: range ${s.min}..${s.max}`);
    assert.ok(Math.abs(s.mean - expected) < 0.02 * std, `[${a}, ${b}]: mean ${s.mean}, expected ${expected}`);
  }
});

test('the same seed gives identical weights; the global generator is the default', () => {
  const a = new Net(new Generator(42));
  const b = new Net(new Generator(42));
  const c = new Net(new Generator(43));
  assert.deepEqual(values(a), values(b));
  assert.notDeepEqual(values(a).get('head.weight'), values(c).get('head.weight'));
  manualSeed(7);
  const d = new Net();
  manualSeed(7);
  const e = new Net();
  assert.deepEqual(values(d), values(e));
});

/** Multi-head attention written out per head with matmul and an additive mask. */
function attentionByHand(m: MultiHeadAttention, x: Tensor, ctx: Tensor, allowed: (b: number, i: number, j: number) => boolean): Tensor {
  const [B, Tq] = x.shape as [number, number];
  const Tk = ctx.shape[1]!;
  const proj = (l: Linear, t: Tensor) => t.matmul(l.weight.T).add(l.bias!);
  const q = proj(m.qProj, x);
  const k = proj(m.kProj, ctx);
  const v = proj(m.vProj, ctx);
  const maskData: number[] = [];
  for (let b = 0; b < B; b++) for (let i = 0; i < Tq; i++) for (let j = 0; j < Tk; j++) maskData.push(allowed(b, i, j) ? 0 : -1e30);
  const mask = tensor(maskData, { shape: [B, Tq, Tk] });
  const D = m.headDim;
  const heads: Tensor[] = [];
  for (let h = 0; h < m.numHeads; h++) {
    const qh = q.slice(2, h * D, (h + 1) * D);
    const kh = k.slice(2, h * D, (h + 1) * D);
    const vh = v.slice(2, h * D, (h + 1) * D);
    const p = qh.matmul(kh.transpose(1, 2)).div(Math.sqrt(D)).add(mask).softmax(-1);
    heads.push(p.matmul(vh));
  }
  return proj(m.outProj, concat(heads, 2));
}

test('MultiHeadAttention equals softmax(QK^T/sqrt(d) + mask) V, with causal and padding masks', () => {
  const g = new Generator(3);
  const m = new MultiHeadAttention(12, 3, { generator: g });
  const x = randn([2, 5, 12], { generator: g });
  const pad = tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], { dtype: 'bool' });
  const cases: [string, Parameters<MultiHeadAttention['forward']>[1], (b: number, i: number, j: number) => boolean][] = [
    ['no mask', {}, () => true],
    ['causal', { causal: true }, (_b, i, j) => j <= i],
    ['padding', { keyPadding: pad }, (b, _i, j) => b === 1 || j < 3],
    ['both', { causal: true, keyPadding: pad }, (b, i, j) => j <= i && (b === 1 || j < 3)],
  ];
  for (const [name, call, allowed] of cases) {
    const got = m.forward(x, call).toArray();
    const want = attentionByHand(m, x, x, allowed).toArray();
    assertClose(got, want, 1e-4, 1e-5, name);
  }
  // Gradients agree too.
  const w = m.qProj.weight;
  m.forward(x, { causal: true, keyPadding: pad }).square().sum().backward();
  const g1 = w.grad!.toArray();
  m.zeroGrad();
  attentionByHand(m, x, x, (b, i, j) => j <= i && (b === 1 || j < 3)).square().sum().backward();
  assertClose(g1, w.grad!.toArray(), 1e-3, 1e-4, 'dL/dWq');
});

test('cross-attention: queries from x, keys and values from a context of another length and width', () => {
  const g = new Generator(4);
  const m = new MultiHeadAttention(8, 2, { kvDim: 6, generator: g });
  assert.deepEqual(m.kProj.weight.shape, [8, 6]);
  const x = randn([2, 3, 8], { generator: g });
  const ctx = randn([2, 7, 6], { generator: g });
  const pad = tensor([[1, 1, 0, 1, 1, 1, 0], [1, 0, 0, 0, 0, 0, 0]], { dtype: 'int32' });
  const got = m.forward(x, { context: ctx, keyPadding: pad });
  assert.deepEqual(got.shape, [2, 3, 8]);
  const pv = pad.toArray();
  assertClose(got.toArray(), attentionByHand(m, x, ctx, (b, _i, j) => pv[b * 7 + j] !== 0).toArray(), 1e-4, 1e-5, 'cross');
  assert.throws(() => m.forward(x, { context: randn([2, 7, 8]) }), /context must be \[2, Tk, 6\]/);
});

test('composedAttention matches the fused op, and applies dropout when asked', () => {
  const g = new Generator(6);
  const [q, k, v] = [randn([2, 2, 4, 3], { generator: g }), randn([2, 2, 5, 3], { generator: g }), randn([2, 2, 5, 3], { generator: g })];
  const pad = tensor([[1, 1, 1, 1, 0], [0, 0, 0, 0, 0]], { dtype: 'bool' });
  for (const opts of [{}, { causal: true }, { keyPadding: pad }, { causal: true, keyPadding: pad }]) {
    assertClose(composedAttention(q, k, v, opts).toArray(), scaledDotProductAttention(q, k, v, opts).toArray(), 1e-5, 1e-6, JSON.stringify(opts));
  }
  const dropped = composedAttention(q, k, v, { dropout: 0.5, generator: new Generator(1) }).toArray();
  assert.notDeepEqual(dropped, composedAttention(q, k, v).toArray());
  // In eval mode a module with attention dropout uses the fused kernel and is deterministic.
  const m = new MultiHeadAttention(6, 2, { dropout: 0.3, generator: g }).eval();
  const x = randn([1, 3, 6], { generator: g });
  assert.deepEqual(m.forward(x).toArray(), m.forward(x).toArray());
  m.train();
  assert.notDeepEqual(m.forward(x).toArray(), m.forward(x).toArray());
});

test('TransformerBlock: pre-LN residual structure, masks keep padded and future tokens out', () => {
  const g = new Generator(8);
  const block = new TransformerBlock(8, 2, { generator: g, mlpDim: 16 });
  const x = randn([2, 4, 8], { generator: g });
  const y = block.forward(x);
  const h = x.add(block.attn.forward(block.ln1.forward(x)));
  assertClose(y.toArray(), h.add(block.mlp.forward(block.ln2.forward(h))).toArray(), 1e-6, 1e-6, 'block');
  // Changing a padded token does not change the others' outputs.
  const pad = tensor([[1, 1, 1, 0], [1, 1, 1, 1]], { dtype: 'bool' });
  const x2 = x.clone();
  x2.backend.fill(x2.select(0, 0).select(0, 3).view(), 5);
  const a = block.forward(x, { keyPadding: pad });
  const b = block.forward(x2, { keyPadding: pad });
  assertClose(a.select(0, 0).slice(0, 0, 3).toArray(), b.select(0, 0).slice(0, 0, 3).toArray(), 1e-6, 1e-6, 'padding');
  // Causal: changing the last token leaves the earlier ones alone.
  const c = block.forward(x, { causal: true });
  const d = block.forward(x2, { causal: true });
  assertClose(c.slice(1, 0, 3).toArray(), d.slice(1, 0, 3).toArray(), 1e-6, 1e-6, 'causal');
  assert.notDeepEqual(c.select(0, 0).select(0, 3).toArray(), d.select(0, 0).select(0, 3).toArray());
  // The encoder reports hidden states as HF does: input plus one per layer.
  const enc = new TransformerEncoder(3, 8, 2, { generator: g });
  const states: Tensor[] = [];
  const out = enc.forward(x, { hiddenStates: states });
  assert.equal(states.length, 4);
  assert.equal(states[0], x);
  assert.equal(states[3], out);
});

test('Embedding: lookup, padding row gets no gradient', () => {
  const e = new Embedding(6, 3, { paddingIdx: 0, generator: new Generator(2) });
  const ids = tensor([[0, 2, 2], [5, 0, 1]], { dtype: 'int64' });
  const out = e.forward(ids);
  assert.deepEqual(out.shape, [2, 3, 3]);
  const w = e.weight.toArray();
  assert.deepEqual(out.select(0, 1).select(0, 0).toArray(), w.slice(15, 18));
  out.sum().backward();
  const gw = e.weight.grad!.toArray();
  assert.deepEqual(gw, [0, 0, 0, 1, 1, 1, 2, 2, 2, 0, 0, 0, 0, 0, 0, 1, 1, 1]);
});

test('MLP activations by HF name', () => {
  const x = randn([3, 4], { generator: new Generator(1) });
  assertClose(getActivation('gelu_pytorch_tanh')(x).toArray(), x.gelu('tanh').toArray(), 0, 0, 'gelu_pytorch_tanh');
  assertClose(getActivation('quick_gelu')(x).toArray(), x.quickGelu().toArray(), 0, 0, 'quick_gelu');
  assertClose(getActivation('silu')(x).toArray(), x.mul(x.sigmoid()).toArray(), 0, 0, 'silu');
  assert.throws(() => getActivation('gelu_bogus'), /unknown activation 'gelu_bogus' \(known: gelu, gelu_tanh/);
  const mlp = new MLP(4, 6, { act: 'relu', outFeatures: 2, generator: new Generator(2) });
  assert.deepEqual(mlp.namedParameters().map(([k, p]) => `${k}:${p.shape}`), ['fc1.weight:6,4', 'fc1.bias:6', 'fc2.weight:2,6', 'fc2.bias:2']);
  const want = x.matmul(mlp.fc1.weight.T).add(mlp.fc1.bias!).relu().matmul(mlp.fc2.weight.T).add(mlp.fc2.bias!);
  assertClose(mlp.forward(x).toArray(), want.toArray(), 1e-6, 1e-6, 'mlp');
});

test('ModuleList and Sequential register children by index', () => {
  const list = new ModuleList([new Linear(2, 3), new Linear(3, 4)]);
  list.push(new Linear(4, 1, { bias: false }));
  assert.equal(list.length, 3);
  assert.equal(list.get(-1), [...list][2]);
  assert.throws(() => list.get(3), /out of range/);
  assert.deepEqual(Object.keys(list.stateDict()), ['0.weight', '0.bias', '1.weight', '1.bias', '2.weight']);
  const seq = new Sequential([new Linear(2, 3), new LayerNorm(3)]);
  assert.deepEqual(seq.forward(zeros([5, 2])).shape, [5, 3]);
});
