// Gradient accumulation for the contrastive tasks: a batch split into micro-batches must give the
// loss and the gradients of the whole batch (every negative kept), with and without FLIP patch
// dropout, with a LiT-locked image tower, and through the trainer.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SiglipModel } from '../../src/models/siglip.js';
import { accumulateGradients } from '../../src/optim/grad.js';
import { getDefaultGenerator, Generator } from '../../src/tensor/random.js';
import { tensor, zeros } from '../../src/tensor/tensor.js';
import { resolveConfig, type TrainConfig } from '../../src/train/config.js';
import { makeLoader, openDatasets } from '../../src/train/data.js';
import { buildTrainModel, lockImageTower, type TrainModel } from '../../src/train/model_setup.js';
import { batchSize, type ImageBatch, makeObjective, type Objective, type StepContext } from '../../src/train/objectives.js';
import { train } from '../../src/train/trainer.js';
import { relMaxError, rng, tempDirs } from '../helpers.js';

const newDir = tempDirs('accum');
const BATCH = 8;

function config(task: 'clip' | 'siglip', extra: Record<string, unknown> = {}): TrainConfig {
  return resolveConfig({
    model: `test-${task}`, task, steps: 3, batch_size: BATCH, log_every: 1, seed: 5,
    data: { train: 'scenes:train', options: { scenes: { length: 48, size: 32, supersample: 1 } }, workers: 0 },
    optim: { lr: 2e-3, warmup_steps: 0 },
    checkpoint: { every: 0 },
    out: newDir(),
    ...extra,
  });
}

/** A batch of random images with distinct captions. */
function randomBatch(n: number, seed: number): ImageBatch {
  const r = rng(seed);
  const pixels = Float32Array.from({ length: n * 3 * 32 * 32 }, () => 2 * r() - 1);
  const words = ['red', 'blue', 'green', 'small', 'large', 'circle', 'square', 'star'];
  return {
    pixelValues: tensor(pixels, { shape: [n, 3, 32, 32] }),
    captions: Array.from({ length: n }, (_, i) => `a ${words[i % 8]} ${words[(3 * i + 1) % 8]} number ${i}`),
    labels: Array.from({ length: n }, () => undefined),
    keys: Array.from({ length: n }, (_, i) => `s${i}`),
    position: { epoch: 0, batch: 0 },
  };
}

/** Rows [start, end) of a batch, as the loader would give a micro-batch. */
function rows(b: ImageBatch, start: number, end: number): ImageBatch {
  return {
    pixelValues: b.pixelValues.slice(0, start, end).contiguous(),
    captions: b.captions.slice(start, end), labels: b.labels.slice(start, end), keys: b.keys.slice(start, end),
    position: b.position,
  };
}

interface Setup {
  modelSetup: TrainModel;
  task: Objective;
  ctx: StepContext;
  generators: Generator[];
}

async function setup(kind: 'clip' | 'siglip', patchDropout: number): Promise<Setup> {
  const c = config(kind);
  const modelSetup = await buildTrainModel(c);
  modelSetup.model.train();
  // SigLIP's initial bias (-10) makes every negative's term almost nothing, so the loss hardly
  // depends on how many there are; at 0 (as after some training) it does.
  if (modelSetup.model instanceof SiglipModel) {
    const bias = modelSetup.model.logitBias;
    bias.backend.copy(bias.view(), zeros(bias.shape, { backend: bias.backend }).view());
  }
  const task = await makeObjective(kind, modelSetup, { generator: new Generator(1) });
  const pd = new Generator(11);
  const ctx: StepContext = { patchDropout: patchDropout > 0 ? { ratio: patchDropout, generator: pd } : null, generator: new Generator(12) };
  return { modelSetup, task, ctx, generators: [pd, modelSetup.generator, getDefaultGenerator()] };
}

interface StepResult {
  loss: number;
  grads: Map<string, Float32Array | null>;
  rngAfter: number[][];
}

/** Runs fn from the given generator states on zeroed gradients; what it computed and left behind. */
async function fromState(s: Setup, states: number[][], fn: () => number | Promise<number>): Promise<StepResult> {
  s.generators.forEach((g, i) => g.setState(states[i]!));
  for (const p of s.modelSetup.model.parameters()) p.zeroGrad();
  const loss = await fn();
  const grads = new Map(s.modelSetup.model.namedParameters().map(([k, p]) => [k, p.grad ? Float32Array.from(p.grad.contiguous().data() as Float32Array) : null]));
  return { loss, grads, rngAfter: s.generators.map((g) => g.getState()) };
}

function assertSameGradients(got: StepResult, want: StepResult, what: string): void {
  let compared = 0;
  for (const [k, g] of want.grads) {
    const a = got.grads.get(k)!;
    if (g === null) {
      assert.equal(a, null, `${what}: ${k} has a gradient it should not`);
      continue;
    }
    assert.ok(a, `${what}: ${k} has no gradient`);
    const err = relMaxError(a, g);
    assert.ok(err < 1e-5, `${what}: ${k} differs from the whole batch's gradient by ${err} (relative to its largest element)`);
    compared++;
  }
  assert.ok(compared > 0, `${what}: no gradient compared`);
}

