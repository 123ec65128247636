// CLIP's tokenizer: OpenAI's byte-level BPE vocabulary, as open_clip's SimpleTokenizer applies it,
// written as a standard tokenizer.json. The file built from the vocabulary ships in
// assets/tokenizers/clip/ (build-clip.ts regenerates it), so nothing outside the package is read
// at run time.
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { assetPath } from './assets.js';
import { tokenizerJson } from './json.js';
import { loadTokenizer, type TextTokenizer } from './tokenizer.js';

export const CLIP_CONTEXT_LENGTH = 77;
export const CLIP_START_OF_TEXT = '<|startoftext|>';
export const CLIP_END_OF_TEXT = '<|endoftext|>';

// open_clip keeps the first 49152 - 256 - 2 merges: with 2 x 256 byte symbols and the two
// special tokens they make the 49408-entry vocabulary.
const CLIP_MERGES = 49152 - 256 - 2;

// open_clip's split of lower-cased text. It matches case-insensitively (Python's regex module),
// which changes two things: "'s" also takes "'ſ" (U+017F folds to s), and U+0345 (a combining
// mark whose case-fold is the letter ι) matches no alternative, so it separates pieces like a
// space. A scan of all code points finds no other difference.
const CLIP_SPLIT = "<\\|startoftext\\|>|<\\|endoftext\\|>|'[sſ]|'t|'re|'ve|'m|'ll|'d|[\\p{L}]+|[\\p{N}]|[^\\s\\p{L}\\p{N}\\x{345}]+";

/**
 * GPT-2's reversible map from bytes to printable characters: byte b becomes the character at
 * index b. Printable Latin-1 bytes map to themselves, the rest to U+0100 onwards in byte order.
 * The second list is the vocabulary order of the 256 byte symbols (printable ones first).
 */
export function byteSymbols(): { byByte: string[]; vocabOrder: number[] } {
  const printable = (b: number) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const byByte: string[] = new Array(256);
  const vocabOrder: number[] = [];
  for (let b = 0; b < 256; b++) if (printable(b)) (byByte[b] = String.fromCharCode(b)), vocabOrder.push(b);
  let next = 256;
  for (let b = 0; b < 256; b++) if (!printable(b)) (byByte[b] = String.fromCharCode(next++)), vocabOrder.push(b);
  return { byByte, vocabOrder };
}

/** The merges of bpe_simple_vocab_16e6.txt(.gz) that open_clip uses, as [left, right] pairs. */
export function readClipMerges(vocabFile: string): [string, string][] {
  const bytes = readFileSync(vocabFile);
  const text = (vocabFile.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8');
  const lines = text.split('\n');
  // Line 0 is a version header.
  if (lines.length < CLIP_MERGES + 1) throw new Error(`${vocabFile}: ${lines.length} lines, expected at least ${CLIP_MERGES + 1}`);
  return lines.slice(1, CLIP_MERGES + 1).map((line, i) => {
    const parts = line.split(/\s+/).filter((p) => p.length > 0);
    if (parts.length !== 2) throw new Error(`${vocabFile}: line ${i + 2} is not a merge: ${JSON.stringify(line)}`);
    return [parts[0]!, parts[1]!];
  });
}

function addedToken(id: number, content: string) {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: true, special: true };
}

/**
 * The tokenizer.json text for CLIP's BPE. The vocabulary is open_clip's: the byte symbols, the
 * same with '</w>', one token per merge, then the start and end tokens (written by tokenizerJson,
 * in id order).
 */
export function clipTokenizerJson(merges: [string, string][]): string {
  const { byByte, vocabOrder } = byteSymbols();
  const symbols = vocabOrder.map((b) => byByte[b]!);
  const vocab = [...symbols, ...symbols.map((s) => s + '</w>'), ...merges.map(([a, b]) => a + b)];
  const sot = vocab.length;
  const eot = sot + 1;
  vocab.push(CLIP_START_OF_TEXT, CLIP_END_OF_TEXT);
  const seen = new Set<string>();
  for (const token of vocab) {
    if (seen.has(token)) throw new Error(`CLIP vocabulary: token ${JSON.stringify(token)} appears twice`);
    seen.add(token);
  }
  const special = (content: string, id: number) => ({ id: content, ids: [id], tokens: [content] });
  const head = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [addedToken(sot, CLIP_START_OF_TEXT), addedToken(eot, CLIP_END_OF_TEXT)],
    normalizer: {
      type: 'Sequence',
      normalizers: [{ type: 'NFC' }, { type: 'Replace', pattern: { Regex: '\\s+' }, content: ' ' }, { type: 'Lowercase' }],
    },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        { type: 'Split', pattern: { Regex: CLIP_SPLIT }, behavior: 'Removed', invert: true },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
      ],
    },
    post_processor: {
      type: 'TemplateProcessing',
      single: [
        { SpecialToken: { id: CLIP_START_OF_TEXT, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: CLIP_END_OF_TEXT, type_id: 0 } },
      ],
      pair: [
        { SpecialToken: { id: CLIP_START_OF_TEXT, type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: CLIP_END_OF_TEXT, type_id: 0 } },
        { SpecialToken: { id: CLIP_START_OF_TEXT, type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
        { SpecialToken: { id: CLIP_END_OF_TEXT, type_id: 1 } },
      ],
      special_tokens: { [CLIP_START_OF_TEXT]: special(CLIP_START_OF_TEXT, sot), [CLIP_END_OF_TEXT]: special(CLIP_END_OF_TEXT, eot) },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
  };
  const model = {
    type: 'BPE',
    dropout: null,
    unk_token: CLIP_END_OF_TEXT,
    continuing_subword_prefix: '',
    end_of_word_suffix: '</w>',
    fuse_unk: false,
    byte_fallback: false,
    ignore_merges: false,
  };
  return tokenizerJson(head, model, vocab, { merges: merges.map(([a, b]) => `${a} ${b}`) });
}

/** tokenizer_config.json of the shipped tokenizer: open_clip's padding (id 0, which is '!') and cleaning. */
export function clipTokenizerConfig(): Record<string, unknown> {
  return {
    tokenizer_class: 'CLIPTokenizer',
    model_max_length: CLIP_CONTEXT_LENGTH,
    bos_token: CLIP_START_OF_TEXT,
    eos_token: CLIP_END_OF_TEXT,
    unk_token: CLIP_END_OF_TEXT,
    pad_token: '!',
    clean_up_tokenization_spaces: false,
    glimpse_text_cleanup: 'clip',
  };
}

let shipped: TextTokenizer | undefined;

/** The CLIP tokenizer that ships with Glimpse (context 77, zero padding, as open_clip). */
export function clipTokenizer(): TextTokenizer {
  shipped ??= loadTokenizer(dirname(assetPath('tokenizers/clip/tokenizer.json.gz')));
  return shipped;
}
