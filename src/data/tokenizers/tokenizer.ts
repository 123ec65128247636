// Text tokenizers from Hugging Face tokenizer.json files (BPE, WordPiece, Unigram), run by
// @huggingface/tokenizers, with the batching the models need: special tokens, truncation to the
// context length, padding and attention masks.
//
// Defaults come from the files: the context length from tokenizer.json's truncation/padding or
// tokenizer_config.json's model_max_length, the pad id from its pad_token, and by family
// (tokenizer_class): CLIP and SigLIP pad to the context length, as their models were trained,
// BERT/BLIP and others to the longest text. The packaged CLIP tokenizer's config names "!" (id 0)
// as pad token, so it pads with zeros as open_clip does; Hugging Face's CLIP folders name
// <|endoftext|> (49407). CLIP's causal text tower pools at the first end token, so both give the
// same features.
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Tokenizer } from '@huggingface/tokenizers';
import { tensor, type Tensor } from '../../tensor/index.js';
import { cleanClipText, cleanSiglipText } from './clean.js';

/**
 * Text cleaning some reference tokenizers do in Python, outside what tokenizer.json can say:
 * - 'clip': open_clip's (HTML entities resolved, whitespace collapsed, lower-case);
 * - 'siglip': HF's SiglipTokenizer (ASCII punctuation removed, whitespace collapsed, lower-case).
 */
export type TextCleanup = 'none' | 'clip' | 'siglip';

/** Roles of special tokens as tokenizer_config.json names them (`pad_token`, `mask_token`, ...). */
export type SpecialTokenRole = 'pad' | 'unk' | 'cls' | 'sep' | 'mask' | 'bos' | 'eos';

/** 'max_length' pads every row to the context length, 'longest' to the batch's longest row. */
export type Padding = 'longest' | 'max_length' | 'none';

export interface TokenizerSettings {
  /** The longest sequence the model takes, special tokens included; null when unbounded. */
  contextLength: number | null;
  /** Id written after the end of each sequence. */
  padId: number;
  padding: Padding;
  truncation: boolean;
  cleanup: TextCleanup;
  /** Passed to the decoder: remove the spaces that word-level decoding leaves before punctuation. */
  cleanUpSpaces: boolean;
}

export interface EncodeOptions {
  contextLength?: number | null;
  padding?: Padding;
  truncation?: boolean;
  /** Add the start/end (CLS/SEP, EOS...) tokens of the tokenizer's post-processor; default true. */
  addSpecialTokens?: boolean;
}

/** A batch of token ids; rows have equal length unless padding was 'none'. */
export interface BatchEncoding {
  inputIds: number[][];
  /** 1 for real tokens (special ones included), 0 for padding. */
  attentionMask: number[][];
  /** Segment ids from the post-processor's template (all 0 for single texts). */
  tokenTypeIds: number[][];
}

export interface BatchTensors {
  /** int32 [batch, length] */
  inputIds: Tensor;
  /** int32 [batch, length] */
  attentionMask: Tensor;
  /** int32 [batch, length] */
  tokenTypeIds: Tensor;
}

export interface TokenizerSource {
  /** The parsed tokenizer.json. */
  tokenizerJson: unknown;
  /** The parsed tokenizer_config.json ({} when there is none). */
  tokenizerConfig?: Record<string, unknown>;
}

type Config = Record<string, unknown>;

/** The name of a special token in tokenizer_config.json: a string, or an AddedToken object. */
function tokenName(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value && typeof value === 'object' && typeof (value as { content?: unknown }).content === 'string') {
    return (value as { content: string }).content;
  }
  return undefined;
}

type Family = 'clip' | 'siglip' | 'bert' | 'other';

function family(config: Config): Family {
  const cls = String(config.tokenizer_class ?? '').replace(/Fast$/, '');
  if (cls === 'CLIPTokenizer') return 'clip';
  if (cls === 'SiglipTokenizer') return 'siglip';
  if (cls === 'BertTokenizer') return 'bert';
  return 'other';
}

