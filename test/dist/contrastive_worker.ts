// One rank of the cross-rank loss tests (contrastive.test.ts starts it under mpirun): every rank
// builds the same global batch of features from a seed, computes the single-process loss and its
// gradients on the whole batch, then takes its own slice through pairLossAcrossRanks and checks,
// after gathering every rank's results, that the mean of the rank losses is the global loss, the
// gathered feature gradients divided by the world size are the global ones, and the averaged
// scale and bias gradients are the global ones. Prints one line per rank and kind when all pass.
import assert from 'node:assert/strict';
import { mpiCommunicator, pairLossAcrossRanks } from '../../src/dist/index.js';
import { clipContrastiveLoss, siglipSigmoidLoss } from '../../src/nn/losses.js';
import { concat, Generator, randn, tensor, type Tensor } from '../../src/tensor/index.js';
import { isWorker } from './mpirun.js';

const B = 5;
const D = 8;

/** Unit rows [rows, D] from a seed: the same on every rank. */
function unitRows(rows: number, seed: number): Float32Array {
  const x = randn([rows, D], { generator: new Generator(seed) }).data() as Float32Array;
  for (let i = 0; i < rows; i++) {
    let s = 0;
    for (let j = 0; j < D; j++) s += x[i * D + j]! ** 2;
    for (let j = 0; j < D; j++) x[i * D + j]! /= Math.sqrt(s);
  }
  return x;
}

const leaf = (data: ArrayLike<number>, shape: number[]): Tensor => tensor(Float32Array.from(data), { shape, requiresGrad: true });

/** Within 1e-5 of each element, relative to it, or to the tensor's largest element for tiny ones. */
function close(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let largest = 0;
  for (let i = 0; i < expected.length; i++) largest = Math.max(largest, Math.abs(expected[i]!));
  for (let i = 0; i < expected.length; i++) {
    const e = expected[i]!;
    if (!(Math.abs(actual[i]! - e) <= 1e-5 * Math.max(Math.abs(e), 0.05 * largest))) {
      assert.fail(`${what}: element ${i} is ${actual[i]}, expected ${e}`);
    }
  }
}

async function main(): Promise<void> {
  const comm = mpiCommunicator();
  const { rank, worldSize: n } = comm;
  const kinds = (process.env.GLIMPSE_LOSS_KINDS ?? 'clip,siglip').split(',') as ('clip' | 'siglip')[];
  const imgAll = unitRows(n * B, 11);
  const txtAll = unitRows(n * B, 12);

  for (const kind of kinds) {
    const scaleValue = kind === 'clip' ? Math.log(1 / 0.07) : Math.log(10);
    const biasValue = kind === 'clip' ? null : -5;
    const params = () => ({
      logitScale: leaf([scaleValue], []),
      logitBias: biasValue === null ? null : leaf([biasValue], []),
    });

    // The single-process loss on the whole batch (chunks of 3 texts for SigLIP).
    const whole = params();
    const wi = leaf(imgAll, [n * B, D]);
    const wt = leaf(txtAll, [n * B, D]);
    const wholeLoss = kind === 'clip'
      ? clipContrastiveLoss(wi, wt, whole.logitScale)
      : siglipSigmoidLoss(wi, wt, whole.logitScale, whole.logitBias!, { chunkSize: 3 });
    wholeLoss.backward();

    // This rank's share.
    const mine = params();
    const img = leaf(imgAll.subarray(rank * B * D, (rank + 1) * B * D), [B, D]);
    const txt = leaf(txtAll.subarray(rank * B * D, (rank + 1) * B * D), [B, D]);
    const loss = await pairLossAcrossRanks(comm, { kind, ...mine, chunkSize: 2 }, img, txt);

    const losses = concat(await comm.allGather(tensor([loss], { shape: [1] })), 0).toArray() as number[];
    close([losses.reduce((a, b) => a + b, 0) / n], [wholeLoss.item()], `${kind}: mean of the rank losses`);
    for (const [name, local, global] of [['image', img, wi], ['text', txt, wt]] as const) {
      const gathered = concat(await comm.allGather(local.grad!.contiguous()), 0).div(n);
      close(gathered.data() as Float32Array, global.grad!.data() as Float32Array, `${kind}: ${name} feature gradients / ${n}`);
    }
    const scaleGrad = await comm.allReduce(mine.logitScale.grad!.clone(), 'avg');
    close([scaleGrad.item()], [whole.logitScale.grad!.item()], `${kind}: averaged logit scale gradient`);
    if (mine.logitBias) {
      const biasGrad = await comm.allReduce(mine.logitBias.grad!.clone(), 'avg');
      close([biasGrad.item()], [whole.logitBias!.grad!.item()], `${kind}: averaged logit bias gradient`);
    }
    process.stdout.write(`rank ${rank}/${n}: ${kind} matches the single-process loss\n`);
  }

  // A rank with another batch size: every rank gets the same error, and the ranks stay in step.
  const rows = rank === 0 ? B + 1 : B;
  const odd = (seed: number) => leaf(unitRows(rows, seed), [rows, D]);
  await assert.rejects(
    pairLossAcrossRanks(comm, { kind: 'siglip', logitScale: leaf([1], []), logitBias: leaf([0], []) }, odd(1), odd(2)),
    new RegExp(`same batch size.*; rank 0 a siglip loss of ${B + 1} pairs of ${D} features; ranks? 1[\\d, ]* a siglip loss of ${B} pairs`),
  );
  await comm.barrier();
  process.stdout.write(`rank ${rank}/${n}: a batch size mismatch is an error on every rank\n`);
  comm.close();
}

if (isWorker()) {
  main().catch((e: unknown) => {
    process.stderr.write(`rank ${process.env.OMPI_COMM_WORLD_RANK}: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
