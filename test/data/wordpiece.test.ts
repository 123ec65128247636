// WordPiece training: merges on hand-counted words, a vocabulary trained on real English (the
// licence texts every Debian system ships) loaded by @huggingface/tokenizers and by loadTokenizer,
// its ids checked against an independent BERT tokenizer written below, and the error cases.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { loadTokenizer } from '../../src/data/tokenizers/tokenizer.js';
import {
  BERT_SPECIAL_TOKENS, bertTokenizerConfig, bertWords, countWords, trainWordPiece, trainWordPieceFromCounts,
  trainWordPieceTokenizer, wordPieceTokenizerJson,
} from '../../src/data/tokenizers/wordpiece.js';
import { findShared, tempDirs } from '../helpers.js';

const LICENSES = '/usr/share/common-licenses';
const TRAIN_FILES = ['GPL-3', 'Apache-2.0', 'GFDL-1.3', 'LGPL-2.1', 'Artistic', 'BSD'];
const HELD_OUT_FILE = 'MPL-2.0';

function readLicense(name: string): string {
  const file = path.join(LICENSES, name);
  if (!fs.existsSync(file)) throw new Error(`${file} is missing: these tests read the licence texts of Debian's base-files`);
  return fs.readFileSync(file, 'utf8');
}

const trainingLines = TRAIN_FILES.flatMap((name) => readLicense(name).split('\n'));
const VOCAB_SIZE = 700;
const tempDir = tempDirs('wordpiece');

// ---- An independent BERT tokenizer: basic tokenisation, then greedy longest-match-first ----

function isPunctuation(ch: string): boolean {
  const cp = ch.codePointAt(0)!;
  const asciiPunct = (cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126);
  return asciiPunct || /^\p{P}$/u.test(ch);
}

function isCjk(ch: string): boolean {
  const cp = ch.codePointAt(0)!;
  return (cp >= 0x4e00 && cp <= 0x9fff) || (cp >= 0x3400 && cp <= 0x4dbf) || (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x20000 && cp <= 0x2a6df) || (cp >= 0x2a700 && cp <= 0x2b81f) || (cp >= 0x2b920 && cp <= 0x2ceaf) || (cp >= 0x2f800 && cp <= 0x2fa1f);
}

function referenceWords(text: string): string[] {
  const words: string[] = [];
  let current = '';
  const flush = () => {
    if (current) words.push(current);
    current = '';
  };
  for (const raw of text) {
    if (raw === '\uFFFD' || (/^\p{C}$/u.test(raw) && !'\t\n\r'.includes(raw))) continue;
    if (/^\p{White_Space}$/u.test(raw)) {
      flush();
      continue;
    }
    // Strip accents, then lower-case, one character at a time.
    for (const ch of [...raw.normalize('NFD')].filter((c) => !/^\p{Mn}$/u.test(c)).join('').toLowerCase()) {
      if (isPunctuation(ch) || isCjk(ch)) {
        flush();
        words.push(ch);
      } else {
        current += ch;
      }
    }
  }
  flush();
  return words;
}

function referenceIds(text: string, vocab: readonly string[]): number[] {
  const id = new Map(vocab.map((t, i) => [t, i]));
  const ids = [id.get('[CLS]')!];
  for (const word of referenceWords(text)) {
    const chars = [...word];
    const pieces: number[] = [];
    let start = 0;
    while (start < chars.length) {
      let end = chars.length;
      let found: number | undefined;
      for (; end > start && found === undefined; end--) found = id.get((start > 0 ? '##' : '') + chars.slice(start, end).join(''));
      if (found === undefined) break;
      pieces.push(found);
      start = end + 1;
    }
    if (chars.length > 100 || start < chars.length) ids.push(id.get('[UNK]')!);
    else ids.push(...pieces);
  }
  ids.push(id.get('[SEP]')!);
  return ids;
}

// ---- Tests ----

