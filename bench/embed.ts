// CLIP image embeddings per second (ViT-B/32 by default, 224 px, random weights) against
// onnxruntime-node and PyTorch running the same weights on the same machine, in the same run.
//   npm run bench -- embed [--model ViT-B-32] [--batch 16] [--threads 2] [--rounds 2] [--cpu] [--json]
// Without --batch, batches 16 and 1. Anchors (dev only, never project dependencies):
//   - onnxruntime-node: GLIMPSE_ORT_DIR names a folder whose node_modules holds it; the model is
//     the vision tower exported from these weights by scripts/dev/export_clip_vision_onnx.py;
//   - PyTorch: /usr/bin/python3 with torch (the same script, the same plain-torch module).
// The export script also checks that PyTorch reproduces Glimpse's features, and the bench checks
// onnxruntime's against Glimpse's. An anchor that cannot run is reported as null with the reason.
// Glimpse is first timed alone (a figure per batch: the best round's median), which also gives the
// peak resident memory before any anchor work (the weights' export included). With onnxruntime,
// each round then alternates single calls, Glimpse and onnxruntime in turn (which goes first
// alternates too), for about --seconds per batch: on a shared machine the load drifts within
// seconds, and two calls side by side see about the same load. The ratio is the median over all
// pairs of the per-pair ratio, with its quartiles; the images/s beside it are the medians of each
// side's paired calls. With --cpu (and --threads 1) every call is timed by the process's CPU time
// instead of the wall clock: on a machine shared with other work, that is what a call costs, while
// the wall clock also counts the time the call waited for a core.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSafetensors, type TensorToWrite } from '../src/io/safetensors.js';
import { createModel } from '../src/models/registry.js';
import type { CLIPModel } from '../src/models/clip.js';
import { noGrad } from '../src/tensor/autograd.js';
import { getBackend } from '../src/tensor/device.js';
import { loadAddon } from '../src/tensor/backends/native/addon.js';
import { Generator, randn } from '../src/tensor/random.js';
import { tensor } from '../src/tensor/tensor.js';
import { anchorThreadEnv, flag, textFlag } from './lib/timing.js';

const EXPORT_SCRIPT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../scripts/dev/export_clip_vision_onnx.py');
const CHECK_BATCH = 2;
// Activations of one batch, no grad, in 768-wide token tensors [B, T, D] alive at once inside a
// block at its peak: the input and residual (2), layer-norm output (1), q, k, v and their
// head-split copies (6), attention scores B x heads x T x T (~1 at T = 50, 12 heads), attention
// output and projection (2), MLP hidden and its activation (4 + 4), rounded up to 24 for the
// allocator's slack. Plus the pixels.
const TOKEN_TENSORS_LIVE = 24;
const PAUSE_MS = 30;

interface Ort {
  InferenceSession: { create(file: string, opts: object): Promise<OrtSession> };
  Tensor: new (type: 'float32', data: Float32Array, dims: number[]) => unknown;
  env: { versions?: { common?: string } };
}
interface OrtSession {
  inputNames: readonly string[];
  outputNames: readonly string[];
  run(feeds: Record<string, unknown>): Promise<Record<string, { data: Float32Array }>>;
  release(): Promise<void>;
}

function loadOrt(): Ort | string {
  const dir = process.env.GLIMPSE_ORT_DIR;
  if (!dir) return 'GLIMPSE_ORT_DIR is not set (a folder whose node_modules has onnxruntime-node; see docs/BENCHMARKS.md)';
  try {
    return createRequire(path.join(path.resolve(dir), 'node_modules', 'noop.js'))('onnxruntime-node') as Ort;
  } catch (e) {
    return `onnxruntime-node not loadable from ${dir}: ${(e as Error).message.split('\n')[0]}`;
  }
}

/** The q-quantile (0..1) of xs, by linear interpolation between order statistics. */
function quantile(xs: number[], q: number): number {
  const v = [...xs].sort((a, b) => a - b);
  const at = (v.length - 1) * q;
  const lo = Math.floor(at);
  return lo + 1 < v.length ? v[lo]! + (at - lo) * (v[lo + 1]! - v[lo]!) : v[lo]!;
}

