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
