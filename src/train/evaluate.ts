// Evaluation during and after training, on config.data.val, with the evaluations of src/eval:
// a classifier's accuracy; a dual encoder's zero-shot accuracy (when the set has class names) and
// image <-> text retrieval (when its samples have captions).
import type { Dataset } from '../data/dataset.js';
import { classificationMetrics, evaluateZeroShot } from '../eval/classification.js';
import { forEachBatch } from '../eval/features.js';
import { evaluateRetrieval } from '../eval/retrieval.js';
import { CLIPModel } from '../models/clip.js';
import { SiglipModel } from '../models/siglip.js';
import { ViTForImageClassification } from '../models/vit.js';
import type { VisionLanguageModel } from '../tasks/zeroshot.js';
import type { TrainConfig } from './config.js';
import type { TrainModel } from './model_setup.js';

/** Metrics by name (`eval/...`), as metrics.jsonl and the report hold them. */
export type EvalMetrics = Record<string, number>;

/** The dual encoder with what reads its inputs, as src/tasks and src/eval take it. */
export function visionLanguageModel(tm: TrainModel, name: string): VisionLanguageModel {
  const m = tm.model;
  if (!(m instanceof CLIPModel) && !(m instanceof SiglipModel)) throw new Error(`${m.constructor.name} is not a dual encoder`);
  if (!tm.tokenizer) throw new Error(`${name}: no tokenizer`);
  return { name, family: tm.family as 'clip' | 'siglip', model: m, tokenizer: tm.tokenizer, imageProcessor: tm.imageProcessor, contextLength: tm.contextLength };
}

/**
 * The metrics of the model on `val`: for a classifier `eval/top1` (and `eval/top5` with five
 * classes or more); for a dual encoder `eval/zeroshot_top1`(/`top5`) and the retrieval recalls
 * `eval/i2t_R@k`, `eval/t2i_R@k`. The model is left in the mode it was in.
 */
export async function evaluateModel(tm: TrainModel, val: Dataset, config: TrainConfig): Promise<EvalMetrics> {
  const opts = { batchSize: config.eval.batch_size, limit: config.eval.max_samples ?? undefined };
  const out: EvalMetrics = {};
  const m = tm.model;
  if (m instanceof ViTForImageClassification) {
    if (!val.classNames) throw new Error(`evaluation: ${val.name} has no class names`);
    const scores: number[] = [];
    const labels: number[] = [];
    const source = { imageProcessor: tm.imageProcessor, module: m, extract: (px: Parameters<typeof m.forward>[0]) => m.forward(px).logits };
    await forEachBatch(val, source, opts, (samples, logits) => {
      for (const s of samples) {
        if (s.label === undefined) throw new Error(`evaluation: sample ${s.key} of ${val.name} has no label`);
        labels.push(s.label);
      }
      scores.push(...logits.toArray());
    });
    const r = classificationMetrics(scores, labels, val.classNames);
    out['eval/top1'] = r.top1;
    if (r.top5 !== null) out['eval/top5'] = r.top5;
    return out;
  }
  if (config.task === 'catlip') return out;
  const vl = visionLanguageModel(tm, 'trained model');
  if (val.classNames && val.classNames.length > 0) {
    const r = await evaluateZeroShot(vl, val, { ...opts, templates: config.eval.templates });
    out['eval/zeroshot_top1'] = r.top1;
    if (r.top5 !== null) out['eval/zeroshot_top5'] = r.top5;
  }
  const first = await val.get(0);
  if (first.caption !== undefined) {
    const r = await evaluateRetrieval(vl, val, opts);
    for (const k of [1, 5, 10]) {
      if (r.imageToText.recall[k] !== undefined) out[`eval/i2t_R@${k}`] = r.imageToText.recall[k]!;
      if (r.textToImage.recall[k] !== undefined) out[`eval/t2i_R@${k}`] = r.textToImage.recall[k]!;
    }
  }
  return out;
}
