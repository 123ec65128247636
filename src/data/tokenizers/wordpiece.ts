// WordPiece vocabularies trained from text, with the semantics of Hugging Face `tokenizers`'
// WordPieceTrainer (BERT normalisation and pre-tokenisation, word counts, a character alphabet,
// then BPE merges by pair frequency with '##' on pieces that continue a word), written as the
// tokenizer.json + tokenizer_config.json that BertTokenizerFast saves, so `@huggingface/tokenizers`
// and transformers load the result as a BERT tokenizer.
//
// Where HF leaves an order to a hash map, a fixed rule decides: the alphabet is in code-point
// order, its '##' continuations follow in code-point order, and pairs of equal frequency merge in
// ascending (left id, right id) order, HF's own tie rule. So one corpus always gives one vocabulary.
import { tokenizerJson } from './json.js';
import { TextTokenizer } from './tokenizer.js';

/** BERT's special tokens, in the order (ids 0..4) the trainer puts them first. */
export const BERT_SPECIAL_TOKENS: readonly string[] = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]'];

/** Marks a piece that continues a word ("play", "##ing"). */
export const WORDPIECE_PREFIX = '##';

/** Longer words encode as [UNK], as in BERT. */
const MAX_INPUT_CHARS_PER_WORD = 100;

export interface WordPieceTrainOptions {
  /** Entries in the final vocabulary, special tokens and alphabet included (fewer if merges run out). */
  vocabSize: number;
  /** A pair must occur at least this often (counting word frequencies) to be merged; default 2. */
  minFrequency?: number;
  /** BERT uncased normalisation: lower-case and strip accents; default true. */
  lowercase?: boolean;
  /** Tokens given the first ids, in this order; default BERT's five. */
  specialTokens?: readonly string[];
  /** Keep only this many characters (the most frequent) in the alphabet; the rest are dropped from words. */
  limitAlphabet?: number;
}

// ---- BERT normalisation and pre-tokenisation (BertNormalizer + BertPreTokenizer) ----

