// `glimpse tokenize`: token ids of texts as a model sees them.
import { tokenizerFor } from '../data/tokenizers/index.js';
import { models } from '../models/registry.js';

export interface TokenizeCommandOptions {
  /** A registered model name (ViT-B-32, tiny-clip, ...), a CLIP model name, or a folder holding tokenizer.json. */
  model: string;
  /** Print a JSON array of arrays (one row of ids per text) instead of one line of ids per text. */
  json?: boolean;
  /** Overrides the tokenizer's context length (77 for CLIP). */
  contextLength?: number;
}

/** What the command prints: each text's ids, padded to the context length. */
export function tokenizeCommand(texts: readonly string[], options: TokenizeCommandOptions): string {
  // A registered model knows its tokenizer; other names and folders are resolved by the data layer.
  const tokenizer = models.find(options.model)?.tokenizer?.() ?? tokenizerFor(options.model);
  const contextLength = options.contextLength ?? tokenizer.settings.contextLength;
  const { inputIds } = tokenizer.encode(texts, {
    contextLength,
    padding: contextLength === null ? 'longest' : 'max_length',
  });
  if (options.json) return JSON.stringify(inputIds);
  return inputIds.map((row) => row.join(' ')).join('\n');
}
