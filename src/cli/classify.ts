// `glimpse classify`: zero-shot classification of images (paths or globs) against labels.
import fs from 'node:fs';
import { loadVisionLanguageModel, zeroShotClassify } from '../tasks/zeroshot.js';
import { type ModelLoadingOptions, modelLoadOptions } from './args.js';
import { expandPaths } from './embed.js';

export interface ClassifyCommandOptions extends ModelLoadingOptions {
  /** A registered model name or a model folder (CLIP or SigLIP). */
  model: string;
  /** The class names; or labelsFile. */
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
 * otherwise per image its path, then its top labels with scores, one per line.
 */
export async function classifyCommand(images: readonly string[], options: ClassifyCommandOptions): Promise<string> {
  const labels = readLabels(options);
  const paths = expandPaths(images);
  const vl = await loadVisionLanguageModel(options.model, modelLoadOptions(options));
  const { predictions } = await zeroShotClassify(vl, paths, labels, {
    templates: options.templates && options.templates.length ? options.templates : undefined,
    topK: options.topK,
  });
  if (options.json) return JSON.stringify(paths.map((image, i) => ({ image, predictions: predictions[i] })));
  const width = Math.max(...labels.map((l) => l.length));
  return paths.map((p, i) => [p, ...predictions[i]!.map((s) => `  ${s.label.padEnd(width)}  ${s.score.toFixed(4)}`)].join('\n')).join('\n');
}
