// Small pieces the dataset sources share: seed mixing, captions from class-name templates, the
// image file extensions each source accepts, the index check and image file reads.
import fs from 'node:fs';

/**
 * A 32-bit seed from several integers (a seed, an epoch, an index, ...), so each gets its own
 * unrelated random stream: murmur3's finaliser over a running combination.
 */
export function mixSeed(...parts: number[]): number {
  let h = 0x2545f491;
  for (const p of parts) {
    // Two 32-bit halves, so indices and seeds beyond 2^32 still change the result.
    for (const word of [p >>> 0, Math.floor(p / 4294967296) >>> 0]) {
      h = Math.imul(h ^ word, 0x9e3779b1) >>> 0;
      h ^= h >>> 16;
      h = Math.imul(h, 0x85ebca6b) >>> 0;
      h ^= h >>> 13;
      h = Math.imul(h, 0xc2b2ae35) >>> 0;
      h ^= h >>> 16;
    }
  }
  return h >>> 0;
}

/**
 * First parts of mixSeed for each use, so no two uses share a stream by construction (the
 * loader's epoch order and a sample's augmentation, a scene's layout and its caption corruption).
 */
export const SEED_STREAMS = { order: 1, augment: 2, template: 3, scene: 4, corruption: 5, oadOffset: 6, oadStream: 7 } as const;

/** Captions for labelled images: one of the templates ("a photo of a {}.") filled with the class name. */
export interface CaptionTemplates {
  /** Each holds `{}`, replaced by the class name. */
  readonly templates: readonly string[];
  /** Picks a template per sample index (default 0); the same index always gets the same caption. */
  readonly seed?: number;
}

export function checkTemplates(c: CaptionTemplates | undefined, where: string): void {
  if (c === undefined) return;
  if (!Array.isArray(c.templates) || c.templates.length === 0) throw new Error(`${where}: captions.templates must be a non-empty list of strings`);
  for (const t of c.templates) {
    if (typeof t !== 'string' || !t.includes('{}')) throw new Error(`${where}: caption template ${JSON.stringify(t)} has no '{}' for the class name`);
  }
}

export function templateCaption(c: CaptionTemplates, className: string, index: number): string {
  const t = c.templates[mixSeed(SEED_STREAMS.template, c.seed ?? 0, index) % c.templates.length]!;
  return t.split('{}').join(className);
}

/** What torchvision's ImageFolder accepts, lower case. */
export const FOLDER_IMAGE_EXTENSIONS: ReadonlySet<string> = new Set(['.jpg', '.jpeg', '.png', '.ppm', '.bmp', '.pgm', '.tif', '.tiff', '.webp']);

/** The image members img2dataset writes into WebDataset shards. */
export const WEBDATASET_IMAGE_EXTENSIONS: readonly string[] = ['jpg', 'jpeg', 'png', 'webp'];

/** Where non-fatal problems go: a callback, or console.warn. */
export type WarningSink = (message: string) => void;

export const consoleWarning: WarningSink = (message) => console.warn(message);

/** The message of an error (first line), for warnings. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** The index check of every Dataset.get: an integer in [0, length), else a RangeError naming the dataset. */
export function checkSampleIndex(ds: { readonly name: string; readonly length: number }, index: number): void {
  if (!Number.isInteger(index) || index < 0 || index >= ds.length) throw new RangeError(`${ds.name}: index ${index} out of range [0, ${ds.length})`);
}

/** The bytes of an image file; an unreadable one is an error naming the file and why. */
export async function readImageFile(file: string, what: string): Promise<Uint8Array> {
  try {
    return await fs.promises.readFile(file);
  } catch (e) {
    throw new Error(`${what}: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
}