test('merges: most frequent pair first, ties to the smaller (left, right) ids, "##" joins, minFrequency stops', () => {
  const counts = new Map([['hug', 10], ['pug', 5], ['pun', 12], ['bun', 4], ['hugs', 5]]);
  const base = [...BERT_SPECIAL_TOKENS, 'b', 'g', 'h', 'n', 'p', 's', 'u', '##g', '##n', '##s', '##u'];
  // Pairs: ##u ##g 20, p ##u 17, ##u ##n 16, h ##u 15, ... Then h ##ug 15, p ##un 12; then p ##ug
  // and hug ##s tie at 5 (p has the smaller id), and b ##un has 4.
  assert.deepEqual(trainWordPieceFromCounts(counts, { vocabSize: 100, minFrequency: 5 }), [...base, '##ug', '##un', 'hug', 'pun', 'pug', 'hugs']);
  assert.deepEqual(trainWordPieceFromCounts(counts, { vocabSize: 100, minFrequency: 1 }).slice(base.length), ['##ug', '##un', 'hug', 'pun', 'pug', 'hugs', 'bun']);
  assert.deepEqual(trainWordPieceFromCounts(counts, { vocabSize: base.length + 2 }).slice(base.length), ['##ug', '##un']);
  // Repeats merge left to right: a ##a ##a ##a ##a becomes a ##aa ##aa (not a ##a ##aa ##a), whose
  // two pairs tie; a ##aa has the smaller ids.
  assert.deepEqual(trainWordPieceFromCounts(new Map([['aaaaa', 3]]), { vocabSize: 50, specialTokens: [] }), ['a', '##a', '##aa', 'aaa', 'aaaaa']);
  // A limited alphabet keeps the most frequent characters and drops the others from words.
  const limited = trainWordPieceFromCounts(new Map([['xyz', 1], ['yy', 3], ['zy', 2]]), { vocabSize: 50, limitAlphabet: 2, specialTokens: ['[UNK]'], minFrequency: 1 });
  assert.deepEqual(limited.slice(0, 5), ['[UNK]', 'y', 'z', '##y', '##z']);
});

