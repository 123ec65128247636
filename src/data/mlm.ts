// The data side of masked-language-model pretraining, as Hugging Face's run_mlm.py prepares it:
// documents tokenized as [CLS] ids [SEP], concatenated and cut into blocks of the context length
// (group_texts); 15% of the non-special tokens selected for prediction, 80% of those replaced by
// [MASK], 10% by a random token, 10% left as they are (DataCollatorForLanguageModeling).
// TokenBatchLoader serves the blocks shuffled per epoch and sharded by rank, as the image loader
// does, and masks each block with a generator seeded from (seed, epoch, block): a batch is a pure
// function of its position, so a resumed run sees the same batches as an uninterrupted one.
import { Generator } from '../tensor/random.js';
import { type Tensor, tensor } from '../tensor/tensor.js';
import { mixSeed } from './common.js';
import { checkInt, EpochSampler, type LoaderPosition, nextPosition } from './sampler.js';

/** Where a label is not predicted (PyTorch's cross-entropy ignore_index). */
export const IGNORE_INDEX = -100;

/**
 * First parts of mixSeed for this file's streams, apart from common.ts's SEED_STREAMS (1-5) so
 * that no stream is shared: a block's masks in a training epoch, and in held-out evaluation.
 */
export const MLM_SEED_STREAMS = { mask: 101, evalMask: 102 } as const;

export interface PackOptions {
  /** Tokens per block (BERT: at most max_position_embeddings). */
  contextLength: number;
  clsId: number;
  sepId: number;
}


const INT32_MAX = 2147483647;

/**
 * Packs documents into blocks as run_mlm's group_texts does: each document becomes [CLS] ids [SEP]
 * (`encode` gives the ids without special tokens), all are concatenated, and the stream is cut into
 * blocks of contextLength; the remainder that fills no block is dropped. Returns the blocks one
 * after another (length = blocks * contextLength). group_texts concatenates within each map batch
 * of 1000 documents and drops a remainder per batch; this concatenates the whole corpus, so at most
 * one partial block is lost. An empty document still gives [CLS] [SEP], as the tokenizer would.
 */
export function packSequences(documents: Iterable<string>, encode: (text: string) => ArrayLike<number>, options: PackOptions): Int32Array {
  const T = checkInt(options.contextLength, 'packSequences: contextLength', 2);
  const cls = checkInt(options.clsId, 'packSequences: clsId', 0, INT32_MAX);
  const sep = checkInt(options.sepId, 'packSequences: sepId', 0, INT32_MAX);
  let out = new Int32Array(Math.max(T, 1 << 16));
  let length = 0;
  const push = (id: number): void => {
    if (length === out.length) {
      const grown = new Int32Array(out.length * 2);
      grown.set(out);
      out = grown;
    }
    out[length++] = id;
  };
  let count = 0;
  for (const doc of documents) {
    const ids = encode(doc);
    push(cls);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!Number.isInteger(id) || id < 0 || id > INT32_MAX) throw new Error(`packSequences: encode gave ${id} at position ${i} of document ${count}; token ids are integers in [0, ${INT32_MAX}]`);
      push(id);
    }
    push(sep);
    count++;
  }
  const blocks = Math.floor(length / T);
  if (blocks === 0) throw new Error(`packSequences: ${count} documents give ${length} tokens with [CLS] and [SEP], not one block of ${T}`);
  return out.slice(0, blocks * T);
}

export interface MaskingOptions {
  /** Token ids are in [0, vocabSize); random replacements are drawn from all of it, as HF does. */
  vocabSize: number;
  maskId: number;
  /** Ids never selected ([CLS], [SEP], [PAD], ...). */
  specialIds: Iterable<number>;
  /** The chance that a non-special token is selected (default 0.15). */
  probability?: number;
  /** Of the selected tokens, the share replaced by [MASK] (default 0.8). */
  maskReplaceProbability?: number;
  /** Of the selected tokens, the share replaced by a random token (default 0.1); the rest stay. */
  randomReplaceProbability?: number;
}

