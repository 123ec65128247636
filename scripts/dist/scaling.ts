// The cost model of data-parallel training beyond one machine (issue #19): predicted step time and
// scaling efficiency for N workers whose gradients are averaged by ring all-reduce in buckets that
// overlap backward, as Glimpse's DDP does.
//   npx tsc -p . && node dist/scripts/dist/scaling.js [--preset tiny-clip|vit-b16]
//     [--compute-s S] [--backward-share F] [--gradient-bytes B] [--bucket-mb 25] [--first-bucket-mb 1]
//     [--svg docs/results/scaling.svg] [--json out.json]
// Flags override a preset's figures; JSON goes to stdout (or --json), the plot to --svg. Without
// --preset or any workload flag, both presets are computed and plotted.
//
// The model, per step of one worker (weak scaling: each worker keeps its batch):
// - forward takes (1 − b)·C seconds, backward b·C (C: the measured forward + backward time);
// - the gradient of S bytes goes as buckets in reverse registration order, the first small; a
//   bucket is ready when backward has produced its bytes, at an even rate over backward;
// - one communication thread all-reduces the buckets one at a time, each as a ring all-reduce of
//   s bytes: 2(N−1)·α + 2(N−1)/N · s/β seconds (each worker sends and receives 2(N−1)/N · s bytes
//   in 2(N−1) messages);
// - the optimizer steps after the last bucket; that bucket is ready only when backward ends, so
//   at least its all-reduce is never hidden;
// - step(N) = forward + max(backward, end of the last all-reduce − start of backward); efficiency =
//   C / step(N), the throughput of N workers over N times one worker's.
// Left out: contention between communication and compute for memory bandwidth and cores, and
// network topology (a ring over a switched network whose links all run at β).
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export interface Network {
  name: string;
  /** Seconds per message: software and wire latency of one step of the ring. */
  alpha: number;
  /** Bytes per second one worker sends (and receives) at once. */
  beta: number;
}

export interface Workload {
  name: string;
  /** Forward + backward seconds of one worker's step, measured on one worker. */
  computeSeconds: number;
  /** Backward's share of computeSeconds, in (0, 1]. */
  backwardShare: number;
  gradientBytes: number;
  bucketBytes: number;
  firstBucketBytes: number;
  /** Where the figures come from. */
  source: string;
}

export interface StepPrediction {
  workers: number;
  stepSeconds: number;
  efficiency: number;
  /** All-reduce seconds in all, and those not hidden behind backward. */
  commSeconds: number;
  exposedCommSeconds: number;
}

const MB = 1 << 20;

/** 10 and 100 Gbit/s Ethernet. β is the line rate (TCP reaches less: pass --beta for a measured one). */
export const NETWORKS: readonly Network[] = [
  // Kernel TCP over 10 GbE: tens of µs per message through the stack and the switch.
  { name: '10 Gbit/s', alpha: 50e-6, beta: 10e9 / 8 },
  // 100 GbE with RDMA (RoCE) or a tuned stack: the low end of the 10–50 µs.
  { name: '100 Gbit/s', alpha: 10e-6, beta: 100e9 / 8 },
];

export const PRESETS: Record<string, Workload> = {
  'tiny-clip': {
    name: 'tiny CLIP (6.7 M parameters)',
    computeSeconds: 0.74,
    backwardShare: 0.5 / 0.74,
    gradientBytes: 6_715_393 * 4,
    bucketBytes: 25 * MB,
    firstBucketBytes: 1 * MB,
    source: 'Glimpse, batch 64 on 2 cores: forward 0.24 s, backward 0.50 s (npm run bench -- profile, docs/BENCHMARKS.md); float32 gradients',
  },
  'vit-b16': {
    name: 'ViT-B/16 (86 M parameters)',
    computeSeconds: 0.5,
    backwardShare: 2 / 3,
    gradientBytes: 86e6 * 4,
    bucketBytes: 25 * MB,
    firstBucketBytes: 1 * MB,
    source: 'a GPU-class worker: 0.5 s, about the image tower\'s share of a CLIP ViT-B/16 fp32 train step at batch 256 on one H100 (0.787 s, ../shared/ANCHORS.md); backward twice forward; float32 gradients',
  },
};

