// Where a training step spends its time, kernel by kernel: every method of the native backend is
// wrapped with a timer, and one step's forward and backward are timed per kernel (name plus the
// argument that tells cases apart: the unary op, the GEMM's shape and layout...). The rest of each
// phase (autograd, views, allocation, GC) is reported as "outside kernels".
//   npm run bench -- profile [--preset tiny-clip] [--batch 64] [--threads 1] [--steps 3] [--top 40] [--torch] [--no-recycle] [--no-reclaim]
//   npm run bench -- profile --config configs/x.yaml [--threads 2] [--steps 3] [--top 40]
// --config profiles the step `glimpse train` runs for that config (its model, task, patch dropout,
// gradient clipping and AdamW groups, with any task-owned head) on one real batch of its training data, at its batch size.
// Figures are those of the step with the least total time (the least disturbed on a shared machine).
// Each step's CPU time (all of the process's threads, GC helpers included) is reported beside its
// wall time: on a loaded machine it is the steadier measure of the work a step costs. --torch runs
// the same step in PyTorch (scripts/dev/torch_train_anchor.py's model; OpenBLAS held to --threads,
// the intra-op pool to one thread) and reports its CPU and wall time the same way, with
// torch.profiler's top operators.
// --no-recycle runs backward without reusing consumed gradients' storages (src/tensor/recycle.ts);
// --no-reclaim skips the collection at each step's end (reclaimMemory, src/tensor/device.ts), whose
// time the optimizer phase includes.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { View } from '../src/tensor/backend.js';
import { type DType, bytesPerElement } from '../src/tensor/dtype.js';
import { getBackend, reclaimMemory } from '../src/tensor/device.js';
import { recycledAllocations, withoutRecycling } from '../src/tensor/recycle.js';
import { loadAddon } from '../src/tensor/backends/native/addon.js';
import { anchorThreadEnv, checkPositiveInts, flag, textFlag } from './lib/timing.js';
import { clipStep } from './lib/clip_step.js';
import { clipGradNorm } from '../src/optim/grad.js';
import { Generator } from '../src/tensor/random.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { loadConfig } from '../src/train/config.js';
import { isStreamSplit, isTextCorpus, makeLoader, openDatasets } from '../src/train/data.js';
import { buildTrainModel } from '../src/train/model_setup.js';
import { makeObjective } from '../src/train/objectives.js';
import { trainingOptimizer } from '../src/train/trainer.js';

const ANCHOR_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../scripts/dev');

// The anchor's step timed by wall and CPU clock, best of `steps` after a warm-up, then profiled once.
const TORCH_PROFILE = `
import json, sys, time
sys.path.insert(0, sys.argv[1])
import torch
import torch_train_anchor as anchor
threads, batch, steps, top = (int(a) for a in sys.argv[2:6])
torch.set_num_threads(threads)
torch.manual_seed(0)
model = anchor.TinyCLIP()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
g = torch.Generator().manual_seed(1)
pixels = torch.randn(batch, 3, 64, 64, generator=g)
ids = torch.randint(1, 1000, (batch, 32), generator=g)
def step():
    loss = model(pixels, ids)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.item()
step()
wall, cpu = [], []
for _ in range(steps):
    w, c = time.perf_counter(), time.process_time()
    step()
    wall.append(time.perf_counter() - w)
    cpu.append(time.process_time() - c)
with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
    step()
ops = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:top]
print(json.dumps({"torch": torch.__version__, "stepMs": min(wall) * 1e3, "cpuMs": min(cpu) * 1e3,
                  "ops": ["%8.2f ms %4dx  %s" % (e.self_cpu_time_total / 1e3, e.count, e.key) for e in ops]}))
`;

// PyTorch's intra-op pool at one thread, its BLAS at `threads`: its fastest configuration (see bench train).
function torchProfile(threads: number, batch: number, steps: number, top: number): object {
  const py = spawnSync('/usr/bin/python3', ['-c', TORCH_PROFILE, ANCHOR_DIR, '1', String(batch), String(steps), String(top)], {
    encoding: 'utf8', timeout: 600_000, maxBuffer: 1 << 22,
    env: { ...process.env, ...anchorThreadEnv(threads) },
  });
  if (py.error) return { error: `could not run /usr/bin/python3: ${py.error.message}` };
  if (py.status !== 0) return { error: (py.stderr || '').trim().split('\n').pop() };
  return JSON.parse(py.stdout.trim().split('\n').pop()!) as object;
}

type Phase = 'forward' | 'backward' | 'optimizer';
interface Entry { ms: number; calls: number }

/** One training step in its phases: the loss's forward pass, and the update after backward. */
interface ProfiledStep {
  name: string;
  batch: number;
  loss(): Tensor;
  zeroGrad(): void;
  update(): void;
}

