// Data-parallel training speed: the tiny CLIP of configs/scenes-clip.yaml (its model and data, at
// its global batch) trained by 2 ranks x 1 thread each (mpirun, DataParallel) against 1 process x
// 2 threads, in the same run, the jobs alternated over --rounds. A figure is samples per second
// over the steps after --skip (the best round); beside the ratio, the share of the all-reduce
// time that was hidden behind backward: 1 - (time synchronize() waited) / (comm-thread seconds
// in MPI), over all steps of the best DDP round.
//   npm run bench -- ddp [--config configs/scenes-clip.yaml] [--steps 30] [--skip 5] [--rounds 2] [--threads 2]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import type { DataParallelStats } from '../src/dist/ddp.js';
import { checkPositiveInts, flag, textFlag } from './lib/timing.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const WORKER = path.join(HERE, 'workers', 'ddp_train.js');
const ROOT = path.resolve(HERE, '../..');

interface WorkerResult { samplesPerSecond: number; steps: number; gradientSync: DataParallelStats | null }

function runJob(argv: string[], command: string, env: Record<string, string>): WorkerResult {
  const run = spawnSync(command, argv, { encoding: 'utf8', timeout: 900_000, env: { ...process.env, ...env } });
  const line = run.stdout?.split('\n').find((l) => l.startsWith('DDP_RESULT '));
  if (run.status !== 0 || !line) throw new Error(`bench ddp: ${command} ${argv.join(' ')} failed (${run.error?.message ?? `exit ${run.status}`}):\n${run.stderr}`);
  return JSON.parse(line.slice('DDP_RESULT '.length)) as WorkerResult;
}

export async function run(args: string[]): Promise<object> {
  const configFile = path.resolve(ROOT, textFlag(args, '--config', 'configs/scenes-clip.yaml'));
  const steps = flag(args, '--steps', 30);
  const skip = flag(args, '--skip', 5);
  const rounds = flag(args, '--rounds', 2);
  const threads = flag(args, '--threads', 2);
  checkPositiveInts('ddp', { steps, skip, rounds, threads });
  if (skip >= steps) throw new Error(`bench ddp: --skip ${skip} leaves no step of --steps ${steps} to time`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glimpse-bench-ddp-'));
  const config = YAML.parse(fs.readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  const data = { ...(config.data as Record<string, unknown>), val: null };
  const write = (name: string) => {
    const file = path.join(dir, `${name}.yaml`);
    fs.writeFileSync(file, YAML.stringify({ ...config, data, steps, log_every: 1, eval: { every: 0 }, checkpoint: { every: 0, keep: 1 }, out: path.join(dir, name) }));
    return file;
  };
  const root = process.getuid?.() === 0 ? ['--allow-run-as-root'] : [];
  const single: WorkerResult[] = [];
  const ddp: WorkerResult[] = [];
  try {
    for (let r = 0; r < rounds; r++) {
      single.push(runJob([WORKER, write(`single-${r}`), String(skip)], process.execPath, { GLIMPSE_NUM_THREADS: String(threads) }));
      ddp.push(runJob([...root, '-n', '2', process.execPath, WORKER, write(`ddp-${r}`), String(skip)], 'mpirun', { GLIMPSE_NUM_THREADS: String(threads / 2) }));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const best = (rs: WorkerResult[]) => rs.reduce((a, b) => (b.samplesPerSecond > a.samplesPerSecond ? b : a));
  const [one, two] = [best(single), best(ddp)];
  const sync = two.gradientSync!;
  return {
    bench: 'ddp',
    config: path.relative(ROOT, configFile),
    globalBatch: config.batch_size,
    steps, timedSteps: steps - skip, rounds,
    machine: { cores: os.availableParallelism(), cpu: os.cpus()[0]?.model },
    anchor: { what: `1 process x ${threads} threads`, samplesPerSecond: one.samplesPerSecond, rounds: single.map((r) => r.samplesPerSecond) },
    ddp: { what: `2 ranks x ${threads / 2} thread(s), DataParallel over MPI`, samplesPerSecond: two.samplesPerSecond, rounds: ddp.map((r) => r.samplesPerSecond) },
    ratio: two.samplesPerSecond / one.samplesPerSecond,
    target: 0.9,
    allReduce: {
      buckets: sync.buckets / sync.steps,
      mbPerStep: sync.bytes / sync.steps / 1e6,
      secondsPerStep: sync.allReduceSeconds / sync.steps,
      exposedSecondsPerStep: sync.exposedSeconds / sync.steps,
      hiddenShare: sync.allReduceSeconds > 0 ? Math.max(0, 1 - sync.exposedSeconds / sync.allReduceSeconds) : null,
      hiddenTarget: 0.7,
    },
  };
}
