// Evaluation of an online action detector (the oad task) on a split of feature streams, as the
// official OadTR test does it: the test windows as the official data layer cuts them (from each
// video's start, whole windows, current chunks of the ambiguous class left out), the current
// chunk's class probabilities (softmax of the encoder scores) ranked per class over all windows
// -> frame-level mAP and mcAP (src/eval/oad.ts). Beside them, the decoder's anticipation: top-1
// accuracy of its k-th query against the class of chunk t+k, for k = 1..Q.
//
// What is scored:
// - The ambiguous class has no positive frame (its windows are left out), so its row is dropped
//   from probs and labels; the softmax that gives the probabilities still runs over all classes.
// - Labels are one-hot at the current chunk's label argmax (soft label rows are binarised; the
//   official metric counts only labels of exactly 0 or 1).
// - A class without positive frames in the evaluated windows gets the official NaN AP (and so a NaN
//   mean) rather than an error, so that a short run is not lost at its evaluation.
// - Anticipation: future chunks of the ambiguous class are left out; background counts as a class
//   (`eval/anticipation_top1@k`); `eval/anticipation_action_top1@k` is the accuracy over the
//   future chunks that hold an action, where always predicting background scores 0.
//
// The windows are shared among the ranks of a distributed run; every rank gets the same metrics
// and rank 0 writes the predictions: <out>/predictions/step_<step>.safetensors with `probs` and
// `labels` [classes, frames] (class 0 background, the ambiguous class left out, frames in window
// order), the layout `glimpse eval oad --scores` reads.
import fs from 'node:fs';
import path from 'node:path';
import { labelArgmax, OadWindowSampler, stackWindows } from '../data/oad_streams.js';
import { frameLevelAP } from '../eval/oad.js';
import { gatherRows, isReportingRank, shardRange } from '../eval/shard.js';
import { writeSafetensors } from '../io/safetensors.js';
import type { OnlineActionDetector } from '../models/family.js';
import { noGrad } from '../tensor/autograd.js';
import { tensor } from '../tensor/tensor.js';
import type { TrainConfig } from './config.js';
import type { StreamSplitData } from './data.js';
import type { EvalMetrics, EvalPoint } from './evaluate.js';

/** Where the oad evaluation at `step` writes its predictions. */
export function predictionsFile(config: TrainConfig, step: number): string {
  return path.join(config.out, 'predictions', `step_${String(step).padStart(7, '0')}.safetensors`);
}

/** The metrics of an online action detector on a stream split (see the notes at the top of this file). */
export async function evaluateOad(model: OnlineActionDetector, val: StreamSplitData, config: TrainConfig, at: EvalPoint): Promise<EvalMetrics> {
  const { window: W, queries: Q, numClasses: C } = model;
  const info = val.set;
  if (info.classNames.length !== C) throw new Error(`evaluation: ${val.name} has ${info.classNames.length} classes, the model predicts ${C}`);
  const ambiguous = info.ambiguousClass;
  const windows = new OadWindowSampler(val.videos, info, {
    encSteps: W, decSteps: Q, cover: 'official', shuffle: false, randomOffset: false, skipAmbiguous: true, batchSize: 1,
  });
  const count = Math.min(windows.length, config.eval.max_samples ?? Infinity);
  const { start, end } = shardRange(count, at.communicator);
  // Per window: the class probabilities [C], the current label [1], the decoder's predicted and
  // true classes [Q] each (-1 where the future chunk is not scored).
  const width = C + 1 + 2 * Q;
  const rows = new Float64Array((end - start) * width);
  const dims = { cameraDim: info.cameraDim, motionDim: info.motionDim, classes: C };
  const wasTraining = model.training;
  model.eval();
  try {
    noGrad(() => {
      for (let b0 = start; b0 < end; b0 += config.eval.batch_size) {
        const batch = Array.from({ length: Math.min(config.eval.batch_size, end - b0) }, (_, i) => windows.window(b0 + i));
        const B = batch.length;
        const s = stackWindows(batch, W, Q, dims);
        const out = model.forward(
          model.cameraDim > 0 ? tensor(s.camera, { shape: [B, W, info.cameraDim] }) : null,
          model.motionDim > 0 ? tensor(s.motion, { shape: [B, W, info.motionDim] }) : null,
        );
        const probs = out.encoderScores.softmax(-1).toArray();
        const predicted = out.decoderScores.argmax(-1).toArray();
        for (let i = 0; i < B; i++) {
          const row = (b0 - start + i) * width;
          for (let c = 0; c < C; c++) rows[row + c] = probs[i * C + c]!;
          rows[row + C] = labelArgmax(s.encTarget, i, C);
          for (let k = 0; k < Q; k++) {
            const target = batch[i]!.decTarget;
            const zero = target.subarray(k * C, (k + 1) * C).every((v) => v === 0);
            const truth = zero ? -1 : labelArgmax(target, k, C);
            rows[row + C + 1 + k] = Number(predicted[i * Q + k]);
            rows[row + C + 1 + Q + k] = truth === ambiguous ? -1 : truth;
          }
        }
      }
    });
  } finally {
    if (wasTraining) model.train();
  }
  const local = end > start ? tensor(rows, { shape: [end - start, width], dtype: 'float64' }) : null;
  const all = (await gatherRows(local, count, at.communicator, 'float64')).data() as Float64Array;

  // [classes, frames] without the ambiguous class, float32 as the file keeps them: the metrics
  // are those of the file `glimpse eval oad --scores` reads.
  const scored = Array.from({ length: C }, (_, c) => c).filter((c) => c !== ambiguous);
  const probs = new Float32Array(scored.length * count);
  const labels = new Float32Array(scored.length * count);
  for (let f = 0; f < count; f++) {
    const row = f * width;
    scored.forEach((c, r) => {
      probs[r * count + f] = all[row + c]!;
      labels[r * count + f] = all[row + C] === c ? 1 : 0;
    });
  }
  const shape = [scored.length, count];
  const ap = frameLevelAP({ shape, data: probs }, { shape, data: labels }, { emptyClasses: 'nan' });
  const metrics: EvalMetrics = { 'eval/mAP': ap.mAP, 'eval/mcAP': ap.mcAP };
  for (let k = 0; k < Q; k++) {
    let [n, correct, actions, actionsCorrect] = [0, 0, 0, 0];
    for (let f = 0; f < count; f++) {
      const truth = all[f * width + C + 1 + Q + k]!;
      if (truth < 0) continue;
      const hit = all[f * width + C + 1 + k] === truth ? 1 : 0;
      n++;
      correct += hit;
      if (truth > 0) {
        actions++;
        actionsCorrect += hit;
      }
    }
    if (n > 0) metrics[`eval/anticipation_top1@${k + 1}`] = correct / n;
    if (actions > 0) metrics[`eval/anticipation_action_top1@${k + 1}`] = actionsCorrect / actions;
  }
  if (isReportingRank(at.communicator)) {
    const file = predictionsFile(config, at.step);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    writeSafetensors(file, { probs: { shape, data: probs }, labels: { shape, data: labels } }, {
      class_names: JSON.stringify(scored.map((c) => info.classNames[c]!)), streams: val.name, split: val.split,
    });
  }
  return metrics;
}