async function presetStep(preset: string, batch: number, backend: ReturnType<typeof getBackend>): Promise<ProfiledStep> {
  const { model, optimizer, pixels, ids } = await clipStep(preset, batch, backend, 'bench profile');
  return { name: preset, batch, loss: () => model.forward(ids, pixels, null, { returnLoss: true }).loss!, zeroGrad: () => optimizer.zeroGrad(), update: () => optimizer.step() };
}

/** The step `glimpse train` runs for a config (no gradient accumulation, no locked tower), on its first batch. */
async function configStep(file: string): Promise<ProfiledStep> {
  const config = loadConfig(file);
  const datasets = await openDatasets(config);
  const trainSet = datasets.trainDataset;
  const setup = await buildTrainModel(config, {
    classNames: isTextCorpus(trainSet) || isStreamSplit(trainSet) ? undefined : trainSet.classNames,
    streams: isStreamSplit(trainSet) ? trainSet.set : undefined,
  });
  const task = await makeObjective(config.task, setup, { generator: new Generator(config.seed + 1), labelSmoothing: config.label_smoothing });
  const loader = makeLoader(trainSet, setup, config, { batchSize: config.batch_size, rank: 0, worldSize: 1 });
  const first = await loader.batches({ epoch: 0, batch: 0 }).next();
  await loader.close();
  if (first.done) throw new Error(`bench profile: ${config.data.train} gave no batch`);
  const { root, params, optimizer } = trainingOptimizer(setup, task, config);
  root.train();
  const ctx = {
    patchDropout: config.patch_dropout > 0 ? { ratio: config.patch_dropout, generator: new Generator(config.seed + 2) } : null,
    generator: new Generator(config.seed + 3),
  };
  return {
    name: file, batch: config.batch_size,
    loss: () => task.loss(first.value, ctx),
    zeroGrad: () => optimizer.zeroGrad(),
    update: () => {
      if (config.optim.grad_clip !== null) clipGradNorm(params, config.optim.grad_clip);
      optimizer.step();
    },
  };
}

const isView = (v: unknown): v is View => typeof v === 'object' && v !== null && 'strides' in v && 'shape' in v;
const dense = (v: View) => {
  let s = 1;
  for (let a = v.shape.length - 1; a >= 0; a--) {
    if (v.shape[a] !== 1 && v.strides[a] !== s) return false;
    s *= v.shape[a]!;
  }
  return true;
};

/** The case of a kernel call worth telling apart in the table. */
function label(name: string, args: unknown[]): string {
  if (name === 'matmul') {
    const [a, b] = args as View[];
    const r = a!.shape.length;
    const lay = (v: View) => (dense(v) ? 'n' : v.strides[v.shape.length - 2] === 1 ? 't' : 's');
    return `matmul ${a!.shape.slice(0, -2).join('x') || '-'} ${a!.shape[r - 2]}x${a!.shape[r - 1]}x${b!.shape[b!.shape.length - 1]} ${lay(a!)}${lay(b!)}`;
  }
  if (name === 'linear') {
    const [x, w, , act] = args as [View, View, View, string | null];
    return `linear ${x.shape.slice(0, -1).reduce((p, d) => p * d, 1)}x${x.shape[x.shape.length - 1]}->${w.shape[0]}${act ? ' +' + act : ''}`;
  }
  if (name === 'attention' || name === 'attentionGrad') {
    const a = args[0] as { q: View; k: View; causal: boolean };
    return `${name} ${a.q.shape.join('x')} k${a.k.shape[2]}${a.causal ? ' causal' : ''}`;
  }
  if (typeof args[0] === 'string') {
    const v = args.find(isView);
    return `${name} ${args[0]}${v ? ' ' + v.shape.join('x') : ''}`;
  }
  if (name === 'copy') {
    const src = args[1] as View;
    return `copy ${src!.shape.join('x')}${dense(src!) ? '' : ' strided'}`;
  }
  if (name === 'reduce' || name === 'softmax' || name === 'softmaxGrad' || name === 'layerNorm' || name === 'layerNormGrad' || name === 'addLayerNorm') {
    const v = args.find(isView);
    return `${name}${v ? ' ' + v.shape.join('x') : ''}`;
  }
  return name;
}

