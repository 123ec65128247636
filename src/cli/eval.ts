// `glimpse eval accuracy | zeroshot | retrieval | linear-probe`: the evaluations over a dataset spec (what
// openDataset reads: scenes[:split], fashion-mnist[:split], shards, a CSV listing, a folder);
// `glimpse eval oad`: online action detection metrics of saved scores.
// Each prints a readable summary, or with --json one JSON object on the last line.
import fs from 'node:fs';
import { Command } from 'commander';
import type { Dataset } from '../data/dataset.js';
import { openDataset } from '../data/registry.js';
import type { OpenDatasetOptions } from '../data/sources.js';
import { addDistributedOption, addModelOptions, communicatorFor, fraction, mapping, type ModelLoadingOptions, modelLoadOptions, positiveInt } from './args.js';
import type { Communicator } from '../dist/communicator.js';
import { type ClassifierEvalResult, evaluateClassifier, evaluateZeroShot, type ZeroShotEvalResult } from '../eval/classification.js';
import { loadFeatureSource } from '../eval/features.js';
import { DEFAULT_WEIGHT_DECAYS, evaluateLinearProbe, type LinearProbeEvalResult } from '../eval/linear_probe.js';
import { frameLevelAP, type FrameLevelAPResult, readOadScores } from '../eval/oad.js';
import { evaluateRetrieval, type RetrievalEvalResult } from '../eval/retrieval.js';
import { isReportingRank } from '../eval/shard.js';
import { loadImageClassifier } from '../tasks/image_classification.js';
import { loadVisionLanguageModel } from '../tasks/zeroshot.js';

/** Options every evaluation takes. */
export interface EvalCommandOptions extends ModelLoadingOptions {
  /** A registered model name or a model folder. */
  model: string;
  /** A dataset spec (see openDataset). */
  data: string;
  /** The split when the spec names none (default: the evaluation's). */
  split?: string;
  batchSize?: number;
  /** Only the first n samples. */
  limit?: number;
  /** Options for opening the dataset(s), as openDataset takes them (e.g. {scenes: {length: 512}}). */
  dataOptions?: OpenDatasetOptions;
  json?: boolean;
  /** The ranks sharing the evaluation (each evaluates a share of the samples; all get the result). */
  communicator?: Communicator | null;
}


/** A list option: a file with one entry per line, else the text split at commas. */
export function readList(value: string, what: string): string[] {
  const items = fs.existsSync(value) && fs.statSync(value).isFile()
    ? fs.readFileSync(value, 'utf8').split(/\r?\n/)
    : value.split(',');
  const list = items.map((s) => s.trim()).filter((s) => s !== '');
  if (list.length === 0) throw new Error(`${what}: '${value}' holds no entries`);
  return list;
}

const pct = (x: number | null): string => (x === null ? '   n/a' : `${(100 * x).toFixed(2).padStart(6)}%`);

async function open(spec: string, split: string | undefined, options: OpenDatasetOptions = {}): Promise<Dataset> {
  return openDataset(spec, { ...options, split });
}

// ---------------------------------------------------------------------------------------------
// accuracy

export async function runAccuracy(o: EvalCommandOptions): Promise<ClassifierEvalResult> {
  const dataset = await open(o.data, o.split ?? 'test', o.dataOptions);
  const { tokenizer: _tokenizer, ...loading } = modelLoadOptions(o);
  const classifier = await loadImageClassifier(o.model, loading);
  return evaluateClassifier(classifier, dataset, { batchSize: o.batchSize, limit: o.limit, communicator: o.communicator });
}

/** The classes whose names differ between the model and the data, for the text output. */
function mismatchNote(r: ClassifierEvalResult): string[] {
  const m = r.labelMismatches;
  if (m.length === 0) return [];
  const shown = m.slice(0, 5).map((x) => `${x.index} '${x.model}' / '${x.dataset}'`).join(', ');
  return [`  note: ${m.length} of ${r.perClass.length} class names differ between the model's id2label and the data `
    + `(class, model / data): ${shown}${m.length > 5 ? ', ...' : ''}; classes are matched by index`];
}

