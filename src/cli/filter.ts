// `glimpse filter --model M --data SPEC --keep 0.7 --out DIR`: scores every image-caption pair
// with a CLIP or SigLIP model and writes the best-scoring ones as a new WebDataset, with a
// scores.jsonl of every pair (Data Filtering Networks' recipe).
import { Command } from 'commander';
import { openDataset } from '../data/registry.js';
import type { OpenDatasetOptions } from '../data/sources.js';
import { addModelOptions, mapping, type ModelLoadingOptions, modelLoadOptions, number, positiveInt } from './args.js';
import { filterDataset, type FilterReport } from '../eval/filter.js';
import { loadVisionLanguageModel } from '../tasks/zeroshot.js';

export interface FilterCommandOptions extends ModelLoadingOptions {
  model: string;
  data: string;
  /** Split when the spec names none (default train). */
  split?: string;
  /** Options for opening the dataset (e.g. {scenes: {corruptCaptions: 0.3}}). */
  dataOptions?: OpenDatasetOptions;
  /** Fraction kept; or threshold. */
  keep?: number;
  threshold?: number;
  out: string;
  batchSize?: number;
  limit?: number;
  samplesPerShard?: number;
}

export async function runFilter(o: FilterCommandOptions): Promise<FilterReport> {
  if ((o.keep === undefined) === (o.threshold === undefined)) throw new Error('filter: give exactly one of --keep <fraction> and --threshold <cosine>');
  const dataset = await openDataset(o.data, { ...o.dataOptions, split: o.split ?? 'train' });
  const vl = await loadVisionLanguageModel(o.model, modelLoadOptions(o));
  return filterDataset(vl, dataset, {
    keepFraction: o.keep, threshold: o.threshold, out: o.out, batchSize: o.batchSize, limit: o.limit, samplesPerShard: o.samplesPerShard,
  });
}

export function formatFilter(r: FilterReport, json: boolean): string {
  if (json) {
    return JSON.stringify({
      task: 'filter', model: r.model, dataset: r.dataset, samples: r.samples, kept: r.kept, threshold: r.threshold,
      shards: r.shards, scores: r.scoresFile,
      clean: r.clean && { precision: r.clean.precision, recall: r.clean.recall, clean_before: r.clean.cleanBefore },
    });
  }
  const lines = [
    `filtered ${r.dataset} with ${r.model}: kept ${r.kept} of ${r.samples} pairs (cosine >= ${r.threshold.toFixed(4)})`,
    `  shards  ${r.shards.length ? `${r.shards[0]}${r.shards.length > 1 ? ` ... (${r.shards.length})` : ''}` : 'none'}`,
  ];
  if (r.scoresFile) lines.push(`  scores  ${r.scoresFile}`);
  if (r.clean) {
    const p = (x: number) => `${(100 * x).toFixed(2)}%`;
    lines.push(`  clean pairs: ${p(r.clean.cleanBefore)} before, precision ${p(r.clean.precision)}, recall ${p(r.clean.recall)}`);
  }
  return lines.join('\n');
}


/** The commander `filter` command, for the CLI to mount. */
export function filterCommand(): Command {
  return addModelOptions(new Command('filter')
    .description('keep the image-caption pairs a CLIP/SigLIP model scores best (cosine similarity); write them as WebDataset shards')
    .requiredOption('--model <name>', 'registered model name or a model folder (CLIP or SigLIP)'))
    .requiredOption('--data <spec>', 'dataset with captions: scenes[:split], shards (.tar, {..} patterns), a .csv/.tsv listing, ...')
    .option('--split <name>', 'split when the spec names none (default train)')
    .option('--data-options <yaml>', "options for opening the data, e.g. '{scenes: {length: 10000, corruptCaptions: 0.3}}'", mapping('--data-options'))
    .option('--keep <fraction>', 'fraction of pairs kept, the best-scoring, in (0, 1]', number('--keep'))
    .option('--threshold <cosine>', 'or keep every pair scoring at least this', number('--threshold'))
    .requiredOption('--out <dir>', 'output folder: shard-000000.tar, ... and scores.jsonl')
    .option('--batch-size <n>', 'pairs per forward pass (default 32)', positiveInt('--batch-size'))
    .option('--limit <n>', 'the first n samples only', positiveInt('--limit'))
    .option('--shard-size <n>', 'samples per output shard (default 10000)', positiveInt('--shard-size'))
    .option('--json', 'print one JSON object (the last line)')
    .action(async (o: FilterCommandOptions & { shardSize?: number; json?: boolean }) => {
      console.log(formatFilter(await runFilter({ ...o, samplesPerShard: o.shardSize }), !!o.json));
    });
}