export async function run(args: string[]): Promise<object> {
  const preset = textFlag(args, '--preset', 'tiny-clip');
  const configFile = textFlag(args, '--config', '');
  const batch = flag(args, '--batch', 64);
  const threads = flag(args, '--threads', 1);
  const steps = flag(args, '--steps', 3);
  const top = flag(args, '--top', 40);
  const recycle = !args.includes('--no-recycle');
  const reclaim = !args.includes('--no-reclaim');
  checkPositiveInts('profile', { '--batch': batch, '--threads': threads, '--steps': steps });
  if (!Number.isInteger(top) || top < 0) throw new Error(`bench profile: --top must be a non-negative integer, got ${top}`);
  const addon = loadAddon();
  if (!addon) throw new Error('bench profile: the native addon is not built');
  if ((addon.numThreads!() as number) !== threads) addon.setNumThreads!(threads);
  const backend = getBackend('native');

  let phase: Phase = 'forward';
  let bytes: Record<Phase, number> = { forward: 0, backward: 0, optimizer: 0 };
  let table = new Map<string, Entry>();
  let depth = 0; // a kernel that falls back to super calls other wrapped methods: time the outer only
  const proto = Object.getPrototypeOf(backend) as Record<string, unknown>;
  const names = new Set<string>();
  for (let o: object | null = proto; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
    for (const n of Object.getOwnPropertyNames(o)) if (n !== 'constructor' && typeof (o as Record<string, unknown>)[n] === 'function') names.add(n);
  }
  const target = backend as unknown as Record<string, (...a: unknown[]) => unknown>;
  for (const n of names) {
    const fn = target[n]!;
    target[n] = function (this: unknown, ...a: unknown[]) {
      if (depth > 0) return fn.apply(this, a);
      depth++;
      const t0 = process.hrtime.bigint();
      try {
        return fn.apply(this, a);
      } finally {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        depth--;
        if (n === 'empty' || n === 'alloc') bytes[phase] += (a[1] as number) * bytesPerElement(a[0] as DType);
        const key = `${phase}|${label(n, a)}`;
        const e = table.get(key);
        if (e) { e.ms += ms; e.calls++; } else table.set(key, { ms, calls: 1 });
      }
    };
  }

  for (const f of ['--torch', '--preset', '--batch']) {
    if (configFile && args.includes(f)) throw new Error(`bench profile: ${f} is for the tiny-CLIP presets; --config takes the model and batch from the config`);
  }
  const step = configFile ? await configStep(configFile) : await presetStep(preset, batch, backend);

  let bestCpu = Infinity;
  let best: { total: number; phases: Record<Phase, number>; table: Map<string, Entry>; faults: number; bytes: Record<Phase, number>; reused: number } | null = null;
  for (let s = 0; s <= steps; s++) {
    table = new Map();
    bytes = { forward: 0, backward: 0, optimizer: 0 };
    const f0 = process.resourceUsage().minorPageFault;
    const c0 = process.cpuUsage();
    const t0 = process.hrtime.bigint();
    phase = 'forward';
    const loss = step.loss();
    const t1 = process.hrtime.bigint();
    phase = 'backward';
    step.zeroGrad();
    const reused0 = recycledAllocations();
    if (recycle) loss.backward();
    else withoutRecycling(() => loss.backward());
    const reused = recycledAllocations() - reused0;
    const t2 = process.hrtime.bigint();
    phase = 'optimizer';
    step.update();
    loss.item();
    if (reclaim) await reclaimMemory(); // as the trainer does at each step's end
    const t3 = process.hrtime.bigint();
    const faults = process.resourceUsage().minorPageFault - f0;
    const c1 = process.cpuUsage(c0);
    const cpu = (c1.user + c1.system) / 1e3;
    bestCpu = Math.min(bestCpu, s > 0 ? cpu : Infinity);
    const phases = { forward: Number(t1 - t0) / 1e6, backward: Number(t2 - t1) / 1e6, optimizer: Number(t3 - t2) / 1e6 };
    const total = phases.forward + phases.backward + phases.optimizer;
    if (s > 0 && (!best || total < best.total)) best = { total, phases, table, faults, bytes, reused };
  }
  const r2 = (x: number) => Math.round(x * 100) / 100;
  const result: Record<string, unknown> = { bench: 'profile', model: step.name, batch: step.batch, threads, stepMs: r2(best!.total),
    cpuMs: r2(bestCpu), minorPageFaults: best!.faults, recycledInBackward: best!.reused };
  for (const ph of ['forward', 'backward', 'optimizer'] as Phase[]) {
    const rows = [...best!.table].filter(([k]) => k.startsWith(ph + '|')).map(([k, e]) => ({ kernel: k.slice(ph.length + 1), ms: r2(e.ms), calls: e.calls }));
    rows.sort((a, b) => b.ms - a.ms);
    const inKernels = rows.reduce((s, r) => s + r.ms, 0);
    result[ph] = {
      ms: r2(best!.phases[ph]),
      allocatedMB: r2(best!.bytes[ph] / 2 ** 20),
      inKernelsMs: r2(inKernels),
      outsideKernelsMs: r2(best!.phases[ph] - inKernels),
      calls: rows.reduce((s, r) => s + r.calls, 0),
      kernels: rows.slice(0, top).map((r) => `${String(r.ms).padStart(8)} ms ${String(r.calls).padStart(4)}x  ${r.kernel}`),
    };
  }
  if (args.includes('--torch')) {
    const torch = torchProfile(threads, batch, steps, top) as { stepMs?: number; cpuMs?: number };
    result.torch = torch;
    if (torch.stepMs && torch.cpuMs) {
      result.glimpseOverTorch = { wall: r2(torch.stepMs / best!.total), cpu: r2(torch.cpuMs / bestCpu) };
    }
  }
  return result;
}