export interface MaskedTokens {
  /** The ids with selected tokens replaced. */
  readonly inputIds: Int32Array;
  /** The original id where a token was selected, IGNORE_INDEX elsewhere. */
  readonly labels: Int32Array;
}

/** Checked masking options with the special ids as a lookup table. */
class MaskingRule {
  readonly vocabSize: number;
  readonly maskId: number;
  readonly probability: number;
  readonly maskShare: number;
  /** The chance of a random token for a selected token that did not become [MASK]. */
  readonly randomShareOfRest: number;
  readonly special: Uint8Array;

  constructor(o: MaskingOptions, private readonly where: string) {
    this.vocabSize = checkInt(o.vocabSize, `${where}: vocabSize`, 1, INT32_MAX);
    this.maskId = checkInt(o.maskId, `${where}: maskId`, 0, this.vocabSize - 1);
    const share = (v: number | undefined, fallback: number, what: string): number => {
      const p = v ?? fallback;
      if (!(typeof p === 'number' && p >= 0 && p <= 1)) throw new Error(`${where}: ${what} must be in [0, 1], got ${String(v)}`);
      return p;
    };
    this.probability = share(o.probability, 0.15, 'probability');
    this.maskShare = share(o.maskReplaceProbability, 0.8, 'maskReplaceProbability');
    const randomShare = share(o.randomReplaceProbability, 0.1, 'randomReplaceProbability');
    if (this.maskShare + randomShare > 1 + 1e-12) throw new Error(`${where}: maskReplaceProbability + randomReplaceProbability must be at most 1, got ${this.maskShare} + ${randomShare}`);
    this.randomShareOfRest = this.maskShare < 1 ? Math.min(1, randomShare / (1 - this.maskShare)) : 0;
    if (o.specialIds === null || typeof o.specialIds !== 'object' || !(Symbol.iterator in o.specialIds)) throw new Error(`${where}: specialIds must be a list of token ids`);
    this.special = new Uint8Array(this.vocabSize);
    for (const id of o.specialIds) this.special[checkInt(id, `${where}: a special id`, 0, this.vocabSize - 1)] = 1;
  }

  /** Masks ids[start, end) into the outputs at the same positions, drawing from g. */
  apply(ids: Int32Array, start: number, end: number, inputIds: Int32Array, labels: Int32Array, g: Generator): void {
    for (let i = start; i < end; i++) {
      const id = ids[i]!;
      if (id < 0 || id >= this.vocabSize) throw new Error(`${this.where}: token ${id} at position ${i} is outside the vocabulary [0, ${this.vocabSize})`);
      inputIds[i] = id;
      labels[i] = IGNORE_INDEX;
      // DataCollatorForLanguageModeling's three Bernoulli draws: selected with p; of those, [MASK]
      // with 0.8; of the rest, a random token with 0.1 / (1 - 0.8) = 0.5. Later draws are taken
      // only for selected tokens, which changes nothing in the distribution.
      if (this.special[id] === 1 || !(g.uniform() < this.probability)) continue;
      labels[i] = id;
      if (g.uniform() < this.maskShare) inputIds[i] = this.maskId;
      else if (g.uniform() < this.randomShareOfRest) inputIds[i] = g.int(0, this.vocabSize);
    }
  }
}

/**
 * Selects tokens for prediction as HF's DataCollatorForLanguageModeling does: each non-special
 * token independently with `probability`; labels hold the original id there and IGNORE_INDEX
 * elsewhere; a selected token becomes [MASK] (80%), a random id uniform in [0, vocabSize) (10%),
 * or stays (10%). The same generator state gives the same result.
 */
export function maskTokens(ids: Int32Array, options: MaskingOptions & { generator: Generator }): MaskedTokens {
  if (!(ids instanceof Int32Array)) throw new Error('maskTokens: ids must be an Int32Array');
  if (!(options.generator instanceof Generator)) throw new Error('maskTokens: options.generator must be a Generator (src/tensor/random.ts)');
  const rule = new MaskingRule(options, 'maskTokens');
  const inputIds = new Int32Array(ids.length);
  const labels = new Int32Array(ids.length);
  rule.apply(ids, 0, ids.length, inputIds, labels, options.generator);
  return { inputIds, labels };
}

