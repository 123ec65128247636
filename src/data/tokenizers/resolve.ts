// Which tokenizer a model name or folder means.
import { existsSync, statSync } from 'node:fs';
import { clipTokenizer } from './clip.js';
import { loadTokenizer, type TextTokenizer } from './tokenizer.js';

// open_clip's CLIP architectures (ViT-B-32, ViT-L-14-336, RN50x4, convnext_base_w, EVA02-B-16,
// coca_ViT-B-32, MobileCLIP-S1, ...) and Hugging Face's openai/clip-* names. The variants whose
// text tower has another tokenizer (SigLIP's SentencePiece, CLIPA's and the multilingual ones'
// Hugging Face tokenizers) are not packaged.
// Registered models (src/models/registry.ts) carry their own tokenizer; the CLI asks them first.
const CLIP_NAMES = /^(vit-|rn\d|convnext|eva\d*-|coca_|mobileclip)|clip/i;
const OTHER_TOKENIZER = /siglip|clipa|xlm|roberta|mt5|nllb|bert/i;

/**
 * The tokenizer for `model`: a folder holding tokenizer.json (a Hugging Face model folder), or
 * the name of a CLIP model, which uses the packaged CLIP tokenizer.
 */
export function tokenizerFor(model: string): TextTokenizer {
  if (existsSync(model) && statSync(model).isDirectory()) return loadTokenizer(model);
  if (OTHER_TOKENIZER.test(model)) {
    throw new Error(`tokenizer: no tokenizer is packaged for ${model}; pass the folder holding its tokenizer.json`);
  }
  if (CLIP_NAMES.test(model)) return clipTokenizer();
  throw new Error(`tokenizer: unknown model '${model}' (a CLIP model name such as ViT-B-32, or a folder holding tokenizer.json)`);
}