/** Seconds of one ring all-reduce of `bytes` over n workers. */
export function ringAllReduceSeconds(bytes: number, n: number, net: Network): number {
  if (!Number.isInteger(n) || n < 1) throw new Error(`ringAllReduceSeconds: workers must be a positive integer, got ${n}`);
  if (n === 1 || bytes === 0) return 0;
  return 2 * (n - 1) * net.alpha + ((2 * (n - 1)) / n) * (bytes / net.beta);
}

/** Bucket sizes in the order they are all-reduced: a small first one, then full ones, the rest last. */
export function bucketSizes(gradientBytes: number, bucketBytes: number, firstBucketBytes: number): number[] {
  if (!(bucketBytes > 0) || !(firstBucketBytes > 0)) throw new Error(`bucketSizes: bucket sizes must be positive, got ${bucketBytes} and ${firstBucketBytes}`);
  const sizes: number[] = [];
  let left = gradientBytes;
  for (let cap = firstBucketBytes; left > 0; cap = bucketBytes) {
    const s = Math.min(cap, left);
    sizes.push(s);
    left -= s;
  }
  return sizes;
}

/** The predicted step of a workload on n workers over a network. */
export function predictStep(w: Workload, n: number, net: Network): StepPrediction {
  if (!(w.computeSeconds > 0)) throw new Error(`predictStep: computeSeconds must be positive, got ${w.computeSeconds}`);
  if (!(w.backwardShare > 0 && w.backwardShare <= 1)) throw new Error(`predictStep: backwardShare must be in (0, 1], got ${w.backwardShare}`);
  if (!(w.gradientBytes >= 0)) throw new Error(`predictStep: gradientBytes must be ≥ 0, got ${w.gradientBytes}`);
  const backward = w.backwardShare * w.computeSeconds;
  const forward = w.computeSeconds - backward;
  // Times from the start of backward.
  let produced = 0;
  let commEnd = 0;
  let commSeconds = 0;
  for (const s of bucketSizes(w.gradientBytes, w.bucketBytes, w.firstBucketBytes)) {
    produced += s;
    const ready = backward * (produced / w.gradientBytes);
    const t = ringAllReduceSeconds(s, n, net);
    commEnd = Math.max(ready, commEnd) + t;
    commSeconds += t;
  }
  const stepSeconds = forward + Math.max(backward, commEnd);
  return {
    workers: n,
    stepSeconds,
    efficiency: w.computeSeconds / stepSeconds,
    commSeconds,
    exposedCommSeconds: stepSeconds - w.computeSeconds,
  };
}

/** 1, 2, 4, ..., up to max (a power of two). */
export function workerCounts(max: number): number[] {
  const out: number[] = [];
  for (let n = 1; n <= max; n *= 2) out.push(n);
  return out;
}

/** Published points drawn beside the model: Horovod's README (see docs/DISTRIBUTED.md). */
export interface Reference {
  label: string;
  workers: number;
  efficiency: number;
}

export const HOROVOD_POINTS: readonly Reference[] = [
  { label: 'Horovod Inception V3, ResNet-101 (128 GPUs)', workers: 128, efficiency: 0.9 },
  { label: 'Horovod VGG-16 (128 GPUs)', workers: 128, efficiency: 0.79 },
  { label: 'Horovod Inception V3, ResNet-101 (512 GPUs)', workers: 512, efficiency: 0.9 },
  { label: 'Horovod VGG-16 (512 GPUs)', workers: 512, efficiency: 0.68 },
];

export interface Curve {
  label: string;
  points: { workers: number; efficiency: number }[];
}

