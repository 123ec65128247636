// The image dataset sources the registry (registry.ts) lists, and how each opens from the part
// of a spec after its name (`scenes:train`, `csv:pairs.tsv`, ...).
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
