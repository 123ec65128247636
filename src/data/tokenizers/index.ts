// Text tokenizers: tokenizer.json files run by @huggingface/tokenizers, batched for the models.
export { TextTokenizer, loadTokenizer } from './tokenizer.js';
export type { TokenizerSettings, TokenizerSource, EncodeOptions, BatchEncoding, BatchTensors, Padding, TextCleanup, SpecialTokenRole } from './tokenizer.js';
export { trainWordPiece, trainWordPieceTokenizer, wordPieceTokenizerJson, bertTokenizerConfig, BERT_SPECIAL_TOKENS } from './wordpiece.js';
export type { WordPieceTrainOptions, WordPieceTokenizerOptions, WordPieceJsonOptions, BertTokenizerConfigOptions } from './wordpiece.js';
export { clipTokenizer, clipTokenizerJson, clipTokenizerConfig, readClipMerges, byteSymbols, CLIP_CONTEXT_LENGTH } from './clip.js';
export { cleanClipText, cleanSiglipText } from './clean.js';
export { unescapeHtml } from './html.js';
export { tokenizerFor } from './resolve.js';