for (const kind of ['clip', 'siglip'] as const) {
  for (const patchDropout of [0, 0.5]) {
    test(`${kind}${patchDropout ? ' + patch dropout' : ''}: micro-batches give the whole batch's loss and gradients`, async () => {
      const s = await setup(kind, patchDropout);
      const batch = randomBatch(BATCH, kind === 'clip' ? 1 : 2);
      const start = s.generators.map((g) => g.getState());
      const whole = await fromState(s, start, () => {
        const loss = s.task.loss(batch, s.ctx);
        loss.backward();
        return loss.item();
      });
      assert.ok(Number.isFinite(whole.loss));
      // The temperature (and SigLIP's bias) enter the loss once, not once per micro-batch.
      for (const k of kind === 'siglip' ? ['logit_scale', 'logit_bias'] : ['logit_scale']) assert.ok(whole.grads.get(k), `${k} has a gradient`);
      for (const split of [[4, 4], [2, 2, 2, 2], [3, 5]]) {
        let at = 0;
        const micro = split.map((n) => rows(batch, at, (at += n)));
        const what = `${kind}, micro-batches ${split.join('+')}`;
        const acc = await fromState(s, start, () => s.task.accumulate!(micro, s.ctx));
        assert.ok(Math.abs(acc.loss - whole.loss) <= 1e-6 * Math.abs(whole.loss), `${what}: loss ${acc.loss}, the whole batch's is ${whole.loss}`);
        assertSameGradients(acc, whole, what);
        // The same patches were drawn, as many times: the next step starts where it would have.
        assert.deepEqual(acc.rngAfter, whole.rngAfter, `${what}: generator states after the step`);
      }
      // Averaging each micro-batch's own loss optimises something else (fewer negatives): the
      // comparison above would catch a fallback to it.
      const perMicro = await fromState(s, start, () => accumulateGradients([rows(batch, 0, 4), rows(batch, 4, 8)], (b) => s.task.loss(b, s.ctx), batchSize));
      assert.ok(Math.abs(perMicro.loss - whole.loss) > 0.05, `per-micro-batch loss ${perMicro.loss} vs ${whole.loss}`);
    });
  }
}

test('a LiT-locked image tower: the text tower, logit scale and unlocked blocks get the whole batch\'s gradients', async () => {
  for (const unlock of [0, 1]) {
    const s = await setup('clip', 0.5);
    lockImageTower(s.modelSetup, unlock);
    const batch = randomBatch(BATCH, 3);
    const start = s.generators.map((g) => g.getState());
    const whole = await fromState(s, start, () => {
      const loss = s.task.loss(batch, s.ctx);
      loss.backward();
      return loss.item();
    });
    const acc = await fromState(s, start, () => s.task.accumulate!([rows(batch, 0, 4), rows(batch, 4, 8)], s.ctx));
    assert.ok(Math.abs(acc.loss - whole.loss) <= 1e-6 * Math.abs(whole.loss), `unlock ${unlock}: loss ${acc.loss} vs ${whole.loss}`);
    assertSameGradients(acc, whole, `unlock_last_blocks ${unlock}`);
    assert.deepEqual(acc.rngAfter, whole.rngAfter);
    const trainedImage = [...whole.grads].filter(([k, g]) => /^(vision_model|visual_projection)\./.test(k) && g !== null).length;
    assert.ok(unlock === 0 ? trainedImage === 0 : trainedImage > 0, `unlock ${unlock}: ${trainedImage} image-tower gradients`);
  }
});

test('bad micro-batch lists are refused by name', async () => {
  const s = await setup('siglip', 0);
  await assert.rejects(async () => s.task.accumulate!([], s.ctx), /siglip task: no micro-batches/);
  const noCaption = { ...randomBatch(4, 4), captions: [undefined, 'a', 'b', 'c'] };
  await assert.rejects(async () => s.task.accumulate!([randomBatch(4, 5), noCaption], s.ctx), /siglip task: sample s0 has no caption/);
});

test('the trainer: grad_accum 2 trains as one batch (losses per step), with patch dropout', async () => {
  const run = async (accum: number) => {
    const c = config('clip', { patch_dropout: 0.5, optim: { lr: 2e-3, warmup_steps: 0, grad_accum: accum } });
    const data = await openDatasets(c);
    const modelSetup = await buildTrainModel(c);
    const loader = makeLoader(data.trainDataset, modelSetup, c, { batchSize: BATCH / accum, rank: 0, worldSize: 1 });
    try {
      return (await train(c, { progress: 'none', data: { ...data, train: loader } })).losses.map((l) => l.loss);
    } finally {
      await loader.close();
    }
  };
  const whole = await run(1);
  const split = await run(2);
  assert.equal(split.length, 3);
  for (let i = 0; i < whole.length; i++) {
    assert.ok(Math.abs(whole[i]! - split[i]!) <= 1e-5 * Math.abs(whole[i]!), `step ${i + 1}: ${split[i]} vs ${whole[i]} for one batch`);
  }
});
