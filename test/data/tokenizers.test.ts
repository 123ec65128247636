// Tokenizers: the packaged CLIP BPE against open_clip's ids, small WordPiece (BERT/BLIP) and
// Unigram (SigLIP) tokenizers built here, padding, truncation, errors and the tokenize command.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { clipTokenizer, loadTokenizer, unescapeHtml, cleanClipText, tokenizerFor } from '../../src/data/tokenizers/index.js';
import { clipTokenizerFiles } from '../../src/data/tokenizers/build-clip.js';
import { assetPath } from '../../src/data/tokenizers/assets.js';
import { tokenizeCommand } from '../../src/cli/tokenize.js';
import { byteTokenizer } from '../../src/models/configs.js';
import { findShared, tempDirs, sharedNotFound } from '../helpers.js';

interface ClipFixture {
  context_length: number;
  sot: number;
  eot: number;
  sentences: string[];
  ids: number[][];
}

function clipFixture(): ClipFixture | null {
  const dir = findShared('fixtures/tokenizers', 'clip_bpe_tokenization.json');
  return dir ? (JSON.parse(fs.readFileSync(path.join(dir, 'clip_bpe_tokenization.json'), 'utf8')) as ClipFixture) : null;
}

const newDir = tempDirs('tok');
function tmpDir(): string {
  const dir = newDir();
  fs.mkdirSync(dir);
  return dir;
}

// ---- CLIP ----

test('the packaged CLIP tokenizer reproduces open_clip ids exactly (padding and truncation included)', (t) => {
  const fx = clipFixture();
  if (!fx) return t.skip(sharedNotFound());
  const tok = clipTokenizer();
  assert.equal(tok.settings.contextLength, fx.context_length);
  assert.equal(tok.tokenToId('<|startoftext|>'), fx.sot);
  assert.equal(tok.tokenToId('<|endoftext|>'), fx.eot);
  const enc = tok.encode(fx.sentences);
  fx.sentences.forEach((s, i) => assert.deepEqual(enc.inputIds[i], fx.ids[i], `sentence ${i}: ${JSON.stringify(s)}`));
  for (const [i, row] of fx.ids.entries()) {
    const n: number = row.indexOf(fx.eot) + 1;
    assert.deepEqual(enc.attentionMask[i], row.map((_, j) => (j < n ? 1 : 0)));
  }
  // One at a time gives the same rows as the batch.
  fx.sentences.forEach((s, i) => assert.deepEqual(tok.encode(s).inputIds[0], fx.ids[i]));
});

test('the shipped CLIP tokenizer files are what build-clip writes from the vocabulary in ../shared', (t) => {
  const dir = findShared('data/clip-bpe', 'bpe_simple_vocab_16e6.txt.gz');
  if (!dir) return t.skip(sharedNotFound());
  const built = clipTokenizerFiles(path.join(dir, 'bpe_simple_vocab_16e6.txt.gz'));
  const shippedJson = gunzipSync(fs.readFileSync(assetPath('tokenizers/clip/tokenizer.json.gz'))).toString('utf8');
  assert.ok(shippedJson === built['tokenizer.json'], 'assets/tokenizers/clip/tokenizer.json.gz differs from a fresh build');
  assert.equal(fs.readFileSync(assetPath('tokenizers/clip/tokenizer_config.json'), 'utf8'), built['tokenizer_config.json']);
  const json = JSON.parse(shippedJson) as { model: { vocab: Record<string, number>; merges: string[] } };
  assert.equal(Object.keys(json.model.vocab).length, 49408);
  assert.equal(json.model.merges.length, 49152 - 256 - 2);
  assert.ok(fs.existsSync(assetPath('tokenizers/clip/LICENSE')));
});

test('CLIP: open_clip cleaning, contractions, digits and word ends', () => {
  const tok = clipTokenizer();
  const ids = (s: string) => tok.encode(s, { padding: 'none' }).inputIds[0]!;
  // Case, whitespace and HTML entities do not change the ids.
  assert.deepEqual(ids('  A   PHOTO\tof a CAT.\n'), ids('a photo of a cat.'));
  assert.deepEqual(ids('Tom &amp;amp; Jerry'), ids('tom & jerry'));
  assert.deepEqual(tok.tokenize("it's 42"), ['it</w>', "'s</w>", '4</w>', '2</w>']);
  assert.deepEqual(tok.tokenize('cats'), ['cats</w>']);
  // The last symbol of a word carries </w>: the same letters mid-word are another token.
  assert.notEqual(tok.tokenToId('cat'), tok.tokenToId('cat</w>'));
  // Start/end tokens written in the text are recognised.
  assert.deepEqual(ids('a <|endoftext|>'), [49406, 320, 49407, 49407]);
});

