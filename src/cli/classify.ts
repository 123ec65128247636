// `glimpse classify`: classification of images (paths or globs) by the model's kind, through the
// pipelines: an image classifier ranks its own labels (config.json's id2label), as transformers'
// image-classification pipeline does; a CLIP or SigLIP model ranks the labels given, zero-shot.
import fs from 'node:fs';
import { createModel } from '../models/registry.js';
import { pipeline } from '../tasks/pipeline.js';
import { type LabelScore, loadVisionLanguageModel, zeroShotClassify } from '../tasks/zeroshot.js';
import { type ModelLoadingOptions, modelLoadOptions } from './args.js';
import { expandPaths } from './embed.js';

export interface ClassifyCommandOptions extends ModelLoadingOptions {
  /** A registered model name or a model folder: an image classifier, or a CLIP or SigLIP model. */
  model: string;
  /** The class names for a zero-shot model; or labelsFile. */
  labels?: readonly string[];
  /** A text file with one class name per line. */
  labelsFile?: string;
  /** Prompt templates with {} for the class name (default: the model folder's zeroshot_config.json, else 'a photo of a {}.'). */
  templates?: readonly string[];
  /** Labels shown per image (default 5). */
  topK?: number;
  json?: boolean;
}

function readLabels(o: ClassifyCommandOptions): string[] {
  const given = (o.labels ?? []).flatMap((l) => l.split(',')).map((l) => l.trim()).filter((l) => l !== '');
  const fromFile = o.labelsFile === undefined ? [] : fs.readFileSync(o.labelsFile, 'utf8').split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  const labels = [...given, ...fromFile];
  if (labels.length === 0) throw new Error('classify: no labels (use --labels a,b,c or --labels-file)');
  const dup = labels.find((l, i) => labels.indexOf(l) !== i);
  if (dup !== undefined) throw new Error(`classify: the label '${dup}' is given twice`);
  return labels;
}

/**
 * What `glimpse classify` prints: with --json, an array of {image, predictions: [{label, score}]};
 * otherwise per image its path, then its top labels with scores, one per line. An image
 * classifier's scores are the softmax of its logits over its own labels; a zero-shot model's, its
 * scores against the labels given (CLIP's softmax, SigLIP's sigmoids).
 */
export async function classifyCommand(images: readonly string[], options: ClassifyCommandOptions): Promise<string> {
  const topK = options.topK ?? 5;
  if (!Number.isInteger(topK) || topK < 1) throw new Error(`classify: --top-k must be a positive integer, got ${options.topK}`);
  const paths = expandPaths(images);
  const loading = modelLoadOptions(options);
  const { tokenizer: _tokenizer, ...createOptions } = loading;
  const model = await createModel(options.model, createOptions);
  let predictions: LabelScore[][];
  if (model.kind === 'image-classifier') {
    if (options.labels?.length || options.labelsFile !== undefined || options.templates?.length) {
      throw new Error(`classify: ${options.model} is an image classifier with its own ${model.labels.length} labels (config.json's id2label); `
        + '--labels, --labels-file and --template are for zero-shot models (CLIP, SigLIP): leave them out');
    }
    const classify = await pipeline('image-classification', { name: options.model, model }, loading);
    predictions = await classify(paths, { top_k: topK });
  } else {
    // Zero-shot: the templates given, else the model folder's (zeroshot_config.json), else the default.
    const labels = readLabels(options);
    const vl = await loadVisionLanguageModel(options.model, { ...loading, model });
    ({ predictions } = await zeroShotClassify(vl, paths, labels, { templates: options.templates?.length ? options.templates : undefined, topK }));
  }
  if (options.json) return JSON.stringify(paths.map((image, i) => ({ image, predictions: predictions[i] })));
  const width = Math.max(...predictions.flat().map((p) => p.label.length));
  return paths.map((p, i) => [p, ...predictions[i]!.map((s) => `  ${s.label.padEnd(width)}  ${s.score.toFixed(4)}`)].join('\n')).join('\n');
}