const COLORS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];
const escapeXml = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A line plot of efficiency against workers (log2 axis), with reference points as markers. */
export function scalingSvg(curves: Curve[], refs: readonly Reference[], title: string): string {
  const W = 720, H = 440, left = 60, right = 250, top = 40, bottom = 50;
  const plotW = W - left - right, plotH = H - top - bottom;
  const maxN = Math.max(2, ...curves.flatMap((c) => c.points.map((p) => p.workers)), ...refs.map((r) => r.workers));
  const x = (n: number) => left + (Math.log2(n) / Math.log2(maxN)) * plotW;
  const y = (e: number) => top + (1 - Math.max(0, Math.min(1, e))) * plotH;
  const f = (v: number) => v.toFixed(1);
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  out.push(`<text x="${left}" y="22" font-size="14">${escapeXml(title)}</text>`);
  for (let e = 0; e <= 1.0001; e += 0.2) {
    out.push(`<line x1="${left}" y1="${f(y(e))}" x2="${left + plotW}" y2="${f(y(e))}" stroke="#ddd"/>`);
    out.push(`<text x="${left - 6}" y="${f(y(e) + 4)}" text-anchor="end">${e.toFixed(1)}</text>`);
  }
  for (const n of workerCounts(maxN)) {
    out.push(`<line x1="${f(x(n))}" y1="${top}" x2="${f(x(n))}" y2="${top + plotH}" stroke="#eee"/>`);
    out.push(`<text x="${f(x(n))}" y="${top + plotH + 16}" text-anchor="middle">${n}</text>`);
  }
  out.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${plotH}" fill="none" stroke="#444"/>`);
  out.push(`<text x="${left + plotW / 2}" y="${H - 12}" text-anchor="middle">workers</text>`);
  out.push(`<text transform="translate(16 ${top + plotH / 2}) rotate(-90)" text-anchor="middle">scaling efficiency</text>`);
  curves.forEach((c, i) => {
    const color = COLORS[i % COLORS.length]!;
    const d = c.points.map((p, k) => `${k ? 'L' : 'M'}${f(x(p.workers))} ${f(y(p.efficiency))}`).join(' ');
    out.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"${i % 2 ? ' stroke-dasharray="6 3"' : ''}/>`);
    const ly = top + 10 + i * 18;
    out.push(`<line x1="${left + plotW + 12}" y1="${ly}" x2="${left + plotW + 36}" y2="${ly}" stroke="${color}" stroke-width="2"${i % 2 ? ' stroke-dasharray="6 3"' : ''}/>`);
    out.push(`<text x="${left + plotW + 42}" y="${ly + 4}">${escapeXml(c.label)}</text>`);
  });
  refs.forEach((r, i) => {
    const cx = x(r.workers), cy = y(r.efficiency);
    out.push(`<path d="M${f(cx)} ${f(cy - 6)} L${f(cx + 6)} ${f(cy)} L${f(cx)} ${f(cy + 6)} L${f(cx - 6)} ${f(cy)} Z" fill="black"/>`);
    out.push(`<text x="${f(cx - 9)}" y="${f(cy + 4)}" text-anchor="end" font-size="10">${Math.round(r.efficiency * 100)}%</text>`);
    if (i === 0) {
      const ly = top + 10 + curves.length * 18;
      out.push(`<path d="M${left + plotW + 24} ${ly - 5} L${left + plotW + 29} ${ly} L${left + plotW + 24} ${ly + 5} L${left + plotW + 19} ${ly} Z" fill="black"/>`);
      out.push(`<text x="${left + plotW + 42}" y="${ly + 4}">Horovod, published (GPUs)</text>`);
    }
  });
  out.push('</svg>');
  return out.join('\n') + '\n';
}

function numberFlag(args: string[], name: string): number | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const v = Number(args[i + 1]);
  if (i + 1 >= args.length || !Number.isFinite(v)) throw new Error(`scaling: ${name} needs a number, got '${args[i + 1] ?? ''}'`);
  return v;
}

function textFlag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  if (i + 1 >= args.length) throw new Error(`scaling: ${name} needs a value`);
  return args[i + 1];
}

