// Evaluation shared by the ranks of a job: of `count` units (samples, texts, batches), each rank
// takes a contiguous share, computes one row per unit, and every rank gathers every rank's rows in
// rank order, which is unit order. The metrics are then computed, on every rank, from the same
// arrays one process would have: only the forward passes are split.
import type { Communicator } from '../dist/communicator.js';
import { allGatherJSON } from '../dist/gather_json.js';
import { shareRows } from '../dist/shares.js';
import { allocHost, type TypedArray } from '../tensor/dtype.js';
import { type Tensor, tensor } from '../tensor/tensor.js';

/** The ranks that share an evaluation; null or undefined for one process on its own. */
export type EvalRanks = Communicator | null | undefined;

/** Whether `ranks` is a job of several ranks (a world of one shares nothing). */
export function isShared(ranks: EvalRanks): ranks is Communicator {
  return !!ranks && ranks.worldSize > 1;
}

/** Whether this process writes an evaluation's files and prints its results: rank 0, or a process on its own. */
export function isReportingRank(ranks: EvalRanks): boolean {
  return !ranks || ranks.rank === 0;
}

/**
 * This rank's units of `count`: [start, end), contiguous, as evenly as it goes (shareRows: the
 * first count mod worldSize ranks take one more), so a rank's share may be empty.
 */
export function shardRange(count: number, ranks: EvalRanks): { start: number; end: number } {
  if (!isShared(ranks)) return { start: 0, end: count };
  const shares = shareRows(count, ranks.worldSize);
  let start = 0;
  for (let r = 0; r < ranks.rank; r++) start += shares[r]!;
  return { start, end: start + shares[ranks.rank]! };
}

type RowDType = 'float32' | 'float64' | 'int32';

/**
 * Every rank's rows, [count, width] in unit order, from this rank's rows [share, width] (null
 * where its share is empty, so that a rank without units need not know the width). Each rank
 * sends its rows flat, and the width is count's share of the whole.
 */
export async function gatherRows(local: Tensor | null, count: number, ranks: EvalRanks, dtype: RowDType = 'float32'): Promise<Tensor> {
  if (!isShared(ranks)) {
    if (!local || local.shape[0] !== count) throw new Error(`gatherRows: ${local ? local.shape[0] : 0} rows computed, ${count} expected`);
    return local;
  }
  if (local && local.ndim !== 2) throw new Error(`gatherRows: rows must be [units, width], got [${local.shape}]`);
  const { start, end } = shardRange(count, ranks);
  if ((local?.shape[0] ?? 0) !== end - start) throw new Error(`gatherRows: rank ${ranks.rank} computed ${local?.shape[0] ?? 0} rows for its ${end - start} units`);
  const flat = local ? hostArray(local, dtype) : allocHost(dtype, 0);
  const parts = await ranks.allGather(tensor(flat, { dtype, shape: [flat.length] }));
  const total = parts.reduce((a, p) => a + p.size, 0);
  const width = count === 0 ? 0 : total / count;
  if (!Number.isInteger(width)) throw new Error(`gatherRows: the ranks sent ${total} values for ${count} units; the ranks' rows differ in width`);
  const out = allocHost(dtype, total);
  let at = 0;
  for (const p of parts) {
    out.set(p.data() as never, at);
    at += p.size;
  }
  return tensor(out, { dtype, shape: [count, width] });
}

/** A tensor's elements as a host array of `dtype`. */
function hostArray(t: Tensor, dtype: RowDType): TypedArray {
  const data = t.data();
  if (t.dtype === dtype) return data;
  const out = allocHost(dtype, data.length);
  for (let i = 0; i < data.length; i++) (out as Float64Array)[i] = Number(data[i]);
  return out;
}

/** Every rank's items (anything JSON holds) in rank order: the items of all units, from this rank's. */
export async function gatherItems<T>(local: readonly T[], ranks: EvalRanks): Promise<T[]> {
  if (!isShared(ranks)) return [...local];
  return (await allGatherJSON(ranks, local)).flat() as T[];
}
