// What a dataset is to the rest of Glimpse: an indexed collection of samples (image, caption and/or
// class label). Every source (WebDataset shards, CSV/TSV, image folders, Fashion-MNIST, the built-in
// scenes) is indexed up front, so the loader can shuffle with a seed, shard by rank and resume from a
// sample position without reading what came before.
import type { RgbImage } from './image.js';

/** An image as a source holds it: encoded file bytes (decoded by sharp) or pixels already in memory. */
export type SampleImage =
  | { readonly kind: 'encoded'; readonly bytes: Uint8Array; readonly name: string }
  | { readonly kind: 'pixels'; readonly image: RgbImage };

export interface Sample {
  /** A stable name for warnings and outputs: the WebDataset key, the file path, `train/123`, ... */
  readonly key: string;
  readonly image: SampleImage;
  readonly caption?: string;
  /** Class index into the dataset's `classNames`. */
  readonly label?: number;
  /**
   * False when the source knows the caption does not describe the image (the scenes dataset's
   * deliberately corrupted captions), so filtering experiments can score precision and recall.
   */
  readonly clean?: boolean;
}

/**
 * How to open a dataset again (the arguments of `openDataset`), as plain data: the loader's worker
 * threads cannot receive a Dataset object, so they rebuild one from this and read samples themselves.
 */
export interface DatasetSpec {
  readonly source: string;
  /** Structured-clonable options (no functions). */
  readonly options?: Readonly<Record<string, unknown>>;
}

/**
 * How a dataset's classes are composed of attributes (the scenes' "colour shape" names) and which
 * compositions training never shows: what accuracy per attribute on seen and held-out pairs reads.
 */
export interface ClassCompositions {
  /** The attributes, e.g. ['colour', 'shape']. */
  readonly attributes: readonly string[];
  /** values[c][a]: class c's value of attribute a. */
  readonly values: readonly (readonly string[])[];
  /** The classes whose composition never appears in training. */
  readonly heldOut: ReadonlySet<number>;
  /**
   * Present where the dataset holds only held-out compositions: a dataset of seen ones, drawn as
   * this one is and never trained on, to compare with.
   */
  seenCounterpart?(): Dataset;
}

export interface Dataset {
  /** What the dataset is, for logs and reports (e.g. `scenes(train)`, `fashion-mnist(test)`). */
  readonly name: string;
  readonly length: number;
  /** Class names when samples carry labels. */
  readonly classNames?: readonly string[];
  /** How the class names compose from attributes, where they do (the scenes). */
  readonly compositions?: ClassCompositions;
  /** The sample at `index` (0 <= index < length); a corrupt or missing sample throws an error naming it. */
  get(index: number): Promise<Sample>;
  /**
   * Present when worker threads can reopen the dataset themselves; without it the loader reads
   * samples on the main thread and workers only decode and augment.
   */
  readonly spec?: DatasetSpec;
}