/** A tokenizer.json + tokenizer_config.json pair, ready to encode batches for a model. */
export class TextTokenizer {
  /** The @huggingface/tokenizers instance doing the work. */
  readonly hf: Tokenizer;
  readonly settings: Readonly<TokenizerSettings>;
  private readonly lowercase: boolean;
  private readonly specialCount: number;

  constructor(readonly source: TokenizerSource, overrides: Partial<TokenizerSettings> = {}, origin = 'tokenizer') {
    const json = source.tokenizerJson;
    if (!json || typeof json !== 'object' || Array.isArray(json)) throw new Error(`${origin}: tokenizer.json must hold a JSON object`);
    const model = (json as Config).model;
    if (!model || typeof model !== 'object') throw new Error(`${origin}: tokenizer.json has no "model" object`);
    const config: Config = source.tokenizerConfig ?? {};
    // The library wants every section present; HF writes null for absent ones.
    const complete = { added_tokens: [], normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, ...(json as Config) };
    try {
      this.hf = new Tokenizer(complete, config);
    } catch (e) {
      throw new Error(`${origin}: cannot build the tokenizer: ${(e as Error).message}`, { cause: e });
    }
    const kind = family(config);
    const fromJson = complete as { padding?: { pad_id?: number; strategy?: unknown } | null; truncation?: { max_length?: number } | null };
    const fixed = fromJson.padding?.strategy && typeof fromJson.padding.strategy === 'object'
      ? (fromJson.padding.strategy as { Fixed?: number }).Fixed : undefined;
    const maxLength = typeof config.model_max_length === 'number' && config.model_max_length < 1e6 ? config.model_max_length : undefined;
    const padToken = tokenName(config.pad_token);
    const padTokenId = padToken === undefined ? undefined : this.hf.token_to_id(padToken);
    if (padToken !== undefined && padTokenId === undefined && overrides.padId === undefined) {
      throw new Error(`${origin}: the pad token ${JSON.stringify(padToken)} of tokenizer_config.json is not in the vocabulary`);
    }
    const padId = fromJson.padding?.pad_id ?? padTokenId ?? 0;
    this.settings = {
      contextLength: fromJson.truncation?.max_length ?? fixed ?? maxLength ?? null,
      padId,
      padding: kind === 'clip' || kind === 'siglip' || fixed !== undefined ? 'max_length' : 'longest',
      truncation: true,
      cleanup: (config.glimpse_text_cleanup as TextCleanup | undefined) ?? (kind === 'siglip' ? 'siglip' : 'none'),
      cleanUpSpaces: (config.clean_up_tokenization_spaces as boolean | undefined) ?? kind !== 'clip',
      ...overrides,
    };
    if (!['none', 'clip', 'siglip'].includes(this.settings.cleanup)) throw new Error(`${origin}: unknown text cleanup '${this.settings.cleanup}'`);
    this.lowercase = (config.do_lower_case as boolean | undefined) ?? true;
    this.specialCount = this.hf.post_processor ? this.hf.post_processor.post_process([], null, true).tokens.length : 0;
  }