export interface TokenBatch {
  /** [B, T] int32, with the selected tokens replaced. */
  readonly inputIds: Tensor;
  /** [B, T] int32: the original token where one was selected, IGNORE_INDEX elsewhere. */
  readonly labels: Tensor;
  /** `block:<i>`, the index of each row's block in the packed corpus. */
  readonly keys: readonly string[];
  /** The position of this batch. */
  readonly position: LoaderPosition;
}

/** The number of blocks in packed ids, checked. */
function blockCount(blocks: Int32Array, contextLength: number, where: string): number {
  if (!(blocks instanceof Int32Array)) throw new Error(`${where}: blocks must be the Int32Array packSequences gives`);
  checkInt(contextLength, `${where}: contextLength`, 1);
  if (blocks.length === 0 || blocks.length % contextLength !== 0) throw new Error(`${where}: ${blocks.length} ids are not a whole number of blocks of ${contextLength}`);
  return blocks.length / contextLength;
}

/** Masks the given blocks into a batch, each block with its own generator. */
function maskedBatch(blocks: Int32Array, T: number, indices: ArrayLike<number>, rule: MaskingRule, seedOf: (block: number) => number, position: LoaderPosition): TokenBatch {
  const B = indices.length;
  const inputIds = new Int32Array(B * T);
  const labels = new Int32Array(B * T);
  const keys: string[] = [];
  const g = new Generator();
  for (let r = 0; r < B; r++) {
    const block = indices[r]!;
    // Copy the block to the batch row, then mask the row in place.
    inputIds.set(blocks.subarray(block * T, (block + 1) * T), r * T);
    g.manualSeed(seedOf(block));
    rule.apply(inputIds, r * T, (r + 1) * T, inputIds, labels, g);
    keys.push(`block:${block}`);
  }
  return { inputIds: tensor(inputIds, { shape: [B, T] }), labels: tensor(labels, { shape: [B, T] }), keys, position };
}

export interface TokenLoaderOptions {
  batchSize: number;
  /** The block length the ids were packed with. */
  contextLength: number;
  masking: MaskingOptions;
  seed?: number;              // default 0
  shuffle?: boolean;          // default true; reshuffled per epoch from (seed, epoch)
  dropLast?: boolean;         // default true when shuffle
  rank?: number; worldSize?: number; // sharding for data parallel, as PyTorch's DistributedSampler (src/data/sampler.ts)
}

/**
 * Batches of masked blocks, epoch after epoch, with DataLoader's conventions (src/data/loader.ts):
 * the order of an epoch is a permutation from (seed, epoch), rank r takes every worldSize-th block
 * from r, every rank reads the same number of batches (dropLast drops the tail, otherwise the epoch
 * is padded by wrapping around; see src/data/sampler.ts), and `batches(from)` resumes at a position. A block's masks come from (seed, epoch, block index), so they do not depend on the batch
 * size, the rank or the number of ranks, and a block is masked afresh each epoch as HF's collator
 * does. Masking a batch takes well under a millisecond, so it runs on the calling thread.
 */
export class TokenBatchLoader {
  readonly batchSize: number;
  readonly contextLength: number;
  readonly batchesPerEpoch: number;
  /** Blocks in the packed corpus (all ranks). */
  readonly blockCount: number;
  private readonly rule: MaskingRule;
  private readonly sampler: EpochSampler;
  private closed = false;