/** The workloads the command line asks for: presets, with any flag overriding their figures. */
export function workloadsFromArgs(args: string[]): Workload[] {
  const preset = textFlag(args, '--preset');
  if (preset !== undefined && !PRESETS[preset]) throw new Error(`scaling: unknown --preset '${preset}' (known: ${Object.keys(PRESETS).join(', ')})`);
  const overrides: Partial<Workload> = {};
  const set = <K extends keyof Workload>(k: K, v: Workload[K] | undefined) => {
    if (v !== undefined) overrides[k] = v;
  };
  set('computeSeconds', numberFlag(args, '--compute-s'));
  set('backwardShare', numberFlag(args, '--backward-share'));
  set('gradientBytes', numberFlag(args, '--gradient-bytes'));
  const bucketMb = numberFlag(args, '--bucket-mb');
  const firstMb = numberFlag(args, '--first-bucket-mb');
  set('bucketBytes', bucketMb === undefined ? undefined : bucketMb * MB);
  set('firstBucketBytes', firstMb === undefined ? undefined : firstMb * MB);
  const names = preset !== undefined ? [preset] : Object.keys(overrides).length ? ['tiny-clip'] : Object.keys(PRESETS);
  return names.map((n) => {
    const custom = Object.keys(overrides).length > 0;
    return { ...PRESETS[n]!, ...overrides, ...(custom ? { name: `${PRESETS[n]!.name}, figures from flags`, source: `${PRESETS[n]!.source}; overridden by flags` } : {}) };
  });
}

/** The networks the command line asks for: both defaults, or one from --alpha-us and --gbit. */
export function networksFromArgs(args: string[]): Network[] {
  const alphaUs = numberFlag(args, '--alpha-us');
  const gbit = numberFlag(args, '--gbit');
  if (alphaUs === undefined && gbit === undefined) return [...NETWORKS];
  if (alphaUs === undefined || gbit === undefined) throw new Error('scaling: give --alpha-us and --gbit together');
  if (!(alphaUs >= 0) || !(gbit > 0)) throw new Error(`scaling: --alpha-us must be ≥ 0 and --gbit > 0, got ${alphaUs} and ${gbit}`);
  return [{ name: `${gbit} Gbit/s`, alpha: alphaUs * 1e-6, beta: (gbit * 1e9) / 8 }];
}

function main(args: string[]): void {
  const workloads = workloadsFromArgs(args);
  const networks = networksFromArgs(args);
  const maxWorkers = numberFlag(args, '--max-workers') ?? 512;
  const counts = workerCounts(maxWorkers);
  const r4 = (v: number) => Math.round(v * 1e4) / 1e4;
  const results = workloads.flatMap((w) =>
    networks.map((net) => ({
      workload: w.name,
      network: { name: net.name, alphaUs: net.alpha * 1e6, betaGBps: net.beta / 1e9 },
      predictions: counts.map((n) => {
        const p = predictStep(w, n, net);
        return { workers: n, stepSeconds: r4(p.stepSeconds), efficiency: r4(p.efficiency), commSeconds: r4(p.commSeconds), exposedCommSeconds: r4(p.exposedCommSeconds) };
      }),
    })),
  );
  const report = {
    model: 'ring all-reduce of 2(N−1)/N·S bytes per worker in buckets overlapping backward; t = 2(N−1)·α + 2(N−1)/N·s/β per bucket; efficiency = compute / step',
    workloads: workloads.map((w) => ({ ...w, buckets: bucketSizes(w.gradientBytes, w.bucketBytes, w.firstBucketBytes).length })),
    results,
    horovodPublished: HOROVOD_POINTS,
  };
  const json = JSON.stringify(report, null, 2) + '\n';
  const jsonPath = textFlag(args, '--json');
  if (jsonPath) writeFileSync(jsonPath, json);
  else process.stdout.write(json);
  const svgPath = textFlag(args, '--svg');
  if (svgPath) {
    const curves = results.map((r) => ({ label: `${r.workload.replace(/ \(.*\)/, '')}, ${r.network.name}`, points: r.predictions.map((p) => ({ workers: p.workers, efficiency: p.efficiency })) }));
    mkdirSync(path.dirname(svgPath), { recursive: true });
    writeFileSync(svgPath, scalingSvg(curves, HOROVOD_POINTS, 'Predicted scaling efficiency, ring all-reduce overlapped with backward'));
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main(process.argv.slice(2));