  /**
   * Writes tokenizer.json and tokenizer_config.json into `dir`, such that loadTokenizer reads back
   * these settings and HF reads the same ids: padding to the context length and truncation go into
   * tokenizer.json (where `tokenizers` applies them), the rest into tokenizer_config.json, with
   * PreTrainedTokenizerFast as the class when the files name none.
   */
  save(dir: string): void {
    const s = this.settings;
    const json: Config = { ...(this.source.tokenizerJson as Config) };
    const padToken = this.idToToken(s.padId);
    if (s.contextLength !== null && s.truncation) {
      json.truncation = { direction: 'Right', max_length: s.contextLength, strategy: 'LongestFirst', stride: 0 };
    }
    if (s.contextLength !== null && s.padding === 'max_length') {
      json.padding = { strategy: { Fixed: s.contextLength }, direction: 'Right', pad_to_multiple_of: null, pad_id: s.padId, pad_type_id: 0, pad_token: padToken ?? '' };
    }
    const config: Config = {
      tokenizer_class: 'PreTrainedTokenizerFast',
      ...this.source.tokenizerConfig,
      ...(s.contextLength !== null ? { model_max_length: s.contextLength } : {}),
      clean_up_tokenization_spaces: s.cleanUpSpaces,
      glimpse_text_cleanup: s.cleanup,
    };
    if (config.pad_token === undefined && padToken !== undefined) config.pad_token = padToken;
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(json));
    writeFileSync(join(dir, 'tokenizer_config.json'), `${JSON.stringify(config, null, 2)}\n`);
  }

  get vocabSize(): number {
    return this.hf.get_vocab(true).size;
  }

  /**
   * The id of the token that tokenizer_config.json names for a role (its `<role>_token` field, e.g.
   * mask_token for 'mask'); undefined when the config names none or the token is not in the vocabulary.
   */
  specialTokenId(role: SpecialTokenRole): number | undefined {
    const name = tokenName(this.source.tokenizerConfig?.[`${role}_token`]);
    return name === undefined ? undefined : this.hf.token_to_id(name);
  }

  /** Ids of the tokens marked special in tokenizer.json (e.g. [PAD] [UNK] [CLS] [SEP] [MASK]), ascending. */
  get specialIds(): number[] {
    return [...this.hf.get_added_tokens_decoder()].filter(([, t]) => t.special).map(([id]) => id).sort((a, b) => a - b);
  }

  tokenToId(token: string): number | undefined {
    return this.hf.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return this.hf.id_to_token(id);
  }

  /** The text as the reference tokenizer sees it after its own cleaning. */
  clean(text: string): string {
    switch (this.settings.cleanup) {
      case 'clip':
        return cleanClipText(text);
      case 'siglip':
        return cleanSiglipText(text, this.lowercase);
      default:
        return text;
    }
  }

  /** The tokens of one text, without special tokens. */
  tokenize(text: string): string[] {
    return this.hf.tokenize(this.clean(text), { add_special_tokens: false });
  }

  private idOf(token: string): number {
    const id = this.hf.token_to_id(token) ?? this.hf.model?.unk_token_id;
    if (id === undefined) throw new Error(`tokenizer: token ${JSON.stringify(token)} is not in the vocabulary and there is no unknown token`);
    return id;
  }

  /** One text's ids: truncated to `limit` (special tokens included, those at the ends kept). */
  private encodeOne(text: string, addSpecial: boolean, limit: number | null): { ids: number[]; types: number[] } {
    let tokens = this.tokenize(text);
    const extra = addSpecial ? this.specialCount : 0;
    if (limit !== null && tokens.length + extra > limit) {
      if (limit < extra) throw new Error(`tokenizer: context length ${limit} leaves no room for the ${extra} special tokens`);
      tokens = tokens.slice(0, limit - extra);
    }
    let types = new Array<number>(tokens.length).fill(0);
    if (addSpecial && this.hf.post_processor) {
      const out = this.hf.post_processor.post_process(tokens, null, true);
      tokens = out.tokens;
      types = out.token_type_ids?.map((t: number | undefined) => t ?? 0) ?? new Array<number>(tokens.length).fill(0);
    }
    return { ids: tokens.map((t) => this.idOf(t)), types };
  }

  /** Token ids for a batch of texts, truncated and padded per `options` over the tokenizer's settings. */
  encode(texts: string | readonly string[], options: EncodeOptions = {}): BatchEncoding {
    const batch = typeof texts === 'string' ? [texts] : texts;
    const contextLength = options.contextLength === undefined ? this.settings.contextLength : options.contextLength;
    const padding = options.padding ?? this.settings.padding;
    const truncation = options.truncation ?? this.settings.truncation;
    const addSpecial = options.addSpecialTokens ?? true;
    if (contextLength !== null && !(Number.isInteger(contextLength) && contextLength > 0)) {
      throw new Error(`tokenizer: context length must be a positive integer, got ${contextLength}`);
    }
    if (padding === 'max_length' && contextLength === null) throw new Error("tokenizer: padding 'max_length' needs a context length");
    const rows = batch.map((text) => this.encodeOne(text, addSpecial, truncation ? contextLength : null));
    let width = 0;
    if (padding === 'max_length') {
      width = contextLength!;
      const over = rows.findIndex((r) => r.ids.length > width);
      if (over >= 0) throw new Error(`tokenizer: text ${over} has ${rows[over]!.ids.length} tokens, more than the context length ${width} (truncation is off)`);
    } else if (padding === 'longest') {
      width = Math.max(0, ...rows.map((r) => r.ids.length));
    }
    const pad = (row: number[], value: number) => (row.length < width ? row.concat(new Array<number>(width - row.length).fill(value)) : row);
    return {
      inputIds: rows.map((r) => pad(r.ids, this.settings.padId)),
      attentionMask: rows.map((r) => pad(new Array<number>(r.ids.length).fill(1), 0)),
      tokenTypeIds: rows.map((r) => pad(r.types, 0)),
    };
  }

  /** encode() as int32 tensors [batch, length]; the rows must have equal lengths (padding not 'none'). */
  encodeTensors(texts: string | readonly string[], options: EncodeOptions = {}): BatchTensors {
    const enc = this.encode(texts, options);
    const b = enc.inputIds.length;
    const n = b ? enc.inputIds[0]!.length : 0;
    if (enc.inputIds.some((r) => r.length !== n)) throw new Error("tokenizer: rows of unequal length cannot form a tensor; use padding 'longest' or 'max_length'");
    const pack = (rows: number[][]) => tensor(Int32Array.from(rows.flat()), { shape: [b, n] });
    return { inputIds: pack(enc.inputIds), attentionMask: pack(enc.attentionMask), tokenTypeIds: pack(enc.tokenTypeIds) };
  }

  /**
   * Text from ids. With skipSpecialTokens (the default) trailing padding and special tokens are
   * dropped, so a padded row from encode() decodes to its text.
   */
  decode(ids: readonly number[] | Int32Array, options: { skipSpecialTokens?: boolean } = {}): string {
    const skip = options.skipSpecialTokens ?? true;
    let list = Array.from(ids);
    if (skip) {
      let end = list.length;
      while (end > 0 && list[end - 1] === this.settings.padId) end--;
      list = list.slice(0, end);
    }
    if (list.length === 0) return '';
    const text = this.hf.decode(list, { skip_special_tokens: skip, clean_up_tokenization_spaces: this.settings.cleanUpSpaces });
    return this.hf.model?.end_of_word_suffix ? text.trim() : text;
  }
}

