// Writes assets/tokenizers/clip/ from OpenAI's BPE vocabulary:
//   node dist/src/data/tokenizers/build-clip.js [bpe_simple_vocab_16e6.txt.gz] [out folder]
// (defaults: ../shared/data/clip-bpe/ and the packaged folder). test/tokenizers.test.ts checks that
// the shipped files are what this writes.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { assetPath } from './assets.js';
import { clipTokenizerConfig, clipTokenizerJson, readClipMerges } from './clip.js';

/** The files of the CLIP tokenizer folder, by name, built from the vocabulary file. */
export function clipTokenizerFiles(vocabFile: string): { 'tokenizer.json': string; 'tokenizer_config.json': string } {
  return {
    'tokenizer.json': clipTokenizerJson(readClipMerges(vocabFile)),
    'tokenizer_config.json': JSON.stringify(clipTokenizerConfig(), null, 2) + '\n',
  };
}

export function writeClipTokenizer(vocabFile: string, outDir: string): void {
  const files = clipTokenizerFiles(vocabFile);
  mkdirSync(outDir, { recursive: true });
  // mtime 0 in the gzip header (Node's default) keeps the output reproducible.
  writeFileSync(join(outDir, 'tokenizer.json.gz'), gzipSync(files['tokenizer.json'], { level: 9 }));
  writeFileSync(join(outDir, 'tokenizer_config.json'), files['tokenizer_config.json']);
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const vocab = process.argv[2] ?? resolve('../shared/data/clip-bpe/bpe_simple_vocab_16e6.txt.gz');
  const out = process.argv[3] ?? dirname(assetPath('tokenizers/clip/LICENSE'));
  writeClipTokenizer(vocab, out);
  console.log(`wrote ${out}`);
}