/**
 * Seconds of one call of fn, after a pause: a thread pool keeps spinning for a while after its
 * work (onnxruntime's and ours), and one side's spinning threads would take the cores the other
 * side's call needs.
 */
async function seconds(fn: () => unknown): Promise<number> {
  await new Promise((resolve) => setTimeout(resolve, PAUSE_MS));
  const t0 = now();
  await fn();
  return now() - t0;
}

const wallClock = () => performance.now() / 1e3;
/** User + system seconds of every thread of the process (the addon's and onnxruntime's included). */
const cpuClock = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};
/** The clock calls are timed by: the wall clock, or the process's CPU time with --cpu. */
let now = wallClock;

/** Median seconds of fn over enough calls to fill ~seconds (at least 3), after one warm-up. */
async function medianSeconds(fn: () => unknown, seconds: number): Promise<number> {
  let t0 = now();
  await fn();
  const once = now() - t0;
  const n = Math.max(3, Math.min(20, Math.round(seconds / Math.max(once, 1e-6))));
  const times: number[] = [];
  for (let i = 0; i < n; i++) {
    t0 = now();
    await fn();
    times.push(now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(n / 2)]!;
}

function maxAbs(a: Float32Array): number {
  let m = 0;
  for (const x of a) m = Math.max(m, Math.abs(x));
  return m;
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

export async function run(args: string[]): Promise<object> {
  const modelName = textFlag(args, '--model', 'ViT-B-32');
  const batches = args.includes('--batch') ? [flag(args, '--batch', 16)] : [16, 1];
  const threads = flag(args, '--threads', 2);
  const rounds = flag(args, '--rounds', 2);
  const secondsPerFigure = flag(args, '--seconds', 3);
  const cpuTime = args.includes('--cpu');
  // Other threads' CPU time would count too: a pool's workers spin for a while after their work.
  if (cpuTime && threads !== 1) throw new Error('bench embed: --cpu times calls by the process\'s CPU time, which needs --threads 1');
  now = cpuTime ? cpuClock : wallClock;
  const addon = loadAddon();
  if (!addon) throw new Error('bench embed: the native addon is not built');
  if ((addon.numThreads!() as number) !== threads) addon.setNumThreads!(threads);
  const backend = getBackend('native');

  const model = (await createModel(modelName, { backend, init: 'random' })) as CLIPModel;
  if (typeof model.getImageFeatures !== 'function') throw new Error(`bench embed: ${modelName} has no getImageFeatures`);
  model.eval();
  const vc = model.config.visionConfig;
  const size = vc.imageSize;
  const tokens = vc.gridSize * vc.gridSize + 1;
  const state = model.stateDict();
  const visionKeys = Object.keys(state).filter((k) => k.startsWith('vision_model.') || k.startsWith('visual_projection.'));
  const weightBytes = Object.values(state).reduce((s, t) => s + t.size * 4, 0);
  const visionWeightBytes = visionKeys.reduce((s, k) => s + state[k]!.size * 4, 0);

  const g = new Generator(1234);
  const pixelsOf = (b: number) => randn([b, vc.numChannels, size, size], { generator: g, backend });
  const embed = (px: ReturnType<typeof pixelsOf>) => noGrad(() => model.getImageFeatures(px));
  const checkPixels = pixelsOf(CHECK_BATCH);
  const checkFeatures = embed(checkPixels).data() as Float32Array;
  // The same images one at a time: a batch of 1 takes other matmul paths (few rows) than a batch of 2.
  const perImage = checkPixels.size / CHECK_BATCH;
  const oneByOne = new Float32Array(checkFeatures.length);
  for (let i = 0; i < CHECK_BATCH; i++) {
    const px = tensor((checkPixels.data() as Float32Array).subarray(i * perImage, (i + 1) * perImage),
      { shape: [1, ...checkPixels.shape.slice(1)], backend });
    oneByOne.set(embed(px).data() as Float32Array, i * (checkFeatures.length / CHECK_BATCH));
  }
  const oneByOneDiff = maxAbsDiff(oneByOne, checkFeatures);
  const inputs = new Map(batches.map((b) => [b, pixelsOf(b)]));

  const glimpse = new Map(batches.map((b) => [b, 0]));
  let rssSampled = 0;
  let sampling = true; // the first round only: later ones share the process with onnxruntime
  const timeGlimpse = async () => {
    for (const b of batches) {
      const px = inputs.get(b)!;
      const s = await medianSeconds(() => {
        embed(px).dispose();
        if (sampling) rssSampled = Math.max(rssSampled, process.memoryUsage().rss);
      }, secondsPerFigure);
      glimpse.set(b, Math.max(glimpse.get(b)!, b / s));
    }
  };
  await timeGlimpse();
  sampling = false;
  // The process's peak so far, model creation included: an upper bound on the timing's own peak.
  const peakRss = process.resourceUsage().maxRSS * 1024;

  // The anchors' model: these weights, written for the export script (outside the RSS figure).
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'glimpse-bench-embed-'));
  let torchRes: { torch: string; blas: string; threads: number; maxAbsDiff: number; maxAbsRef: number; imagesPerSecond: Record<string, number> } | null = null;
  let torchNote: string | null = null;
  let ortNote: string | null = null;
  // Per batch, the seconds of each paired call: Glimpse's and onnxruntime's, index by index.
  const paired = new Map(batches.map((b) => [b, { glimpse: [] as number[], ort: [] as number[] }]));
  let ortDiff: number | null = null;
  let ortVersion: string | null = null;
  try {
    const weightsFile = path.join(tmp, 'vision.safetensors');
    const toWrite: Record<string, TensorToWrite> = {};
    for (const k of visionKeys) toWrite[k] = { shape: state[k]!.shape, data: state[k]!.data() };
    writeSafetensors(weightsFile, toWrite);
    const checkFile = path.join(tmp, 'check.safetensors');
    writeSafetensors(checkFile, {
      pixels: { shape: checkPixels.shape, data: checkPixels.data() },
      features: { shape: [CHECK_BATCH, checkFeatures.length / CHECK_BATCH], data: checkFeatures },
    });
    const onnxFile = path.join(tmp, 'vision.onnx');
    const py = spawnSync('/usr/bin/python3', [EXPORT_SCRIPT, '--weights', weightsFile, '--heads', String(vc.numAttentionHeads),
      '--eps', String(vc.layerNormEps), '--threads', String(threads), '--check', checkFile, '--onnx', onnxFile,
      '--time', batches.join(',')], { encoding: 'utf8', timeout: 300_000, maxBuffer: 1 << 24, env: { ...process.env, ...anchorThreadEnv(threads) } });
    if (py.error) torchNote = `could not run /usr/bin/python3: ${py.error.message}`;
    else if (py.status !== 0) torchNote = `PyTorch anchor failed: ${(py.stderr || '').trim().split('\n').pop()}`;
    else torchRes = JSON.parse(py.stdout.trim().split('\n').pop()!);

    const ort = loadOrt();
    if (typeof ort === 'string') ortNote = ort;
    else if (!fs.existsSync(onnxFile)) ortNote = `no ONNX model: the export needs PyTorch (${torchNote})`;
    else {
      ortVersion = ort.env.versions?.common ?? null;
      const session = await ort.InferenceSession.create(onnxFile, {
        intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential',
      });
      const feed = (px: ReturnType<typeof pixelsOf>) => ({ [session.inputNames[0]!]: new ort.Tensor('float32', px.data() as Float32Array, [...px.shape]) });
      const out = await session.run(feed(checkPixels));
      ortDiff = maxAbsDiff(out[session.outputNames[0]!]!.data, checkFeatures);
      for (let r = 0; r < rounds; r++) {
        for (const b of batches) {
          const px = inputs.get(b)!;
          const f = feed(px);
          const runGlimpse = () => embed(px).dispose();
          const runOrt = () => session.run(f);
          await seconds(runOrt); // warm-up after the other batch size
          const p = paired.get(b)!;
          const t0 = process.hrtime.bigint();
          for (let i = 0; i < 3 || Number(process.hrtime.bigint() - t0) / 1e9 < secondsPerFigure; i++) {
            if (i % 2 === 0) {
              p.glimpse.push(await seconds(runGlimpse));
              p.ort.push(await seconds(runOrt));
            } else {
              p.ort.push(await seconds(runOrt));
              p.glimpse.push(await seconds(runGlimpse));
            }
          }
        }
      }
      await session.release();
    }
    if (ortNote !== null) for (let r = 1; r < rounds; r++) await timeGlimpse();
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  const activationBytes = (b: number) => b * vc.numChannels * size * size * 4 + TOKEN_TENSORS_LIVE * b * tokens * vc.hiddenSize * 4;
  const bMax = Math.max(...batches);
  const memoryBudget = 2 * weightBytes + activationBytes(bMax);
  const ref = maxAbs(checkFeatures);
  return {
    bench: 'embed',
    model: modelName,
    unit: 'images/s (float32; glimpseAlone: best round\'s median; glimpse and ort: medians of the paired calls)',
    imageSize: size,
    threads,
    rounds,
    clock: cpuTime ? 'process CPU time' : 'wall clock',
    avx2: addon.hasAvx2Fma!() as boolean,
    avx512f: addon.hasAvx512f!() as boolean,
    anchors: {
      ort: ortNote === null ? `onnxruntime-node ${ortVersion}, intraOpNumThreads ${threads}, graphOptimizationLevel all` : null,
      ortNote: ortNote ?? undefined,
      torch: torchRes ? `PyTorch ${torchRes.torch} (${torchRes.blas}), set_num_threads(${threads}), no_grad` : null,
      torchNote: torchNote ?? undefined,
    },
    batches: batches.map((b) => {
      const alone = glimpse.get(b)!;
      const p = paired.get(b)!;
      const withOrt = p.ort.length > 0;
      const ratios = p.ort.map((t, i) => t / p.glimpse[i]!);
      const ours = withOrt ? b / quantile(p.glimpse, 0.5) : alone;
      const t = torchRes ? torchRes.imagesPerSecond[String(b)] ?? null : null;
      return {
        batch: b,
        glimpse: r3(ours),
        glimpseAlone: r3(alone),
        ort: withOrt ? r3(b / quantile(p.ort, 0.5)) : null,
        torch: t === null ? null : r3(t),
        glimpseOverOrt: withOrt ? r3(quantile(ratios, 0.5)) : null,
        glimpseOverOrtQuartiles: withOrt ? [r3(quantile(ratios, 0.25)), r3(quantile(ratios, 0.75))] : null,
        pairs: p.ort.length,
        glimpseOverTorch: t ? r3(alone / t) : null,
      };
    }),
    check: {
      batch: CHECK_BATCH,
      maxAbsFeature: ref,
      ortMaxAbsDiff: ortDiff,
      ortRelDiff: ortDiff === null ? null : ortDiff / ref,
      torchMaxAbsDiff: torchRes?.maxAbsDiff ?? null,
      batch1MaxAbsDiff: oneByOneDiff,
      pass: oneByOneDiff / ref < 1e-3 && (ortDiff === null || ortDiff / ref < 1e-3),
    },
    memory: {
      peakRssMb: r3(peakRss / 2 ** 20),
      rssAfterCallsMaxMb: r3(rssSampled / 2 ** 20),
      weightsMb: r3(weightBytes / 2 ** 20),
      visionWeightsMb: r3(visionWeightBytes / 2 ** 20),
      activationsMb: r3(activationBytes(bMax) / 2 ** 20),
      budgetMb: r3(memoryBudget / 2 ** 20),
      estimate: `2 x all weights (the text tower too: createModel builds both) + pixels + ${TOKEN_TENSORS_LIVE} x B x ${tokens} x ${vc.hiddenSize} x 4 bytes at B = ${bMax}`,
      pass: peakRss <= memoryBudget,
    },
  };
}