function readJson(path: string): unknown {
  let text: string;
  try {
    const bytes = readFileSync(path);
    text = (path.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('utf8');
  } catch (e) {
    throw new Error(`tokenizer: cannot read ${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new Error(`tokenizer: ${path} is not valid JSON: ${(e as Error).message}`, { cause: e });
  }
}

/**
 * A tokenizer from a folder holding tokenizer.json (or tokenizer.json.gz) and, optionally,
 * tokenizer_config.json, from the path of the tokenizer.json itself (its folder's
 * tokenizer_config.json is read), or from those files' parsed contents. `overrides` replace the settings
 * read from the files (context length, pad id, padding, truncation, cleanup).
 */
export function loadTokenizer(source: string | TokenizerSource, overrides: Partial<TokenizerSettings> = {}): TextTokenizer {
  if (typeof source !== 'string') return new TextTokenizer(source, overrides);
  if (!existsSync(source)) throw new Error(`tokenizer: ${source} does not exist`);
  const isDir = statSync(source).isDirectory();
  const dir = isDir ? source : dirname(source);
  const jsonPath = isDir ? [join(dir, 'tokenizer.json'), join(dir, 'tokenizer.json.gz')].find((p) => existsSync(p)) : source;
  if (!jsonPath) throw new Error(`tokenizer: no tokenizer.json in ${dir} (looked for ${join(dir, 'tokenizer.json')})`);
  const configPath = join(dir, 'tokenizer_config.json');
  const tokenizerConfig = existsSync(configPath) ? readJson(configPath) : {};
  if (!tokenizerConfig || typeof tokenizerConfig !== 'object' || Array.isArray(tokenizerConfig)) {
    throw new Error(`tokenizer: ${configPath} must hold a JSON object`);
  }
  return new TextTokenizer({ tokenizerJson: readJson(jsonPath), tokenizerConfig: tokenizerConfig as Config }, overrides, jsonPath);
}