test('CLIP: truncation keeps the start token and ends with the end token; context length and pad id are options', () => {
  const tok = clipTokenizer();
  const long = Array.from({ length: 40 }, (_, i) => `word${i}`).join(' ');
  const full = tok.encode(long, { padding: 'none', truncation: false }).inputIds[0]!;
  assert.ok(full.length > 77);
  const row = tok.encode(long).inputIds[0]!;
  assert.equal(row.length, 77);
  assert.deepEqual(row, [...full.slice(0, 76), 49407]);
  const short = tok.encode(['a photo of a cat', long], { contextLength: 10 });
  assert.deepEqual(short.inputIds[0], [49406, 320, 1125, 539, 320, 2368, 49407, 0, 0, 0]);
  assert.deepEqual(short.inputIds[1], [...full.slice(0, 9), 49407]);
  assert.deepEqual(short.attentionMask[0], [1, 1, 1, 1, 1, 1, 1, 0, 0, 0]);
  // Hugging Face's CLIP tokenizer pads with the end token instead.
  const hfStyle = loadTokenizer(path.dirname(assetPath('tokenizers/clip/tokenizer.json.gz')), { padId: 49407 });
  assert.deepEqual(hfStyle.encode('a photo of a cat', { contextLength: 9 }).inputIds[0], [49406, 320, 1125, 539, 320, 2368, 49407, 49407, 49407]);
  assert.deepEqual(tok.encode(['a cat', 'a photo of a cat'], { padding: 'longest' }).inputIds, [
    [49406, 320, 2368, 49407, 0, 0],
    [49406, 320, 1125, 539, 320, 2368, 49407],
  ].map((r) => [...r, ...new Array<number>(7 - r.length).fill(0)]));
  assert.throws(() => tok.encode(long, { truncation: false }), /more than the context length 77/);
  assert.throws(() => tok.encode('a', { contextLength: 1 }), /leaves no room for the 2 special tokens/);
});

test('CLIP: encodeTensors gives int32 [batch, 77] tensors; decode inverts encode up to cleaning', () => {
  const tok = clipTokenizer();
  const { inputIds, attentionMask } = tok.encodeTensors(['a photo of a cat', 'two dogs']);
  assert.deepEqual(inputIds.shape, [2, 77]);
  assert.equal(inputIds.dtype, 'int32');
  assert.equal(attentionMask.dtype, 'int32');
  const enc = tok.encode(['A Photo of a Cat', 'café 😀 東京']);
  assert.equal(tok.decode(enc.inputIds[0]!), 'a photo of a cat');
  assert.equal(tok.decode(enc.inputIds[1]!), 'café 😀 東京');
  assert.equal(tok.decode(enc.inputIds[0]!, { skipSpecialTokens: false }).startsWith('<|startoftext|>'), true);
});

test('html unescaping follows Python html.unescape', () => {
  // Expected values are Python 3's html.unescape outputs.
  const cases: [string, string][] = [
    ['Tom &amp; Jerry', 'Tom & Jerry'], ['&lt;b&gt;', '<b>'], ['&#39;s', "'s"], ['&#x27;', "'"],
    ['&notit;', '¬it;'], ['&notin;', '∉'], ['&ampx', '&x'], ['&#65', 'A'], ['&#x80;', '€'], ['&#0;', '\uFFFD'],
    ['&#xD800;', '\uFFFD'], ['&#1;', ''], ['&bogus;', '&bogus;'], ['&AMP', '&'], ['&amp;amp;', '&amp;'],
    ['&NotEqualTilde;', '≂̸'], ['&copy 2024', '© 2024'], ['& alone', '& alone'], ['&#128512;', '😀'],
    ['&#x110000;', '\uFFFD'], ['&;', '&;'],
  ];
  for (const [input, want] of cases) assert.equal(unescapeHtml(input), want, input);
  assert.equal(cleanClipText('\x1c  Fish &amp;amp;\u2028Chips \x1f'), 'fish & chips');
});

// ---- WordPiece (BERT, BLIP) ----

const BERT_VOCAB = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', 'the', 'cat', 'sat', 'on', 'mat', '##s', 'play', '##ing', '.', 'a', 'dog', 'un', '##believ', '##able', ','];

