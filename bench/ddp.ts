// Data-parallel training speed: the tiny CLIP of configs/scenes-clip.yaml (its model and data, at
// its global batch) trained by 2 ranks x 1 thread each (mpirun, DataParallel) against 1 process x
// 2 threads, in the same run, the jobs alternated over --rounds. A figure is samples per second
// over the steps after --skip (the best round); beside the ratio, the share of the all-reduce
// time that was hidden behind backward: 1 - (time synchronize() waited) / (comm-thread seconds
// in MPI), over all steps of the best DDP round.
// A third job bounds what any data parallelism can reach on the machine: 2 independent processes
// x 1 thread, each training on half the global batch at the same time, with no communication at
// all (their samples per second added). On a machine whose cores share caches, two processes
// contend more than two threads of one, and DDP's ratio to that ceiling is what communication costs.
//   npm run bench -- ddp [--config configs/scenes-clip.yaml] [--steps 30] [--skip 5] [--rounds 2] [--threads 2] [--bucket-mb 25]
import { spawn, spawnSync } from 'node:child_process';
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

function result(command: string, argv: string[], status: number | null, stdout: string, stderr: string): WorkerResult {
  const line = stdout.split('\n').find((l) => l.startsWith('DDP_RESULT '));
  if (status !== 0 || !line) throw new Error(`bench ddp: ${command} ${argv.join(' ')} failed (exit ${status}):\n${stderr}`);
  return JSON.parse(line.slice('DDP_RESULT '.length)) as WorkerResult;
}

function runJob(argv: string[], command: string, env: Record<string, string>): WorkerResult {
  const run = spawnSync(command, argv, { encoding: 'utf8', timeout: 900_000, env: { ...process.env, ...env } });
  if (run.error) throw new Error(`bench ddp: ${command} did not run: ${run.error.message}`);
  return result(command, argv, run.status, run.stdout, run.stderr);
}

/** Several jobs at once; their results in order. */
function runTogether(jobs: { argv: string[]; command: string; env: Record<string, string> }[]): Promise<WorkerResult[]> {
  return Promise.all(jobs.map(({ argv, command, env }) => new Promise<WorkerResult>((resolve, reject) => {
    const child = spawn(command, argv, { env: { ...process.env, ...env } });
    let [stdout, stderr] = ['', ''];
    child.stdout.on('data', (d) => { stdout += d; });
    child.stderr.on('data', (d) => { stderr += d; });
    child.on('error', reject);
    child.on('exit', (code) => { try { resolve(result(command, argv, code, stdout, stderr)); } catch (e) { reject(e); } });
  })));
}

export async function run(args: string[]): Promise<object> {
  const configFile = path.resolve(ROOT, textFlag(args, '--config', 'configs/scenes-clip.yaml'));
  const steps = flag(args, '--steps', 30);
  const skip = flag(args, '--skip', 5);
  const rounds = flag(args, '--rounds', 2);
  const threads = flag(args, '--threads', 2);
  const bucketMB = flag(args, '--bucket-mb', 25);
  checkPositiveInts('ddp', { steps, skip, rounds, threads });
  if (!(bucketMB > 0)) throw new Error(`bench ddp: --bucket-mb must be a positive number, got ${bucketMB}`);
  if (skip >= steps) throw new Error(`bench ddp: --skip ${skip} leaves no step of --steps ${steps} to time`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'glimpse-bench-ddp-'));
  const config = YAML.parse(fs.readFileSync(configFile, 'utf8')) as Record<string, unknown>;
  const data = { ...(config.data as Record<string, unknown>), val: null };
  const globalBatch = config.batch_size as number;
  const write = (name: string, batch = globalBatch) => {
    const file = path.join(dir, `${name}.yaml`);
    fs.writeFileSync(file, YAML.stringify({
      ...config, data, steps, batch_size: batch, log_every: 1, eval: { every: 0 }, checkpoint: { every: 0, keep: 1 },
      distributed: { bucket_cap_mb: bucketMB }, out: path.join(dir, name),
    }));
    return file;
  };
  const root = process.getuid?.() === 0 ? ['--allow-run-as-root'] : [];
  const single: WorkerResult[] = [];
  const ddp: WorkerResult[] = [];
  const apart: number[] = [];
  const perRank = { GLIMPSE_NUM_THREADS: String(Math.max(1, threads / 2)) };
  try {
    for (let r = 0; r < rounds; r++) {
      single.push(runJob([WORKER, write(`single-${r}`), String(skip)], process.execPath, { GLIMPSE_NUM_THREADS: String(threads) }));
      ddp.push(runJob([...root, '-n', '2', process.execPath, WORKER, write(`ddp-${r}`), String(skip)], 'mpirun', perRank));
      const halves = await runTogether([0, 1].map((k) => ({
        argv: [WORKER, write(`apart-${r}-${k}`, globalBatch / 2), String(skip)], command: process.execPath, env: perRank,
      })));
      apart.push(halves.reduce((sum, h) => sum + h.samplesPerSecond, 0));
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
    globalBatch,
    bucketCapMB: bucketMB,
    steps, timedSteps: steps - skip, rounds,
    machine: { cores: os.availableParallelism(), cpu: os.cpus()[0]?.model },
    anchor: { what: `1 process x ${threads} threads`, samplesPerSecond: one.samplesPerSecond, rounds: single.map((r) => r.samplesPerSecond) },
    ddp: { what: `2 ranks x ${threads / 2} thread(s), DataParallel over MPI`, samplesPerSecond: two.samplesPerSecond, rounds: ddp.map((r) => r.samplesPerSecond) },
    ratio: two.samplesPerSecond / one.samplesPerSecond,
    target: 0.9,
    ceiling: {
      what: `2 independent processes x ${threads / 2} thread(s) on half the batch each, at once, no communication (samples/s added)`,
      samplesPerSecond: Math.max(...apart), rounds: apart,
      ofAnchor: Math.max(...apart) / one.samplesPerSecond,
      ddpOfCeiling: two.samplesPerSecond / Math.max(...apart),
    },
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