export function formatAccuracy(r: ClassifierEvalResult, json: boolean): string {
  if (json) {
    return JSON.stringify({
      task: 'accuracy', model: r.model, dataset: r.dataset, samples: r.samples,
      top1: r.top1, top5: r.top5, mean_per_class_accuracy: r.meanPerClassAccuracy,
      per_class: r.perClass.map((c) => ({ name: c.name, count: c.count, accuracy: c.accuracy })),
      confusion: r.confusion,
      label_mismatches: r.labelMismatches,
    });
  }
  const width = Math.max(5, ...r.perClass.map((c) => c.name.length));
  return [
    `accuracy of ${r.model} on ${r.dataset}: ${r.samples} images, ${r.perClass.length} classes`,
    `  top-1 ${pct(r.top1)}   top-5 ${pct(r.top5)}   mean per class ${pct(r.meanPerClassAccuracy)}`,
    ...r.perClass.filter((c) => c.count > 0).map((c) => `  ${c.name.padEnd(width)} ${pct(c.accuracy)}  (${c.correct}/${c.count})`),
    ...mismatchNote(r),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// zeroshot

export interface ZeroShotCommandOptions extends EvalCommandOptions {
  /** Prompt templates with {} (default: the model folder's zeroshot_config.json, else open_clip's 'a photo of a {}.'). */
  templates?: readonly string[];
  /** Class names for the prompts (default the dataset's, else the model folder's). */
  classNames?: readonly string[];
}

export async function runZeroShot(o: ZeroShotCommandOptions): Promise<ZeroShotEvalResult> {
  const dataset = await open(o.data, o.split ?? 'test', o.dataOptions);
  const vl = await loadVisionLanguageModel(o.model, modelLoadOptions(o));
  return evaluateZeroShot(vl, dataset, {
    templates: o.templates?.length ? o.templates : undefined, classNames: o.classNames, batchSize: o.batchSize, limit: o.limit, communicator: o.communicator,
  });
}

export function formatZeroShot(r: ZeroShotEvalResult, json: boolean): string {
  if (json) {
    return JSON.stringify({
      task: 'zeroshot', model: r.model, dataset: r.dataset, samples: r.samples, templates: r.templates.length,
      top1: r.top1, top5: r.top5, mean_per_class_accuracy: r.meanPerClassAccuracy,
      per_class: r.perClass.map((c) => ({ name: c.name, count: c.count, accuracy: c.accuracy })),
      confusion: r.confusion,
    });
  }
  const width = Math.max(5, ...r.perClass.map((c) => c.name.length));
  return [
    `zero-shot ${r.model} on ${r.dataset}: ${r.samples} images, ${r.perClass.length} classes, ${r.templates.length} templates`,
    `  top-1 ${pct(r.top1)}   top-5 ${pct(r.top5)}   mean per class ${pct(r.meanPerClassAccuracy)}`,
    ...r.perClass.filter((c) => c.count > 0).map((c) => `  ${c.name.padEnd(width)} ${pct(c.accuracy)}  (${c.correct}/${c.count})`),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// retrieval

export interface RetrievalCommandOptions extends EvalCommandOptions {
  groupImages?: 'content' | 'sample';
}

export async function runRetrieval(o: RetrievalCommandOptions): Promise<RetrievalEvalResult> {
  const dataset = await open(o.data, o.split ?? 'test', o.dataOptions);
  const vl = await loadVisionLanguageModel(o.model, modelLoadOptions(o));
  return evaluateRetrieval(vl, dataset, { batchSize: o.batchSize, limit: o.limit, groupImages: o.groupImages, communicator: o.communicator });
}

export function formatRetrieval(r: RetrievalEvalResult, json: boolean): string {
  if (json) return JSON.stringify({ task: 'retrieval', model: r.model, dataset: r.dataset, images: r.images, texts: r.texts, ...r.metrics });
  const row = (name: string, m: RetrievalEvalResult['imageToText']) =>
    `  ${name}  ${Object.entries(m.recall).map(([k, v]) => `R@${k} ${pct(v)}`).join('  ')}  mean rank ${m.meanRank.toFixed(2)}  median rank ${m.medianRank}`;
  return [
    `retrieval ${r.model} on ${r.dataset}: ${r.images} images, ${r.texts} captions`,
    row('image->text', r.imageToText),
    row('text->image', r.textToImage),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// linear-probe

export interface LinearProbeCommandOptions extends EvalCommandOptions {
  /** The test set's spec (default: --data with the test split). */
  testData?: string;
  /** The test split (default 'test'). */
  testSplit?: string;
  testLimit?: number;
  /** ViT pooling: cls (default) or mean. */
  pooling?: 'cls' | 'mean';
  weightDecays?: readonly number[];
  valFraction?: number;
  seed?: number;
}

export async function runLinearProbe(o: LinearProbeCommandOptions): Promise<LinearProbeEvalResult> {
  const { weights, init } = modelLoadOptions(o);
  const source = await loadFeatureSource(o.model, { weights, init, pooling: o.pooling });
  const train = await open(o.data, o.split ?? 'train', o.dataOptions);
  const test = await open(o.testData ?? o.data, o.testSplit ?? 'test', o.dataOptions);
  return evaluateLinearProbe(source, train, test, {
    batchSize: o.batchSize, limit: o.limit, testLimit: o.testLimit, weightDecays: o.weightDecays, valFraction: o.valFraction, seed: o.seed,
    communicator: o.communicator,
  });
}

export function formatLinearProbe(r: LinearProbeEvalResult, json: boolean): string {
  if (json) {
    return JSON.stringify({
      task: 'linear-probe', train_dataset: r.trainDataset, test_dataset: r.testDataset, train_samples: r.trainSamples, test_samples: r.testSamples,
      dim: r.dim, weight_decay: r.weightDecay, train_accuracy: r.trainAccuracy, val_accuracy: r.valAccuracy, test_accuracy: r.testAccuracy,
      grid: r.grid.map((g) => ({ weight_decay: g.weightDecay, val_accuracy: g.valAccuracy, iterations: g.iterations, converged: g.converged })),
    });
  }
  return [
    `linear probe on ${r.dim}-d features: train ${r.trainDataset} (${r.trainSamples}), test ${r.testDataset ?? '-'} (${r.testSamples ?? 0})`,
    ...r.grid.map((g) => `  weight decay ${g.weightDecay.toExponential(0).padEnd(6)} val ${pct(g.valAccuracy)}${g.converged ? '' : '  (not converged)'}`),
    `  chosen ${r.weightDecay.toExponential(0)}: train ${pct(r.trainAccuracy)}  val ${pct(r.valAccuracy)}  test ${pct(r.testAccuracy)}`,
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// oad

export interface OadCommandOptions {
  /** A score file (see readOadScores). */
  scores: string;
  /** A class without positive or negative frames: an error (default) or the official NaN. */
  emptyClasses?: 'error' | 'nan';
}

export interface OadEvalResult extends FrameLevelAPResult {
  readonly file: string;
  readonly layout: string;
}

export function runOad(o: OadCommandOptions): OadEvalResult {
  const { probs, labels, layout } = readOadScores(o.scores);
  try {
    return { ...frameLevelAP(probs, labels, { emptyClasses: o.emptyClasses }), file: o.scores, layout };
  } catch (e) {
    throw new Error(`${o.scores}: ${(e as Error).message}`, { cause: e });
  }
}

export function formatOad(r: OadEvalResult, json: boolean): string {
  if (json) {
    // JSON has no NaN: a class left undefined (emptyClasses 'nan') is null.
    return JSON.stringify({
      task: 'oad', file: r.file, classes: r.classes, frames: r.frames,
      mAP: r.mAP, mcAP: r.mcAP, per_class_AP: r.perClassAP, per_class_cAP: r.perClassCAP, positives: r.positives,
    });
  }
  const num = (x: number): string => (Number.isNaN(x) ? '   n/a' : `${(100 * x).toFixed(2).padStart(6)}%`);
  return [
    `online action detection on ${r.file}: ${r.frames} frames, ${r.classes - 1} action classes (class 0 background skipped)`,
    `  mAP ${num(r.mAP)}   mcAP ${num(r.mcAP)}`,
    ...r.perClassAP.map((ap, i) => `  class ${String(i + 1).padStart(3)}  AP ${num(ap)}  cAP ${num(r.perClassCAP[i]!)}  (${r.positives[i]} positive frames)`),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------
// commander

const collect = (v: string, prev: string[] = []) => [...prev, v];

type DistributedFlag = { distributed?: boolean };

/**
 * Runs an evaluation in this process alone, or shared by the ranks of the job it belongs to
 * (each evaluates a share of the samples; every rank computes the same result). Only rank 0
 * prints it. The communicator is closed after a success; after an error the process exits
 * non-zero, which ends the whole job, rather than wait in MPI_Finalize for ranks stuck in a
 * collective.
 */
async function shared(o: DistributedFlag, evaluate: (communicator: Communicator | null) => Promise<string>): Promise<void> {
  const communicator = communicatorFor(o);
  const text = await evaluate(communicator);
  if (isReportingRank(communicator)) console.log(text);
  communicator?.close();
}

function common(cmd: Command, defaultSplit: string, opts: { tokenizer?: boolean } = {}): Command {
  return addDistributedOption(addModelOptions(cmd.requiredOption('--model <name>', 'registered model name or a model folder'), opts))
    .requiredOption('--data <spec>', 'dataset: scenes[:split], fashion-mnist[:split], shards (.tar, {..} patterns), a .csv/.tsv listing or a folder')
    .option('--split <name>', `split when the spec names none (default ${defaultSplit})`)
    .option('--data-options <yaml>', "options for opening the data, e.g. '{scenes: {length: 512}}'", mapping('--data-options'))
    .option('--batch-size <n>', 'images per forward pass (default 32)', positiveInt('--batch-size'))
    .option('--limit <n>', 'evaluate the first n samples only', positiveInt('--limit'))
    .option('--json', 'print one JSON object (the last line)');
}

/** `accuracy`: top-1/top-5 and per-class accuracy of an image classifier (its own head) on a labelled dataset. */
export function accuracyCommand(): Command {
  // A classifier reads images only: no tokenizer.
  return common(new Command('accuracy'), 'test', { tokenizer: false })
    .description("accuracy (top-1, top-5, per class) of an image classifier's head on a labelled dataset, whose classes must be the model's id2label")
    .action(async (o: EvalCommandOptions & DistributedFlag) => {
      await shared(o, async (communicator) => formatAccuracy(await runAccuracy({ ...o, communicator }), !!o.json));
    });
}

/** `zeroshot`: zero-shot top-1/top-5 accuracy of a CLIP or SigLIP model on a labelled dataset. */
export function zeroShotCommand(): Command {
  return common(new Command('zeroshot'), 'test')
    .description('zero-shot classification accuracy (top-1, top-5, per class) of a CLIP or SigLIP model on a labelled dataset')
    .option('--template <t>', "prompt template with {} for the class name (repeatable; default: the model folder's zeroshot_config.json, else 'a photo of a {}.')", collect)
    .option('--templates <file|list>', 'prompt templates: a file with one per line, or a comma-separated list')
    .option('--classnames <file|list>', "class names for the prompts (default the dataset's): a file with one per line, or a comma-separated list")
    .action(async (o: EvalCommandOptions & DistributedFlag & { template?: string[]; templates?: string; classnames?: string }) => {
      const templates = [...(o.template ?? []), ...(o.templates !== undefined ? readList(o.templates, '--templates') : [])];
      const classNames = o.classnames !== undefined ? readList(o.classnames, '--classnames') : undefined;
      await shared(o, async (communicator) => formatZeroShot(await runZeroShot({ ...o, templates, classNames, communicator }), !!o.json));
    });
}

/** `retrieval`: image <-> text recall@1/5/10 and ranks on a captioned dataset. */
export function retrievalCommand(): Command {
  return common(new Command('retrieval'), 'test')
    .description("image<->text retrieval (R@1/5/10, mean and median rank, as open_clip reports them) on a captioned dataset")
    .option('--group-images <how>', 'content: identical images are one image with several captions (default); sample: one image per sample', 'content')
    .action(async (o: EvalCommandOptions & DistributedFlag & { groupImages: string }) => {
      const groupImages = o.groupImages;
      if (groupImages !== 'content' && groupImages !== 'sample') throw new Error(`retrieval: --group-images must be content or sample, got '${groupImages}'`);
      await shared(o, async (communicator) => formatRetrieval(await runRetrieval({ ...o, groupImages, communicator }), !!o.json));
    });
}

/** `linear-probe`: logistic regression on frozen image features, weight decay chosen on a validation split. */
export function linearProbeCommand(): Command {
  // A probe reads image features only: no tokenizer.
  return common(new Command('linear-probe'), 'train', { tokenizer: false })
    .description('linear probe: L2-regularised logistic regression on frozen image features (CLIP/SigLIP embeddings or ViT tokens)')
    .option('--test-data <spec>', 'the test set (default: --data with --test-split)')
    .option('--test-split <name>', 'split of the test set (default test)')
    .option('--test-limit <n>', 'the first n test samples only', positiveInt('--test-limit'))
    .option('--pooling <how>', 'ViT features: cls (default) or mean of the patch tokens')
    .option('--weight-decays <list>', `comma-separated weight decays to choose from (default ${DEFAULT_WEIGHT_DECAYS.join(',')})`)
    .option('--val-fraction <x>', 'training fraction held out to choose the weight decay (default 0.2)', fraction('--val-fraction'))
    .option('--seed <n>', 'seed of the validation split (default 0)', (v) => parseInt(v, 10))
    .action(async (o: LinearProbeCommandOptions & DistributedFlag & { weightDecays?: string | number[] }) => {
      if (o.pooling !== undefined && o.pooling !== 'cls' && o.pooling !== 'mean') throw new Error(`linear-probe: --pooling must be cls or mean, got '${o.pooling}'`);
      const decays = typeof o.weightDecays === 'string' ? readList(o.weightDecays, '--weight-decays').map((v) => {
        const x = Number(v);
        if (!(x >= 0) || !Number.isFinite(x)) throw new Error(`--weight-decays: '${v}' is not a number >= 0`);
        return x;
      }) : undefined;
      await shared(o, async (communicator) => formatLinearProbe(await runLinearProbe({ ...o, weightDecays: decays, communicator }), !!o.json));
    });
}

/** `oad`: OadTR's frame-level mAP and mcAP of saved detection scores. */
export function oadCommand(): Command {
  return new Command('oad')
    .description("online action detection: per-class frame-level AP and calibrated AP and their means (mAP, mcAP), as OadTR's official evaluation")
    .requiredOption('--scores <file>', 'a safetensors file with probs and labels, [classes, frames], class 0 = background')
    .option('--empty-classes <how>', 'a class with no positive or no negative frame: error (default) or nan (the official NaN)', 'error')
    .option('--json', 'print one JSON object (the last line)')
    .action((o: { scores: string; emptyClasses: string; json?: boolean }) => {
      const emptyClasses = o.emptyClasses;
      if (emptyClasses !== 'error' && emptyClasses !== 'nan') throw new Error(`oad: --empty-classes must be error or nan, got '${emptyClasses}'`);
      console.log(formatOad(runOad({ scores: o.scores, emptyClasses }), !!o.json));
    });
}

/** The `glimpse eval` subcommands: accuracy, zeroshot, retrieval, linear-probe, oad. */
export function evalCommands(): Command[] {
  return [accuracyCommand(), zeroShotCommand(), retrievalCommand(), linearProbeCommand(), oadCommand()];
}
