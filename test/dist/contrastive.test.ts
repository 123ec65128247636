// The contrastive losses across ranks: contrastive_worker.ts under mpirun checks, on 2, 3 and 4
// ranks, that they equal the single-process loss on the global batch, gradients included. Two
// ranks take SigLIP's one-way ring step only, three one two-way step, four a two-way step and a
// one-way step, five two two-way steps (blocks forwarded both ways, their gradients returned through
// a rank in between). Without a communicator the function is the single-process loss and backward.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pairLossAcrossRanks } from '../../src/dist/index.js';
import { clipContrastiveLoss, siglipSigmoidLoss } from '../../src/nn/losses.js';
import { Generator, randn, tensor, type Tensor } from '../../src/tensor/index.js';
import { assertClose } from '../helpers.js';
import { mpirun, mpiSkipReason } from './mpirun.js';

const worker = join(dirname(fileURLToPath(import.meta.url)), 'contrastive_worker.js');
const skip = mpiSkipReason();

function runRanks(ranks: number, kinds: string): void {
  const run = mpirun(ranks, worker, [], { env: { GLIMPSE_LOSS_KINDS: kinds } });
  assert.equal(run.status, 0, run.output);
  for (let r = 0; r < ranks; r++) {
    for (const kind of kinds.split(',')) {
      assert.match(run.stdout, new RegExp(`^rank ${r}/${ranks}: ${kind} matches the single-process loss$`, 'm'), run.output);
    }
    assert.match(run.stdout, new RegExp(`^rank ${r}/${ranks}: a batch size mismatch is an error on every rank$`, 'm'), run.output);
  }
}

test('pairLossAcrossRanks: CLIP and SigLIP on 2 ranks equal the global-batch loss', { skip }, () => {
  runRanks(2, 'clip,siglip');
});

test('pairLossAcrossRanks: CLIP and SigLIP on 3 ranks equal the global-batch loss', { skip }, () => {
  runRanks(3, 'clip,siglip');
});

test('pairLossAcrossRanks: SigLIP on 4 ranks equals the global-batch loss', { skip }, () => {
  runRanks(4, 'siglip');
});

test('pairLossAcrossRanks: SigLIP on 5 ranks equals the global-batch loss', { skip }, () => {
  runRanks(5, 'siglip');
});

const leafOf = (t: Tensor): Tensor => tensor(t.data(), { shape: t.shape, requiresGrad: true });
const scalar = (v: number): Tensor => tensor([v], { shape: [], requiresGrad: true });

test('pairLossAcrossRanks: without a communicator it is the single-process loss and backward', async () => {
  const img = randn([6, 4], { generator: new Generator(1) });
  const txt = randn([6, 4], { generator: new Generator(2) });
  for (const kind of ['clip', 'siglip'] as const) {
    const run = async (single: boolean) => {
      const [i, x, s] = [leafOf(img), leafOf(txt), scalar(1.2)];
      const b = kind === 'siglip' ? scalar(-3) : null;
      let loss: number;
      if (single) {
        const l = kind === 'clip' ? clipContrastiveLoss(i, x, s) : siglipSigmoidLoss(i, x, s, b!, { chunkSize: 4 });
        l.backward();
        loss = l.item();
      } else {
        loss = await pairLossAcrossRanks(null, { kind, logitScale: s, logitBias: b, chunkSize: 4 }, i, x);
      }
      return [[loss], ...[i, x, s, ...(b ? [b] : [])].map((t) => t.grad!.toArray())];
    };
    const [want, got] = [await run(true), await run(false)];
    got.forEach((g, k) => assertClose(g, want[k]!, 0, 0, `${kind}: ${['loss', 'images', 'texts', 'scale', 'bias'][k]}`));
  }
});

test('pairLossAcrossRanks: arguments that cannot work are errors naming the problem', async () => {
  const f = () => randn([3, 4], { generator: new Generator(3) }).setRequiresGrad();
  await assert.rejects(pairLossAcrossRanks(null, { kind: 'clip', logitScale: scalar(1), logitBias: scalar(0) }, f(), f()), /no logit bias/);
  await assert.rejects(pairLossAcrossRanks(null, { kind: 'siglip', logitScale: scalar(1), logitBias: null }, f(), f()), /needs its logit bias/);
  await assert.rejects(pairLossAcrossRanks(null, { kind: 'clip', logitScale: scalar(1), logitBias: null }, f(), f().slice(0, 0, 2)),
    /\[3,4\].*\[2,4\].*\[B, D\]/);
  await assert.rejects(pairLossAcrossRanks(null, { kind: 'clip', logitScale: scalar(1), logitBias: null }, f().mul(2), f()),
    /the features must be leaves, the text features requiring grad/);
});