  constructor(private readonly blocks: Int32Array, options: TokenLoaderOptions) {
    const where = 'TokenBatchLoader';
    this.contextLength = checkInt(options.contextLength, `${where}: contextLength`, 1);
    const n = blockCount(blocks, this.contextLength, where);
    this.blockCount = n;
    this.sampler = new EpochSampler(n, options, where);
    this.batchSize = this.sampler.batchSize;
    this.batchesPerEpoch = this.sampler.batchesPerEpoch;
    this.rule = new MaskingRule(options.masking, where);
    if (this.batchesPerEpoch < 1) {
      throw new Error(`${where}: ${n} blocks of ${this.contextLength} tokens, ${this.sampler.perRank} per rank: not one full batch of ${this.batchSize} (use a smaller batch, a shorter context or dropLast: false)`);
    }
  }

  /** This rank's block indices for an epoch, in order. */
  epochOrder(epoch: number): Int32Array {
    checkInt(epoch, 'TokenBatchLoader: epoch', 0);
    return this.sampler.epochOrder(epoch);
  }

  /** The batch at a position: a pure function of (blocks, options, position). */
  batchAt(position: LoaderPosition): TokenBatch {
    checkInt(position.batch, 'TokenBatchLoader: batch', 0, this.batchesPerEpoch - 1);
    checkInt(position.epoch, 'TokenBatchLoader: epoch', 0);
    const indices = this.sampler.indices(position);
    const { rule, contextLength: T } = this;
    const seed = this.sampler.seed;
    return maskedBatch(this.blocks, T, indices, rule, (block) => mixSeed(MLM_SEED_STREAMS.mask, seed, position.epoch, block), { epoch: position.epoch, batch: position.batch });
  }

  /** Batches from `from` (default epoch 0 batch 0) on, epoch after epoch, forever (the trainer stops). */
  async *batches(from: LoaderPosition = { epoch: 0, batch: 0 }): AsyncGenerator<TokenBatch> {
    if (this.closed) throw new Error('TokenBatchLoader: batches() after close()');
    checkInt(from.epoch, 'TokenBatchLoader: from.epoch', 0);
    checkInt(from.batch, 'TokenBatchLoader: from.batch', 0, this.batchesPerEpoch - 1);
    for (let p: LoaderPosition = from; ; p = nextPosition(p, this.batchesPerEpoch)) {
      if (this.closed) return;
      yield this.batchAt(p);
    }
  }

  /** Ends batches(); there are no threads to stop, but the loader contract has it. */
  async close(): Promise<void> {
    this.closed = true;
  }
}

export interface EvalBatchOptions {
  batchSize: number;
  contextLength: number;
  masking: MaskingOptions;
  /** Picks the masks (default 0); the same seed gives the same masks at every evaluation. */
  seed?: number;
}

/** Held-out batches that can be iterated again at each evaluation, with the same masks every time. */
export interface EvalBatches extends Iterable<TokenBatch> {
  readonly batchCount: number;
  readonly blockCount: number;
}

/**
 * Held-out evaluation batches: every block once, in order, the last batch possibly smaller, masked
 * with fixed masks (from (seed, block), a stream of their own), so each evaluation scores the same
 * predictions and the numbers of a run are comparable over time. Batches are made as they are
 * iterated (none is kept), so a large held-out set costs no memory between evaluations.
 */
export function maskedEvalBatches(blocks: Int32Array, options: EvalBatchOptions): EvalBatches {
  const where = 'maskedEvalBatches';
  const T = checkInt(options.contextLength, `${where}: contextLength`, 1);
  const n = blockCount(blocks, T, where);
  const B = checkInt(options.batchSize, `${where}: batchSize`, 1);
  const seed = checkInt(options.seed ?? 0, `${where}: seed`, 0);
  const rule = new MaskingRule(options.masking, where);
  const batchCount = Math.ceil(n / B);
  return {
    batchCount,
    blockCount: n,
    *[Symbol.iterator]() {
      for (let b = 0; b < batchCount; b++) {
        const indices = Int32Array.from({ length: Math.min(B, n - b * B) }, (_, r) => b * B + r);
        yield maskedBatch(blocks, T, indices, rule, (block) => mixSeed(MLM_SEED_STREAMS.evalMask, seed, block), { epoch: 0, batch: b });
      }
    },
  };
}