// Removed: U+FFFD (a decoding error) and every "C" character (control, format, unassigned, private
// use) but tab, newline and return, which become spaces like the rest of White_Space.
const CONTROL = /\uFFFD|(?![\t\n\r])\p{C}/gu;
// CJK ideographs become words of their own: such text has no spaces between words.
const CJK = /[\u3400-\u4DBF\u4E00-\u9FFF\uF900-\uFAFF\u{20000}-\u{2A6DF}\u{2A700}-\u{2B73F}\u{2B740}-\u{2B81F}\u{2B920}-\u{2CEAF}\u{2F800}-\u{2FA1F}]/gu;
const NONSPACING_MARK = /\p{Mn}/gu;
const WHITESPACE = /\p{White_Space}/gu;
const ASCII_WHITESPACE = /[\t\n\r]/g;
// Punctuation is every Unicode P* character and every ASCII punctuation character (which takes in
// symbols such as $ + < = > ^ ` | ~); each is a word by itself. Words are split at White_Space.
const PUNCT = '\\p{P}!-\\/:-@\\[-`{-~';
const WORD = new RegExp(`[^\\p{White_Space}${PUNCT}]+|[${PUNCT}]`, 'gu');
// Printable ASCII with tab/newline/return: no controls, CJK or accents, so only case changes.
const PLAIN_ASCII = /^[\x20-\x7e\t\n\r]*$/;
const ASCII_WORD = /[^\s!-/:-@[-`{-~]+|[!-/:-@[-`{-~]/g;

/** BertNormalizer: text cleaned, CJK characters spaced, and (when lowercasing) accents stripped and lower-cased. */
export function bertNormalize(text: string, lowercase = true): string {
  if (PLAIN_ASCII.test(text)) {
    const spaced = text.replace(ASCII_WHITESPACE, ' ');
    return lowercase ? spaced.toLowerCase() : spaced;
  }
  let out = text.replace(CONTROL, '').replace(WHITESPACE, ' ').replace(CJK, ' $& ');
  // Accents go before lower-casing, as in HF: 'İ' decomposes to I + a mark, then lower-cases to 'i'.
  if (lowercase) out = out.normalize('NFD').replace(NONSPACING_MARK, '').toLowerCase();
  return out;
}

/** The words BERT's basic tokenizer makes of a text: normalised, split at whitespace and around punctuation. */
export function bertWords(text: string, lowercase = true): string[] {
  // Plain ASCII needs no cleaning and splits with a cheaper pattern: the common case, made fast.
  if (PLAIN_ASCII.test(text)) return (lowercase ? text.toLowerCase() : text).match(ASCII_WORD) ?? [];
  return bertNormalize(text, lowercase).match(WORD) ?? [];
}

// ---- Training ----

// Pairs of symbol ids are Map keys as left * PAIR_BASE + right, exact in a double for ids below 2^26.
const PAIR_BASE = 2 ** 26;

function checkOptions(opts: WordPieceTrainOptions): Required<Omit<WordPieceTrainOptions, 'limitAlphabet'>> & { limitAlphabet?: number } {
  const { vocabSize, minFrequency = 2, lowercase = true, specialTokens = BERT_SPECIAL_TOKENS, limitAlphabet } = opts;
  if (!Number.isInteger(vocabSize) || vocabSize < 1 || vocabSize >= PAIR_BASE) {
    throw new Error(`WordPiece: vocabSize must be an integer from 1 to ${PAIR_BASE - 1}, got ${vocabSize}`);
  }
  if (!Number.isInteger(minFrequency) || minFrequency < 0) throw new Error(`WordPiece: minFrequency must be a non-negative integer, got ${minFrequency}`);
  if (limitAlphabet !== undefined && !(Number.isInteger(limitAlphabet) && limitAlphabet > 0)) {
    throw new Error(`WordPiece: limitAlphabet must be a positive integer, got ${limitAlphabet}`);
  }
  const seen = new Set<string>();
  for (const token of specialTokens) {
    if (typeof token !== 'string' || token.length === 0) throw new Error(`WordPiece: special tokens must be non-empty strings, got ${JSON.stringify(token)}`);
    if (seen.has(token)) throw new Error(`WordPiece: special token ${JSON.stringify(token)} is listed twice`);
    seen.add(token);
  }
  return { vocabSize, minFrequency, lowercase, specialTokens, limitAlphabet };
}

/** How often each word of the corpus occurs, after BERT normalisation and pre-tokenisation. */
export function countWords(texts: Iterable<string>, lowercase = true): Map<string, number> {
  const counts = new Map<string, number>();
  let index = 0;
  for (const text of texts) {
    if (typeof text !== 'string') throw new Error(`WordPiece: text ${index} is ${text === null ? 'null' : typeof text}, not a string`);
    for (const word of bertWords(text, lowercase)) counts.set(word, (counts.get(word) ?? 0) + 1);
    index++;
  }
  return counts;
}

/** A binary max-heap of (count, pair) with ties to the smaller pair key, i.e. (left id, right id) ascending. */
class PairHeap {
  private readonly counts: number[] = [];
  private readonly keys: number[] = [];

  get size(): number {
    return this.counts.length;
  }

  private before(i: number, j: number): boolean {
    const ci = this.counts[i]!;
    const cj = this.counts[j]!;
    return ci > cj || (ci === cj && this.keys[i]! < this.keys[j]!);
  }

  private swap(i: number, j: number): void {
    const c = this.counts[i]!;
    this.counts[i] = this.counts[j]!;
    this.counts[j] = c;
    const k = this.keys[i]!;
    this.keys[i] = this.keys[j]!;
    this.keys[j] = k;
  }

  push(count: number, key: number): void {
    this.counts.push(count);
    this.keys.push(key);
    for (let i = this.counts.length - 1; i > 0;) {
      const parent = (i - 1) >> 1;
      if (!this.before(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  /** Removes the top entry; read it first with topCount/topKey. */
  pop(): void {
    const last = this.counts.length - 1;
    this.swap(0, last);
    this.counts.pop();
    this.keys.pop();
    const n = this.counts.length;
    for (let i = 0; ;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let best = i;
      if (l < n && this.before(l, best)) best = l;
      if (r < n && this.before(r, best)) best = r;
      if (best === i) break;
      this.swap(i, best);
      i = best;
    }
  }

  get topCount(): number {
    return this.counts[0]!;
  }

  get topKey(): number {
    return this.keys[0]!;
  }
}

/**
 * The vocabulary (in id order) WordPieceTrainer learns from word counts: the special tokens, the
 * alphabet, each alphabet character as a continuation ('##c') where one occurs inside a word, then
 * one token per merge of the most frequent adjacent pair of pieces, until `vocabSize` entries or
 * no pair occurs `minFrequency` times. Merging "play" + "##ing" gives "playing"; "##in" + "##g"
 * gives "##ing". A merge whose token already exists (reached by another split) adds no entry.
 * The words are taken as given (as countWords makes them), so `lowercase` plays no part here.
 */
export function trainWordPieceFromCounts(wordCounts: ReadonlyMap<string, number>, opts: WordPieceTrainOptions): string[] {
  const { vocabSize, minFrequency, specialTokens, limitAlphabet } = checkOptions(opts);
  if (wordCounts.size === 0) throw new Error('WordPiece: the corpus has no words (every text was empty or whitespace)');

  const vocab: string[] = [];
  const idOf = new Map<string, number>();
  const add = (token: string): number => {
    let id = idOf.get(token);
    if (id === undefined) {
      id = vocab.length;
      vocab.push(token);
      idOf.set(token, id);
    }
    return id;
  };
  for (const token of specialTokens) add(token);

  // The alphabet: every character, weighted by its words' counts; limitAlphabet keeps the most
  // frequent (ties to the lower code point).
  const charCounts = new Map<number, number>();
  const words: string[] = [];
  const freqs: number[] = [];
  let totalChars = 0;
  for (const [word, count] of wordCounts) {
    if (!(Number.isInteger(count) && count > 0)) throw new Error(`WordPiece: the count of ${JSON.stringify(word)} must be a positive integer, got ${count}`);
    words.push(word);
    freqs.push(count);
    for (const ch of word) {
      const cp = ch.codePointAt(0)!;
      charCounts.set(cp, (charCounts.get(cp) ?? 0) + count);
      totalChars++;
    }
  }
  let alphabet = [...charCounts.keys()];
  if (limitAlphabet !== undefined && alphabet.length > limitAlphabet) {
    alphabet.sort((x, y) => charCounts.get(y)! - charCounts.get(x)! || x - y);
    alphabet = alphabet.slice(0, limitAlphabet);
  }
  alphabet.sort((x, y) => x - y);
  const kept = new Set(alphabet);
  for (const cp of alphabet) add(String.fromCodePoint(cp));

  // Continuation forms of the characters that occur after a word's first character.
  const continuing = new Set<number>();
  for (const word of words) {
    let first = true;
    for (const ch of word) {
      const cp = ch.codePointAt(0)!;
      if (!first && kept.has(cp)) continuing.add(cp);
      first = false;
    }
  }
  for (const cp of [...continuing].sort((x, y) => x - y)) add(WORDPIECE_PREFIX + String.fromCodePoint(cp));
  if (vocabSize <= vocab.length) {
    throw new Error(
      `WordPiece: vocabSize ${vocabSize} leaves no room for merges: the ${specialTokens.length} special tokens, ` +
      `${alphabet.length} characters and ${continuing.size} '${WORDPIECE_PREFIX}' continuations already take ${vocab.length} entries ` +
      '(raise vocabSize above that, or set limitAlphabet)',
    );
  }

  // Words as runs of symbol ids in one buffer; merging shortens a run in place.
  const symbols = new Int32Array(totalChars);
  const start = new Int32Array(words.length);
  const length = new Int32Array(words.length);
  let fill = 0;
  words.forEach((word, w) => {
    start[w] = fill;
    let first = true;
    for (const ch of word) {
      const cp = ch.codePointAt(0)!;
      // A character outside a limited alphabet is dropped, as HF does; the next one still continues the word.
      if (kept.has(cp)) symbols[fill++] = idOf.get(first ? ch : WORDPIECE_PREFIX + ch)!;
      first = false;
    }
    length[w] = fill - start[w]!;
  });

  // Pair counts (weighted by word counts) and, per pair, the words that may hold it (a list that
  // can keep words the pair has since left; merging checks).
  const pairCount = new Map<number, number>();
  const pairWords = new Map<number, number[]>();
  const touched = new Set<number>();
  const change = (key: number, delta: number, w: number): void => {
    pairCount.set(key, (pairCount.get(key) ?? 0) + delta);
    if (delta > 0) {
      const list = pairWords.get(key);
      if (list === undefined) pairWords.set(key, [w]);
      else if (list[list.length - 1] !== w) list.push(w);
      touched.add(key);
    }
  };
  for (let w = 0; w < words.length; w++) {
    const s = start[w]!;
    for (let i = s + 1; i < s + length[w]!; i++) change(symbols[i - 1]! * PAIR_BASE + symbols[i]!, freqs[w]!, w);
  }
  const heap = new PairHeap();
  for (const key of touched) heap.push(pairCount.get(key)!, key);
  touched.clear();

  const visited = new Int32Array(words.length).fill(-1);
  for (let step = 0; vocab.length < vocabSize && heap.size > 0; step++) {
    const key = heap.topKey;
    const count = heap.topCount;
    heap.pop();
    // Counts only fall between pushes (each rise pushes anew), so an entry above its pair's count is stale.
    const current = pairCount.get(key) ?? 0;
    if (count !== current) {
      if (current > 0) heap.push(current, key);
      continue;
    }
    if (count < Math.max(1, minFrequency)) break;
    const a = Math.floor(key / PAIR_BASE);
    const b = key - a * PAIR_BASE;
    const right = vocab[b]!;
    const merged = add(vocab[a]! + (right.startsWith(WORDPIECE_PREFIX) ? right.slice(WORDPIECE_PREFIX.length) : right));

    // Replace each occurrence, left to right (so "a a a" becomes "aa a"), adjusting the counts of
    // the pairs around it; the previous symbol may already be this merge's output.
    for (const w of pairWords.get(key)!) {
      if (visited[w] === step) continue;
      visited[w] = step;
      const s = start[w]!;
      const end = s + length[w]!;
      const f = freqs[w]!;
      let out = s;
      for (let r = s; r < end;) {
        if (symbols[r] === a && r + 1 < end && symbols[r + 1] === b) {
          if (out > s) {
            const prev = symbols[out - 1]!;
            change(prev * PAIR_BASE + a, -f, w);
            change(prev * PAIR_BASE + merged, f, w);
          }
          if (r + 2 < end) {
            const next = symbols[r + 2]!;
            change(b * PAIR_BASE + next, -f, w);
            change(merged * PAIR_BASE + next, f, w);
          }
          symbols[out++] = merged;
          r += 2;
        } else {
          symbols[out++] = symbols[r++]!;
        }
      }
      length[w] = out - s;
    }
    pairCount.delete(key);
    pairWords.delete(key);
    for (const k of touched) {
      const c = pairCount.get(k)!;
      if (c > 0) heap.push(c, k);
    }
    touched.clear();
  }
  return vocab;
}

/**
 * Trains a WordPiece vocabulary on `texts` (each normalised and split into words as BERT does);
 * returns it in id order: the special tokens first, then the alphabet, its '##' forms and the merges.
 */
export function trainWordPiece(texts: Iterable<string>, opts: WordPieceTrainOptions): string[] {
  const { lowercase } = checkOptions(opts);
  return trainWordPieceFromCounts(countWords(texts, lowercase), opts);
}

// ---- Files ----

export interface WordPieceJsonOptions {
  /** Lower-case and strip accents before lookup (an uncased model); default true. */
  lowercase?: boolean;
  /** Tokens written as special added tokens; default BERT's five. Each must be in the vocabulary. */
  specialTokens?: readonly string[];
}

function checkVocab(vocab: readonly string[], specialTokens: readonly string[]): Map<string, number> {
  const ids = new Map<string, number>();
  vocab.forEach((token, id) => {
    if (typeof token !== 'string' || token.length === 0) throw new Error(`WordPiece: vocabulary entry ${id} is not a non-empty string`);
    if (ids.has(token)) throw new Error(`WordPiece: token ${JSON.stringify(token)} appears twice in the vocabulary (ids ${ids.get(token)} and ${id})`);
    ids.set(token, id);
  });
  for (const token of new Set([...specialTokens, '[UNK]', '[CLS]', '[SEP]'])) {
    if (!ids.has(token)) throw new Error(`WordPiece: the vocabulary has no ${JSON.stringify(token)} token`);
  }
  return ids;
}

/**
 * tokenizer.json for a WordPiece vocabulary, as BertTokenizerFast saves one: BertNormalizer,
 * BertPreTokenizer, the WordPiece model with [UNK] and '##', `[CLS] A [SEP]` (pairs
 * `[CLS] A [SEP] B [SEP]`, B with token type 1) and the WordPiece decoder (written by
 * tokenizerJson, in id order).
 */
export function wordPieceTokenizerJson(vocab: readonly string[], opts: WordPieceJsonOptions = {}): string {
  const lowercase = opts.lowercase ?? true;
  const specialTokens = opts.specialTokens ?? BERT_SPECIAL_TOKENS;
  const ids = checkVocab(vocab, specialTokens);
  const cls = ids.get('[CLS]')!;
  const sep = ids.get('[SEP]')!;
  const addedTokens = specialTokens
    .map((content) => ({ id: ids.get(content)!, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }))
    .sort((x, y) => x.id - y.id);
  const piece = (kind: 'SpecialToken' | 'Sequence', id: string, typeId: number) => ({ [kind]: { id, type_id: typeId } });
  const head = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: addedTokens,
    // strip_accents null: follow `lowercase`, as BertTokenizerFast writes it.
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [piece('SpecialToken', '[CLS]', 0), piece('Sequence', 'A', 0), piece('SpecialToken', '[SEP]', 0)],
      pair: [
        piece('SpecialToken', '[CLS]', 0), piece('Sequence', 'A', 0), piece('SpecialToken', '[SEP]', 0),
        piece('Sequence', 'B', 1), piece('SpecialToken', '[SEP]', 1),
      ],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [cls], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [sep], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: WORDPIECE_PREFIX, cleanup: true },
  };
  const model = { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: WORDPIECE_PREFIX, max_input_chars_per_word: MAX_INPUT_CHARS_PER_WORD };
  return tokenizerJson(head, model, vocab);
}

export interface BertTokenizerConfigOptions {
  lowercase?: boolean;
  /** The longest sequence the model takes, [CLS] and [SEP] included; default 512. */
  modelMaxLength?: number;
}

/** tokenizer_config.json for a BERT tokenizer: the class, casing, special tokens and maximum length. */
export function bertTokenizerConfig(opts: BertTokenizerConfigOptions = {}): Record<string, unknown> {
  const modelMaxLength = opts.modelMaxLength ?? 512;
  if (!(Number.isInteger(modelMaxLength) && modelMaxLength > 2)) {
    throw new Error(`WordPiece: modelMaxLength must be an integer above 2 (room for [CLS] and [SEP]), got ${modelMaxLength}`);
  }
  const lowercase = opts.lowercase ?? true;
  return {
    tokenizer_class: 'BertTokenizer',
    do_lower_case: lowercase,
    do_basic_tokenize: true,
    tokenize_chinese_chars: true,
    strip_accents: null,
    never_split: null,
    unk_token: '[UNK]',
    sep_token: '[SEP]',
    pad_token: '[PAD]',
    cls_token: '[CLS]',
    mask_token: '[MASK]',
    model_max_length: modelMaxLength,
    clean_up_tokenization_spaces: true,
  };
}

export interface WordPieceTokenizerOptions extends WordPieceTrainOptions {
  /** The model's maximum sequence length, written as model_max_length; default 512. */
  contextLength?: number;
}

/**
 * Trains a vocabulary and returns it as a BERT TextTokenizer (built in memory); `.save(dir)`
 * writes its tokenizer.json and tokenizer_config.json.
 */
export function trainWordPieceTokenizer(texts: Iterable<string>, opts: WordPieceTokenizerOptions): TextTokenizer {
  const lowercase = opts.lowercase ?? true;
  const specialTokens = opts.specialTokens ?? BERT_SPECIAL_TOKENS;
  const config = bertTokenizerConfig({ lowercase, modelMaxLength: opts.contextLength });
  // Fail on the specials before the (long) training, not after.
  for (const token of ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']) {
    if (!specialTokens.includes(token)) throw new Error(`WordPiece: a BERT tokenizer needs ${token} among the special tokens`);
  }
  const vocab = trainWordPiece(texts, opts);
  const json: unknown = JSON.parse(wordPieceTokenizerJson(vocab, { lowercase, specialTokens }));
  return new TextTokenizer({ tokenizerJson: json, tokenizerConfig: config }, {}, 'WordPiece tokenizer');
}