function bertJson(extraTokens: string[] = []) {
  const vocab = Object.fromEntries([...BERT_VOCAB, ...extraTokens].map((t, i) => [t, i]));
  const special = ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ...extraTokens].map((content) => ({
    id: vocab[content], content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true,
  }));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: special,
    normalizer: { type: 'BertNormalizer', clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
    pre_tokenizer: { type: 'BertPreTokenizer' },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '[CLS]', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '[SEP]', type_id: 0 } }],
      pair: [],
      special_tokens: {
        '[CLS]': { id: '[CLS]', ids: [2], tokens: ['[CLS]'] },
        '[SEP]': { id: '[SEP]', ids: [3], tokens: ['[SEP]'] },
      },
    },
    decoder: { type: 'WordPiece', prefix: '##', cleanup: true },
    model: { type: 'WordPiece', unk_token: '[UNK]', continuing_subword_prefix: '##', max_input_chars_per_word: 100, vocab },
  };
}

const BERT_CONFIG = { tokenizer_class: 'BertTokenizer', do_lower_case: true, model_max_length: 512, pad_token: '[PAD]', cls_token: '[CLS]', sep_token: '[SEP]', unk_token: '[UNK]' };

test('WordPiece (BERT): [CLS] ... [SEP], ## pieces, unknown words, longest padding with an attention mask', () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(bertJson()));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(BERT_CONFIG));
  const tok = loadTokenizer(dir);
  assert.equal(tok.settings.padding, 'longest');
  assert.equal(tok.settings.contextLength, 512);
  assert.equal(tok.settings.padId, 0);
  const enc = tok.encode(['The cats sat on the mat.', 'Unbelievable dog, playing', 'a zebra']);
  assert.deepEqual(enc.inputIds, [
    [2, 5, 6, 10, 7, 8, 5, 9, 13, 3],
    [2, 16, 17, 18, 15, 19, 11, 12, 3, 0],
    [2, 14, 1, 3, 0, 0, 0, 0, 0, 0],
  ]);
  assert.deepEqual(enc.attentionMask[1], [1, 1, 1, 1, 1, 1, 1, 1, 1, 0]);
  assert.deepEqual(enc.attentionMask[2], [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(enc.tokenTypeIds[0], new Array<number>(10).fill(0));
  assert.equal(tok.decode(enc.inputIds[0]!), 'the cats sat on the mat.');
  // Truncation keeps [SEP] last.
  assert.deepEqual(tok.encode('The cats sat on the mat.', { contextLength: 5 }).inputIds[0], [2, 5, 6, 10, 3]);
  assert.deepEqual(tok.encode('The cats', { contextLength: 6, padding: 'max_length' }).inputIds[0], [2, 5, 6, 10, 3, 0]);
  assert.deepEqual(tok.encode('The cats', { addSpecialTokens: false }).inputIds[0], [5, 6, 10]);
  const t = tok.encodeTensors(['the cat', 'a dog sat']);
  assert.deepEqual(t.inputIds.shape, [2, 5]);
  assert.deepEqual(t.attentionMask.toArray(), [1, 1, 1, 1, 0, 1, 1, 1, 1, 1]);
});

test('WordPiece (BLIP): an added [DEC] token is kept whole; the tokenizer builds from parsed objects', () => {
  const tok = loadTokenizer({ tokenizerJson: bertJson(['[DEC]']), tokenizerConfig: { ...BERT_CONFIG, bos_token: '[DEC]' } });
  assert.deepEqual(tok.encode('[DEC] a dog').inputIds[0], [2, 20, 14, 15, 3]);
  assert.equal(tok.tokenToId('[DEC]'), 20);
});

// ---- Unigram (SigLIP) ----

function siglipJson() {
  const vocab: [string, number][] = [
    ['<pad>', 0], ['</s>', 0], ['<unk>', 0], ['▁a', -2], ['▁photo', -3], ['▁of', -3], ['▁cat', -3], ['▁dog', -3],
    ['s', -4], ['▁', -4], ['c', -6], ['a', -6], ['t', -6], ['d', -6], ['o', -6], ['g', -6], ['▁two', -3],
  ];
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: 0, content: '<pad>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 1, content: '</s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
      { id: 2, content: '<unk>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: '</s>', type_id: 0 } }],
      pair: [],
      special_tokens: { '</s>': { id: '</s>', ids: [1], tokens: ['</s>'] } },
    },
    decoder: { type: 'Metaspace', replacement: '▁', prepend_scheme: 'always', split: true },
    model: { type: 'Unigram', unk_id: 2, vocab, byte_fallback: false },
  };
}

const SIGLIP_CONFIG = { tokenizer_class: 'SiglipTokenizer', do_lower_case: true, model_max_length: 8, pad_token: '</s>', eos_token: '</s>', unk_token: '<unk>' };

