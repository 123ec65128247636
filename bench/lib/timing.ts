// Timing helpers shared by the benchmarks.

/** Median seconds per call of fn over `repeats` timed runs of `inner` calls each, after warm-up. */
export function timeIt(fn: () => void, opts: { inner?: number; repeats?: number; warmup?: number } = {}): number {
  const inner = opts.inner ?? 1;
  const repeats = opts.repeats ?? 5;
  for (let i = 0; i < (opts.warmup ?? 1); i++) fn();
  const times: number[] = [];
  for (let r = 0; r < repeats; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < inner; i++) fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e9 / inner);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

/** The number after `name` in args (as `--threads 2`), or dflt. */
export function flag(args: string[], name: string, dflt: number): number {
  return Number(textFlag(args, name, String(dflt)));
}

/** The word after `name` in args (as `--preset tiny-clip`), or dflt. */
export function textFlag(args: string[], name: string, dflt: string): string {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1]! : dflt;
}

/** Throws, naming the bench and the flag, unless every value is a positive integer. */
export function checkPositiveInts(bench: string, values: Record<string, number>): void {
  for (const [name, v] of Object.entries(values)) {
    if (!Number.isInteger(v) || v < 1) throw new Error(`bench ${bench}: ${name} must be a positive integer, got ${v}`);
  }
}

/**
 * Best seconds per call of each function over `rounds` rounds that time every function in turn
 * (each for ~40 ms): on a shared machine the load drifts, and interleaving gives every kernel and
 * the copy the same conditions, while the best round is the one least disturbed.
 */
export function timeInterleaved(fns: (() => void)[], rounds: number): number[] {
  const inner = fns.map((fn) => {
    fn(); // warm-up
    const t0 = process.hrtime.bigint();
    fn();
    const once = Number(process.hrtime.bigint() - t0) / 1e9;
    return Math.max(1, Math.round(0.04 / Math.max(once, 1e-6)));
  });
  const best = fns.map(() => Infinity);
  for (let r = 0; r < rounds; r++) {
    fns.forEach((fn, k) => {
      best[k] = Math.min(best[k]!, timeIt(fn, { inner: inner[k], repeats: 1, warmup: 0 }));
    });
  }
  return best;
}

/** GB/s of each kernel, and for all but the 'copy' entry its fraction of the copy's bandwidth. */
export function ofCopy(gbps: Record<string, number>): Record<string, { GBps: number; ofCopy?: number }> {
  const copy = gbps.copy;
  if (copy === undefined) throw new Error("bench: a bandwidth report needs a 'copy' entry");
  const out: Record<string, { GBps: number; ofCopy?: number }> = {};
  for (const [name, v] of Object.entries(gbps)) {
    out[name] = name === 'copy' ? { GBps: +v.toFixed(2) } : { GBps: +v.toFixed(2), ofCopy: +(v / copy).toFixed(3) };
  }
  return out;
}

/**
 * A Python anchor's thread count, for every pool it may use. torch.set_num_threads sets OpenMP's
 * only: Debian's torch calls a pthreads OpenBLAS, which starts one thread per core whatever
 * PyTorch was told, so a "1-thread" anchor ran its GEMMs, most of its time, on 2 cores.
 */
export function anchorThreadEnv(threads: number): Record<string, string> {
  const n = String(threads);
  return { OMP_NUM_THREADS: n, OPENBLAS_NUM_THREADS: n, MKL_NUM_THREADS: n };
}

/** Forward FLOPs of `layers` pre-norm transformer blocks over `tokens` tokens, per sample. */
export function blocksFlops(tokens: number, width: number, mlp: number, layers: number): number {
  const projections = 4 * width * width + 2 * width * mlp; // q, k, v, out; MLP up and down
  const attention = 2 * tokens * width; // scores and the weighted sum of values
  return 2 * layers * tokens * (projections + attention);
}
