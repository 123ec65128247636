// openDataset: one string names any source (a built-in dataset, shards, a listing, a folder), and
// datasetEntries lists the sources for the public registry.
import fs from 'node:fs';
import type { Dataset } from './dataset.js';
import type { CaptionTemplates, WarningSink } from './common.js';
import { CsvDataset } from './csv.js';
import { FashionMnist, type FashionMnistSplit } from './fashion_mnist.js';
import { ImageFolder } from './folder.js';
import { type SceneOptions, type SceneSplit, ScenesDataset } from './scenes.js';
import { WebDataset } from './webdataset.js';

export interface OpenDatasetOptions {
  /** The split of a built-in dataset when the spec names none (`scenes` = `scenes:train`). */
  split?: string;
  /** Captions from class names for labelled sources (Fashion-MNIST, image folders). */
  captions?: CaptionTemplates;
  /** Fashion-MNIST's folder (default /usr/share/datasets/fashion-mnist). */
  root?: string;
  scenes?: SceneOptions;
  /** CSV/TSV: field separator (default tab) and the image and caption columns (filepath, title). */
  separator?: string;
  imageColumn?: string;
  captionColumn?: string;
  /** Non-fatal problems found while opening (a damaged shard, ...); default console.warn. */
  onWarning?: WarningSink;
}

/**
 * A source as the registry lists it. `open({ argument })` is what the spec `name:argument` opens
 * (a split of a built-in dataset, a path otherwise); the other options are openDataset's.
 */
export interface DatasetSource {
  readonly name: string;
  readonly aliases: readonly string[];
  readonly kind: 'dataset';
  readonly description: string;
  /** What the part after `name:` is, for help texts. */
  readonly argument: string;
  open(options?: OpenDatasetOptions & { argument?: string }): Promise<Dataset>;
}

function needPath(name: string, argument: string | undefined): string {
  if (!argument) throw new Error(`openDataset: '${name}' needs a path: ${name}:<path>`);
  return argument;
}

export const datasetEntries: readonly DatasetSource[] = [
  {
    name: 'scenes', aliases: ['shapes'], kind: 'dataset', argument: 'train | val | test',
    description: 'Built-in procedural scenes of coloured shapes with generated captions; the test split holds colour-shape pairs never seen in training',
    open: async (o = {}) => new ScenesDataset((o.argument ?? o.split ?? 'train') as SceneSplit, o.scenes),
  },
  {
    name: 'fashion-mnist', aliases: ['fashion_mnist', 'fmnist'], kind: 'dataset', argument: 'train | test',
    description: "Fashion-MNIST (Zalando), 28x28 grey in 10 classes, from Debian's dataset-fashion-mnist files",
    open: async (o = {}) => FashionMnist.open((o.argument ?? o.split ?? 'train') as FashionMnistSplit, { root: o.root, captions: o.captions }),
  },
  {
    name: 'webdataset', aliases: ['wds', 'tar'], kind: 'dataset', argument: 'shards (brace patterns, several joined with ::)',
    description: 'WebDataset tar shards as img2dataset writes them (image + .txt/.json caption)',
    open: async (o = {}) => WebDataset.open(needPath('webdataset', o.argument), { onWarning: o.onWarning }),
  },
  {
    name: 'csv', aliases: ['tsv'], kind: 'dataset', argument: 'file',
    description: "A CSV/TSV listing of image paths and captions (open_clip's filepath/title columns, tab-separated)",
    open: async (o = {}) => CsvDataset.open(needPath('csv', o.argument), { separator: o.separator, imageColumn: o.imageColumn, captionColumn: o.captionColumn }),
  },
  {
    name: 'image-folder', aliases: ['imagefolder', 'folder'], kind: 'dataset', argument: 'folder',
    description: "A folder with one sub-folder of images per class (torchvision's ImageFolder)",
    open: async (o = {}) => ImageFolder.open(needPath('image-folder', o.argument), { captions: o.captions }),
  },
];

function entryNamed(name: string): DatasetSource | undefined {
  const k = name.toLowerCase();
  return datasetEntries.find((e) => e.name === k || e.aliases.includes(k));
}

/**
 * Opens the dataset a spec names: `scenes[:split]`, `fashion-mnist[:split]`, any source as
 * `<name>:<argument>` (e.g. `csv:pairs.txt`), or by its shape: WebDataset shards (a .tar file, a
 * brace pattern, several joined with `::`), a .csv/.tsv file, a folder of class sub-folders.
 * A path that does not exist, or holds no usable sample, is an error naming it.
 */
export async function openDataset(spec: string, options: OpenDatasetOptions = {}): Promise<Dataset> {
  if (typeof spec !== 'string' || spec.trim() === '') throw new Error('openDataset: empty dataset spec');
  // A registered name wins over a file of that name (write ./scenes for a folder called scenes).
  const colon = spec.indexOf(':');
  const [head, argument] = colon > 0 && spec[colon + 1] !== ':' ? [spec.slice(0, colon), spec.slice(colon + 1)] : [spec, undefined];
  const named = entryNamed(head);
  if (named) return named.open({ ...options, argument: argument || undefined });
  const open = (name: string): Promise<Dataset> => entryNamed(name)!.open({ ...options, argument: spec });
  if (spec.includes('::') || spec.includes('{') || /\.tar$/i.test(spec)) return open('webdataset');
  if (/\.(csv|tsv)$/i.test(spec)) {
    if (!fs.existsSync(spec)) throw new Error(`openDataset: ${spec} does not exist`);
    return open('csv');
  }
  if (fs.existsSync(spec)) {
    if (fs.statSync(spec).isDirectory()) return open('image-folder');
    throw new Error(`openDataset: ${spec} is not a dataset this can read (a .tar shard, a .csv/.tsv listing or a folder)`);
  }
  throw new Error(`openDataset: ${spec} does not exist (expected ${datasetEntries.map((e) => `${e.name}:<${e.argument}>`).join(', ')}, or a path)`);
}
