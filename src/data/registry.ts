// Things registered under stable names with aliases — models, losses, training objectives,
// datasets — and the dataset registry itself. Names compare without case, and an unknown name is
// an error that lists the nearest known ones.
import fs from 'node:fs';
import type { Dataset } from './dataset.js';
import { datasetEntries, type OpenDatasetOptions } from './sources.js';
import { OadSyntheticStreams, type OadSyntheticOptions } from './oad_synthetic.js';
import type { FeatureStreamSet } from './oad_streams.js';
import { openTextCorpus, type OpenTextCorpusOptions } from './text.js';

export type RegistryKind = 'model' | 'loss' | 'dataset' | 'objective';

/** What every registered thing has: a canonical name, aliases, and its kind. */
export interface RegistryEntry {
  readonly name: string;
  readonly aliases: readonly string[];
  readonly kind: RegistryKind;
  readonly description?: string;
}

/** Names compare without case: ViT-B-32, vit-b-32 and VIT-B-32 are one model. */
const key = (name: string): string => name.toLowerCase();

/** Levenshtein distance. */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}

/** Whether `candidate` is near enough to `name` to suggest: within a third of its length (at least 2 edits). */
export const isNear = (name: string, distance: number): boolean => distance <= Math.max(2, Math.floor(name.length / 3));

/** A name -> entry table with aliases, for one kind. */
export class Registry<E extends RegistryEntry> {
  private readonly entries = new Map<string, E>();
  private readonly byName = new Map<string, E>();

  constructor(readonly kind: RegistryKind) {}

  /** Adds an entry; a name or alias already taken (by another entry) is an error unless `replace`. */
  register(entry: E, opts: { replace?: boolean } = {}): E {
    if (entry.kind !== this.kind) throw new Error(`registry: '${entry.name}' is a ${entry.kind}, not a ${this.kind}`);
    const names = [entry.name, ...entry.aliases];
    if (names.some((n) => typeof n !== 'string' || n.trim() === '' || n !== n.trim())) {
      throw new Error(`registry: ${this.kind} names must be non-empty strings without surrounding spaces, got ${JSON.stringify(names)}`);
    }
    const old = this.entries.get(key(entry.name));
    for (const n of names) {
      const taken = this.byName.get(key(n));
      if (taken && taken !== old) throw new Error(`registry: the ${this.kind} name '${n}' is taken by '${taken.name}'`);
    }
    if (old) {
      if (!opts.replace) throw new Error(`registry: a ${this.kind} named '${old.name}' is already registered (pass replace: true to replace it)`);
      for (const n of [old.name, ...old.aliases]) this.byName.delete(key(n));
    }
    this.entries.set(key(entry.name), entry);
    for (const n of names) this.byName.set(key(n), entry);
    return entry;
  }

  /** The entry a name or alias means, or undefined. */
  find(name: string): E | undefined {
    return this.byName.get(key(name));
  }

  /** The entry a name or alias means; an unknown name is an error listing the closest names. */
  get(name: string): E {
    const e = this.find(name);
    if (e) return e;
    const close = this.closeMatches(name);
    const hint = close.length ? `; did you mean ${close.map((n) => `'${n}'`).join(', ')}?` : '';
    throw new Error(`unknown ${this.kind} '${name}'${hint} (known: ${this.list().join(', ') || 'none'})`);
  }

  /** Canonical names, sorted. */
  list(): string[] {
    return [...this.entries.values()].map((e) => e.name).sort((a, b) => a.localeCompare(b, 'en'));
  }

  all(): E[] {
    return this.list().map((n) => this.entries.get(key(n))!);
  }

  /** Up to five names or aliases near `name` (by edit distance, or containing it), nearest first. */
  closeMatches(name: string): string[] {
    const q = key(name);
    const scored: [number, string][] = [];
    for (const [k, e] of this.byName) {
      const shown = [e.name, ...e.aliases].find((n) => key(n) === k)!;
      const d = editDistance(q, k);
      if (isNear(q, d) || (q.length >= 3 && k.includes(q))) scored.push([d, shown]);
    }
    scored.sort((a, b) => a[0] - b[0] || a[1].localeCompare(b[1], 'en'));
    return [...new Set(scored.map(([, n]) => n))].slice(0, 5);
  }
}

// ---------------------------------------------------------------------------------------------
// Datasets

