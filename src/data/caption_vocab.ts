// CatLIP's targets: a vocabulary of the content words of the training captions, and each caption
// as the set of its vocabulary words (a multi-hot row). The vocabulary is plain JSON, so a
// checkpoint stores it beside the classifier head whose outputs it names.
import fs from 'node:fs';
import type { Backend } from '../tensor/backend.js';
import { type Tensor, tensor } from '../tensor/tensor.js';

/**
 * English function words (articles, pronouns, prepositions, conjunctions, auxiliaries, common
 * adverbs), written as they come out of captionWords (lower case, apostrophes removed).
 */
export const STOP_WORDS: ReadonlySet<string> = new Set(`
a an the this that these those there here some any each every all both either neither no not nor
i me my mine we us our ours you your yours he him his she her hers it its they them their theirs
one ones someone something anyone anything who whom whose which what when where why how
am is are was were be been being have has had having do does did doing done will would shall
should can could may might must ought get gets got getting
and or but if then than so as because while though although yet
of in on at by for with about against between into through during before after above below to
from up down out off over under again further once onto upon within without along across
around behind beside besides near toward towards via per like
very too also just only more most much many few less least such own same other another
s t im ive id youre youve hes shes its were theyre dont doesnt didnt isnt arent wasnt werent
cant couldnt wont wouldnt shouldnt lets thats theres whats
`.trim().split(/\s+/));

/**
 * A caption's words: lower-cased, apostrophes dropped (dog's -> dogs), every other character
 * that is not a letter or digit taken as a separator; words of one character are dropped.
 */
export function captionWords(caption: string): string[] {
  return caption.toLowerCase().normalize('NFC').replace(/['\u2019]/g, '').split(/[^\p{L}\p{N}]+/u)
    .filter((w) => w.length > 1);
}

export interface CaptionVocabOptions {
  /** Words seen fewer times than this (over all captions) are left out (default 5). */
  minCount?: number;
  /** At most this many words, the most frequent (default 10000). */
  maxSize?: number;
  /** Words never kept (default STOP_WORDS). */
  stopWords?: ReadonlySet<string>;
}

/** The JSON form of a vocabulary. */
export interface CaptionVocabJson {
  format: 'glimpse-caption-vocab';
  version: 1;
  /** Words by index, most frequent first. */
  words: string[];
  /** How often each word was seen in the training captions. */
  counts: number[];
  /** Captions the counts came from. */
  captions: number;
}

const FORMAT = 'glimpse-caption-vocab';

export class CaptionVocab {
  private readonly index: Map<string, number>;

  private constructor(readonly words: readonly string[], readonly counts: readonly number[], readonly captions: number) {
    this.index = new Map(words.map((w, i) => [w, i]));
  }

  /**
   * The vocabulary of a set of captions: content words seen at least minCount times, the
   * maxSize most frequent, sorted by count (descending) then alphabetically (code point order,
   * so the order does not depend on the locale).
   */
  static build(captions: Iterable<string>, options: CaptionVocabOptions = {}): CaptionVocab {
    const minCount = options.minCount ?? 5;
    const maxSize = options.maxSize ?? 10_000;
    if (!Number.isInteger(minCount) || minCount < 1) throw new Error(`CaptionVocab: minCount must be a positive integer, got ${minCount}`);
    if (!Number.isInteger(maxSize) || maxSize < 1) throw new Error(`CaptionVocab: maxSize must be a positive integer, got ${maxSize}`);
    const stop = options.stopWords ?? STOP_WORDS;
    const counts = new Map<string, number>();
    let n = 0;
    for (const caption of captions) {
      if (typeof caption !== 'string') throw new Error(`CaptionVocab: caption ${n} is not a string`);
      n++;
      for (const w of captionWords(caption)) if (!stop.has(w)) counts.set(w, (counts.get(w) ?? 0) + 1);
    }
    const kept = [...counts].filter(([, c]) => c >= minCount)
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .slice(0, maxSize);
    if (kept.length === 0) throw new Error(`CaptionVocab: no word of ${n} captions is seen ${minCount} times or more (lower minCount)`);
    return new CaptionVocab(kept.map(([w]) => w), kept.map(([, c]) => c), n);
  }

  get size(): number {
    return this.words.length;
  }

  /** The index of a word, or -1. */
  indexOf(word: string): number {
    return this.index.get(word) ?? -1;
  }

  /** The vocabulary indices of a caption's words, each once, ascending. */
  tags(caption: string): number[] {
    const found = new Set<number>();
    for (const w of captionWords(caption)) {
      const i = this.index.get(w);
      if (i !== undefined) found.add(i);
    }
    return [...found].sort((a, b) => a - b);
  }

  /** Multi-hot targets [B, V]: 1 where the caption holds the word. */
  multiHot(captions: readonly string[], opts: { backend?: Backend } = {}): Tensor {
    const V = this.size;
    const data = new Float32Array(captions.length * V);
    captions.forEach((c, b) => {
      for (const i of this.tags(c)) data[b * V + i] = 1;
    });
    return tensor(data, { shape: [captions.length, V], backend: opts.backend });
  }

  toJSON(): CaptionVocabJson {
    return { format: FORMAT, version: 1, words: [...this.words], counts: [...this.counts], captions: this.captions };
  }

  /** A vocabulary from its JSON form (a stored one is checked, as a corrupt file would mislabel the head). */
  static fromJSON(json: unknown, where = 'caption vocabulary'): CaptionVocab {
    const j = json as Partial<CaptionVocabJson> | null;
    if (!j || typeof j !== 'object' || j.format !== FORMAT) throw new Error(`${where}: not a caption vocabulary (format must be '${FORMAT}')`);
    if (j.version !== 1) throw new Error(`${where}: unsupported version ${String(j.version)}`);
    const { words, counts, captions } = j;
    if (!Array.isArray(words) || words.some((w) => typeof w !== 'string' || w === '')) throw new Error(`${where}: words must be non-empty strings`);
    if (!Array.isArray(counts) || counts.length !== words.length || counts.some((c) => !Number.isInteger(c) || c < 1)) {
      throw new Error(`${where}: counts must be ${words.length} positive integers, one per word`);
    }
    if (!Number.isInteger(captions) || captions! < 0) throw new Error(`${where}: captions must be a count`);
    const dup = words.find((w, i) => words.indexOf(w) !== i);
    if (dup !== undefined) throw new Error(`${where}: the word '${dup}' appears twice`);
    return new CaptionVocab(words, counts, captions!);
  }

  save(file: string): void {
    fs.writeFileSync(file, `${JSON.stringify(this.toJSON())}\n`);
  }

  static load(file: string): CaptionVocab {
    let json: unknown;
    try {
      json = JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch (e) {
      throw new Error(`${file}: cannot read the caption vocabulary: ${(e as Error).message}`, { cause: e });
    }
    return CaptionVocab.fromJSON(json, file);
  }
}