// The trainer's incremental pair counts against recounting every pair before each merge.
function naiveWordPiece(counts: Map<string, number>, vocabSize: number, minFrequency: number): string[] {
  const chars = [...new Set([...counts.keys()].flatMap((w) => [...w]))].sort((x, y) => x.codePointAt(0)! - y.codePointAt(0)!);
  const inner = [...new Set([...counts.keys()].flatMap((w) => [...w].slice(1)))].sort((x, y) => x.codePointAt(0)! - y.codePointAt(0)!);
  const vocab = [...BERT_SPECIAL_TOKENS, ...chars, ...inner.map((c) => `##${c}`)];
  const words = [...counts].map(([w, n]) => ({ pieces: [...w].map((c, i) => (i ? `##${c}` : c)), n }));
  const id = new Map(vocab.map((t, i) => [t, i]));
  while (vocab.length < vocabSize) {
    // Keyed left * 1e6 + right: ordering keys orders by (left, right).
    const pairs = new Map<number, number>();
    for (const { pieces, n } of words) {
      for (let i = 1; i < pieces.length; i++) {
        const key = id.get(pieces[i - 1]!)! * 1e6 + id.get(pieces[i]!)!;
        pairs.set(key, (pairs.get(key) ?? 0) + n);
      }
    }
    let best = -1;
    let bestCount = 0;
    for (const [key, n] of pairs) if (n > bestCount || (n === bestCount && key < best)) [best, bestCount] = [key, n];
    if (best < 0 || bestCount < minFrequency) break;
    const [left, right] = [vocab[Math.floor(best / 1e6)]!, vocab[best % 1e6]!];
    const merged = left + right.replace(/^##/, '');
    if (!id.has(merged)) id.set(merged, vocab.push(merged) - 1);
    for (const word of words) {
      const out: string[] = [];
      for (let i = 0; i < word.pieces.length; i++) {
        if (word.pieces[i] === left && word.pieces[i + 1] === right) out.push(merged), i++;
        else out.push(word.pieces[i]!);
      }
      word.pieces = out;
    }
  }
  return vocab;
}

test('merges: incremental pair counts give what recounting all pairs gives, on real text', () => {
  const counts = countWords(readLicense('GPL-3').split('\n'));
  for (const [size, minFrequency] of [[420, 2], [300, 1]] as const) {
    assert.deepEqual(trainWordPieceFromCounts(counts, { vocabSize: size, minFrequency }), naiveWordPiece(counts, size, minFrequency));
  }
});

test('words: BERT normalisation and pre-tokenisation, the fast ASCII path equal to the general one', () => {
  assert.deepEqual(bertWords("Héllo, WORLD! naïve café 中文 x\u0000y $5+3 İstanbul\u2028(ok)"),
    ['hello', ',', 'world', '!', 'naive', 'cafe', '中', '文', 'xy', '$', '5', '+', '3', 'istanbul', '(', 'ok', ')']);
  assert.deepEqual(bertWords('Héllo WORLD', false), ['Héllo', 'WORLD']);
  for (const line of trainingLines.slice(0, 400)) {
    // A non-ASCII suffix forces the general path; its words must match the fast path's.
    assert.deepEqual(bertWords(`${line} é`).slice(0, -1), bertWords(line), line);
    assert.deepEqual(bertWords(line), referenceWords(line), line);
  }
  const counts = countWords(['the cat, the dog', '', 'The end.']);
  assert.deepEqual([...counts], [['the', 3], ['cat', 1], [',', 1], ['dog', 1], ['end', 1], ['.', 1]]);
});

test('a vocabulary trained on English loads in @huggingface/tokenizers and matches an independent BERT tokenizer', () => {
  const vocab = trainWordPiece(trainingLines, { vocabSize: VOCAB_SIZE });
  assert.equal(vocab.length, VOCAB_SIZE);
  assert.deepEqual(vocab.slice(0, 5), ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]']);
  assert.equal(new Set(vocab).size, vocab.length);
  // '##' only ever starts a token: a merge drops the prefix of its right part.
  assert.ok(vocab.slice(5).every((t) => !t.slice(2).includes('##')));
  assert.deepEqual(trainWordPiece(trainingLines, { vocabSize: VOCAB_SIZE }), vocab, 'two trainings agree');

  // Every character of the training text is in the alphabet, both as a start and (where one
  // occurs inside a word) as a continuation, so no training word is unknown.
  const hf = new Tokenizer(JSON.parse(wordPieceTokenizerJson(vocab)), bertTokenizerConfig());
  const training = trainingLines.join('\n');
  for (const word of new Set(bertWords(training))) {
    const chars = [...word];
    assert.ok(vocab.includes(chars[0]!), chars[0]);
    for (const ch of chars.slice(1)) assert.ok(vocab.includes(`##${ch}`), `##${ch}`);
  }
  const trainingIds = hf.encode(training).ids;
  assert.ok(trainingIds.length > 10000);
  assert.ok(!trainingIds.includes(1), 'no [UNK] in the training text');

  // Held-out text: a licence not trained on, plus accents, other punctuation and unseen characters.
  const heldOut = [...readLicense(HELD_OUT_FILE).split('\n\n'), 'Café naïve RÉSUMÉ — «quoted» 中文 text; ½ price…', 'x'.repeat(101), ''];
  for (const text of heldOut) assert.deepEqual(hf.encode(text).ids, referenceIds(text, vocab), text);
  assert.ok(hf.encode(heldOut[heldOut.length - 3]!).ids.includes(1), 'unseen characters are [UNK]');
  // Pairs: [CLS] A [SEP] B [SEP], with B and its [SEP] of token type 1.
  const [a, b] = ['Covered Software', 'Contributor Version'];
  const pieces = (text: string) => hf.encode(text, { add_special_tokens: false }).ids;
  const pair = hf.encode(a, { text_pair: b, return_token_type_ids: true });
  assert.deepEqual(pair.ids, [2, ...pieces(a), 3, ...pieces(b), 3]);
  assert.deepEqual(pair.token_type_ids, [0, ...pieces(a).map(() => 0), 0, ...pieces(b).map(() => 1), 1]);
  // Decoding joins the pieces.
  assert.equal(hf.decode(hf.encode('the licensor distributes it').ids, { skip_special_tokens: true }), 'the licensor distributes it');
});

test('trainWordPieceTokenizer: a BERT TextTokenizer; save then loadTokenizer gives the same ids', () => {
  const tok = trainWordPieceTokenizer(trainingLines, { vocabSize: 400, contextLength: 64 });
  assert.equal(tok.vocabSize, 400);
  assert.equal(tok.settings.contextLength, 64);
  assert.equal(tok.settings.padId, 0);
  assert.equal(tok.settings.padding, 'longest');
  assert.equal(tok.specialTokenId('mask'), 4);
  assert.equal(tok.specialTokenId('cls'), 2);
  assert.equal(tok.specialTokenId('bos'), undefined);
  assert.deepEqual(tok.specialIds, [0, 1, 2, 3, 4]);
  const texts = readLicense(HELD_OUT_FILE).split('\n\n').slice(0, 40);
  const enc = tok.encode(texts);
  assert.ok(enc.inputIds.every((row) => row.length === enc.inputIds[0]!.length && row.length <= 64));
  const dir = tempDir();
  tok.save(dir);
  const config = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  assert.equal(config.tokenizer_class, 'BertTokenizer');
  assert.equal(config.do_lower_case, true);
  assert.equal(config.model_max_length, 64);
  const again = loadTokenizer(dir);
  assert.deepEqual(again.encode(texts), enc);
  assert.equal(again.specialTokenId('mask'), 4);
  const saved = JSON.parse(fs.readFileSync(path.join(dir, 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number> } };
  assert.equal(Object.keys(saved.model.vocab).length, 400);
  // Cased: accents and case kept.
  const cased = trainWordPieceTokenizer(trainingLines, { vocabSize: 500, lowercase: false });
  const casedTokens = cased.tokenize('The GNU General Public License');
  assert.ok(!casedTokens.includes('[UNK]'));
  assert.ok(casedTokens.includes('G') || casedTokens.includes('GNU'), casedTokens.join(' '));
  // é never occurs in the corpus: the cased tokenizer keeps it (the word is unknown), the uncased one strips it.
  assert.deepEqual(cased.tokenize('café'), ['[UNK]']);
  assert.ok(!tok.tokenize('café').includes('[UNK]'));
  assert.equal(cased.source.tokenizerConfig?.do_lower_case, false);
});

test('the tokenizer.json has the sections and fields of a BERT tokenizer.json saved by transformers', (t) => {
  const fixture = findShared('fixtures/hf/bert_mlm', 'tokenizer.json');
  const ours = JSON.parse(wordPieceTokenizerJson(trainWordPiece(trainingLines.slice(0, 200), { vocabSize: 300 }))) as Record<string, Record<string, unknown>>;
  // Always: the fields BertTokenizerFast writes.
  assert.deepEqual(ours.normalizer, { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true });
  assert.deepEqual(ours.pre_tokenizer, { type: 'BertPreTokenizer' });
  assert.deepEqual(ours.decoder, { type: 'WordPiece', prefix: '##', cleanup: true });
  assert.deepEqual(Object.keys(ours.model!), ['type', 'unk_token', 'continuing_subword_prefix', 'max_input_chars_per_word', 'vocab']);
  if (!fixture) {
    t.skip('no shared BERT tokenizer.json fixture to compare the structure with');
    return;
  }
  const theirs = JSON.parse(fs.readFileSync(path.join(fixture, 'tokenizer.json'), 'utf8')) as Record<string, Record<string, unknown>>;
  assert.deepEqual(Object.keys(ours).sort(), Object.keys(theirs).sort());
  for (const section of ['normalizer', 'pre_tokenizer', 'post_processor', 'decoder', 'model']) {
    assert.equal(ours[section]!.type, theirs[section]!.type, section);
    assert.deepEqual(Object.keys(ours[section]!).sort(), Object.keys(theirs[section]!).sort(), section);
  }
  assert.deepEqual(ours.normalizer, theirs.normalizer);
  assert.deepEqual(ours.decoder, theirs.decoder);
  const template = (pp: Record<string, unknown>) => JSON.stringify([pp.single, pp.pair]);
  assert.equal(template(ours.post_processor!), template(theirs.post_processor!));
});

test('bad inputs: clear errors', () => {
  assert.throws(() => trainWordPiece(trainingLines, { vocabSize: 20 }), /vocabSize 20 leaves no room for merges: the 5 special tokens, \d+ characters and \d+ '##' continuations already take \d+ entries/);
  assert.throws(() => trainWordPiece([], { vocabSize: 100 }), /the corpus has no words/);
  assert.throws(() => trainWordPiece(['', '  \n\t'], { vocabSize: 100 }), /the corpus has no words/);
  assert.throws(() => trainWordPiece(['a b'], { vocabSize: 0 }), /vocabSize must be an integer/);
  assert.throws(() => trainWordPiece(['a b'], { vocabSize: 100, minFrequency: -1 }), /minFrequency must be a non-negative integer/);
  assert.throws(() => trainWordPiece(['a b'], { vocabSize: 100, limitAlphabet: 0 }), /limitAlphabet must be a positive integer/);
  assert.throws(() => trainWordPiece(['a b'], { vocabSize: 100, specialTokens: ['[PAD]', '[PAD]'] }), /special token "\[PAD\]" is listed twice/);
  assert.throws(() => trainWordPiece(['a', 3 as unknown as string], { vocabSize: 100 }), /text 1 is number, not a string/);
  assert.throws(() => trainWordPieceTokenizer(['a b'], { vocabSize: 100, specialTokens: ['[UNK]', '[CLS]', '[SEP]'] }), /needs \[PAD\] among the special tokens/);
  assert.throws(() => wordPieceTokenizerJson(['[UNK]', '[CLS]', 'a'], { specialTokens: ['[UNK]', '[CLS]'] }), /has no "\[SEP\]" token/);
  assert.throws(() => wordPieceTokenizerJson(['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'a', 'a']), /"a" appears twice in the vocabulary \(ids 5 and 6\)/);
  assert.throws(() => bertTokenizerConfig({ modelMaxLength: 2 }), /modelMaxLength must be an integer above 2/);
});