export interface DatasetEntry extends RegistryEntry {
  readonly kind: 'dataset';
  /** A text corpus (for the mlm task) rather than images. */
  readonly text?: boolean;
  /** Feature streams for online action detection (the oad task) rather than images. */
  readonly streams?: boolean;
  /** Opens the dataset (its options are the dataset's own). */
  readonly open: (options?: Record<string, unknown>) => unknown;
}

/** Datasets by name: the built-in sources (scenes, fashion-mnist, webdataset, csv, image-folder) and the text corpus. */
export const datasets = new Registry<DatasetEntry>('dataset');

export function registerDataset(entry: Omit<DatasetEntry, 'kind' | 'aliases'> & { aliases?: readonly string[] }, opts: { replace?: boolean } = {}): DatasetEntry {
  if (typeof entry.open !== 'function') throw new Error(`registerDataset: '${entry.name}' needs an open function`);
  return datasets.register({ ...entry, kind: 'dataset', aliases: entry.aliases ?? [] }, opts);
}

for (const source of datasetEntries) registerDataset(source);
registerDataset({
  name: 'debian-descriptions', aliases: ['debian-text'], text: true,
  description: "English text for MLM: Debian's package descriptions (scripts/install-corpus.sh installs them); splits train | val | all",
  open: (o: OpenTextCorpusOptions & { argument?: string } = {}) => openTextCorpus(o.argument ? `debian-descriptions:${o.argument}` : 'debian-descriptions', o),
});
registerDataset({
  name: 'oad-synthetic', aliases: ['oad-synth'], streams: true,
  description: 'Built-in feature streams for online action detection: seeded actions with cues, noise and ambiguous boundaries; splits train | test',
  open: (o: OpenStreamsOptions = {}): FeatureStreamSplit => ({ set: new OadSyntheticStreams(o.oadSynthetic), split: o.argument ?? o.split ?? 'train' }),
});

export interface OpenStreamsOptions {
  /** The split when the spec names none (default train). */
  split?: string;
  /** The spec's part after `name:`. */
  argument?: string;
  oadSynthetic?: OadSyntheticOptions;
}

/** A set of feature streams and the split of it a spec names. */
export interface FeatureStreamSplit {
  readonly set: FeatureStreamSet;
  readonly split: string;
}

/**
 * The registered feature-stream source a spec `name[:split]` names (`oad-synthetic:test`), or
 * null when the spec names none (then it is a folder: src/tasks/oad_streams.ts opens those).
 */
export function openRegisteredStreams(spec: string, options: Omit<OpenStreamsOptions, 'argument'> = {}): FeatureStreamSplit | null {
  const colon = spec.indexOf(':');
  const [head, argument] = colon > 0 ? [spec.slice(0, colon), spec.slice(colon + 1)] : [spec, undefined];
  const named = datasets.find(head);
  if (!named) return null;
  if (!named.streams) throw new Error(`openStreams: ${named.name} is ${named.text ? 'a text corpus' : 'an image dataset'}, not feature streams`);
  return named.open({ ...options, argument: argument || undefined }) as FeatureStreamSplit;
}

export function listDatasets(): string[] {
  return datasets.list();
}

/**
 * Opens the image dataset a spec names: a registered dataset `name[:argument]` (`scenes:test`,
 * `csv:pairs.txt`; the argument is a split of a built-in dataset, a path otherwise), or by its
 * shape: WebDataset shards (a .tar file, a brace pattern, several joined with `::`), a .csv/.tsv
 * file, a folder of class sub-folders. A path that does not exist, or holds no usable sample, is
 * an error naming it.
 */
export async function openDataset(spec: string, options: OpenDatasetOptions = {}): Promise<Dataset> {
  if (typeof spec !== 'string' || spec.trim() === '') throw new Error('openDataset: empty dataset spec');
  // A registered name wins over a file of that name (write ./scenes for a folder called scenes).
  const colon = spec.indexOf(':');
  const [head, argument] = colon > 0 && spec[colon + 1] !== ':' ? [spec.slice(0, colon), spec.slice(colon + 1)] : [spec, undefined];
  const named = datasets.find(head);
  if (named?.text) throw new Error(`openDataset: ${named.name} is a text corpus, not an image dataset`);
  if (named?.streams) throw new Error(`openDataset: ${named.name} is a set of feature streams (for the oad task), not an image dataset`);
  if (named) return named.open({ ...options, argument: argument || undefined }) as Promise<Dataset>;
  const open = (name: string): Promise<Dataset> => datasets.get(name).open({ ...options, argument: spec }) as Promise<Dataset>;
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