test('Unigram (SigLIP): canonicalised text, </s> at the end, padded to the maximum length with the pad id', () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(siglipJson()));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(SIGLIP_CONFIG));
  const tok = loadTokenizer(dir);
  assert.equal(tok.settings.padding, 'max_length');
  assert.equal(tok.settings.cleanup, 'siglip');
  const enc = tok.encode(['A photo of a cat!', 'two  dogs.', 'a photo of two cats, a dog']);
  assert.deepEqual(enc.inputIds, [
    [3, 4, 5, 3, 6, 1, 1, 1],
    [16, 7, 8, 1, 1, 1, 1, 1],
    [3, 4, 5, 16, 6, 8, 3, 1], // truncated: 7 tokens and </s>
  ]);
  assert.deepEqual(enc.attentionMask[1], [1, 1, 1, 1, 0, 0, 0, 0]);
  // An unknown character becomes <unk>; a longer context pads further.
  assert.deepEqual(tok.encode('a zoo', { contextLength: 10 }).inputIds[0], [3, 9, 2, 14, 14, 1, 1, 1, 1, 1]);
  assert.equal(tok.decode(enc.inputIds[0]!), 'a photo of a cat');
});

// ---- errors ----

test('a folder without tokenizer.json is an error naming the path', () => {
  const dir = tmpDir();
  assert.throws(() => loadTokenizer(dir), (e: Error) => e.message.includes(path.join(dir, 'tokenizer.json')));
  assert.throws(() => loadTokenizer(path.join(dir, 'nope')), /nope does not exist/);
});

test('malformed tokenizer.json or tokenizer_config.json is a clear error', () => {
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"model": {"type": "BPE", ');
  assert.throws(() => loadTokenizer(dir), (e: Error) => /is not valid JSON/.test(e.message) && e.message.includes(path.join(dir, 'tokenizer.json')));
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), '[1, 2]');
  assert.throws(() => loadTokenizer(dir), /must hold a JSON object/);
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), '{"version": "1.0"}');
  assert.throws(() => loadTokenizer(dir), /has no "model" object/);
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify({ model: { type: 'BPE', vocab: {}, merges: 5 } }));
  assert.throws(() => loadTokenizer(dir), /cannot build the tokenizer/);
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(bertJson()));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), '{oops');
  assert.throws(() => loadTokenizer(dir), (e: Error) => /is not valid JSON/.test(e.message) && e.message.includes('tokenizer_config.json'));
});

// ---- the tokenize command ----

test('tokenizeCommand prints padded ids as a JSON array of arrays', (t) => {
  const out = tokenizeCommand(['a photo of a cat.', 'How are you doing?'], { model: 'ViT-B-32', json: true });
  const rows = JSON.parse(out) as number[][];
  assert.equal(rows.length, 2);
  assert.ok(rows.every((r) => r.length === 77));
  const fx = clipFixture();
  if (fx) assert.deepEqual(rows, fx.ids.slice(0, 2));
  assert.deepEqual(JSON.parse(tokenizeCommand(['a cat'], { model: 'ViT-L-14', json: true, contextLength: 6 })), [[49406, 320, 2368, 49407, 0, 0]]);
  assert.equal(tokenizeCommand(['a cat'], { model: 'RN50', contextLength: 5 }), '49406 320 2368 49407 0');
  const dir = tmpDir();
  fs.writeFileSync(path.join(dir, 'tokenizer.json'), JSON.stringify(bertJson()));
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify(BERT_CONFIG));
  assert.deepEqual(JSON.parse(tokenizeCommand(['the cat', 'a dog sat'], { model: dir, json: true, contextLength: 6 })), [[2, 5, 6, 3, 0, 0], [2, 14, 15, 7, 3, 0]]);
  assert.throws(() => tokenizerFor('ViT-B-16-SigLIP'), /no tokenizer is packaged/);
  assert.throws(() => tokenizerFor('no-such-model'), /unknown model 'no-such-model'/);
  t.diagnostic('ok');
});

test('a saved tokenizer loads back with the same settings and ids', () => {
  const dir = tmpDir();
  for (const [name, t] of [['clip', clipTokenizer()], ['bytes', byteTokenizer(24)]] as const) {
    t.save(path.join(dir, name));
    const back = loadTokenizer(path.join(dir, name));
    assert.deepEqual(back.settings, t.settings, name);
    const texts = ['A  Photo of a CAT &amp; a dog!', 'ünïcödé — text', 'a sentence much longer than the twenty-four tokens of the context'];
    assert.deepEqual(back.encode(texts).inputIds, t.encode(texts).inputIds, name);
  }
});
