// Bus bandwidth of MPI all-reduce (float32 sum, in place) through Glimpse's communicator
// (src/dist, mpiCommunicator) against the same MPI driven by mpi4py, in the same run, with the
// same mpirun flags, plan and timing policy.
//   npm run bench -- allreduce [--ranks 2] [--transports shm,tcp] [--min-bytes 4096]
//     [--max-bytes 268435456] [--factor 4] [--repeats 5] [--rounds 2] [--target-mb 64]
//     [--mpirun '--mca mpi_yield_when_idle 1']
// Each job is `mpirun -n RANKS` of a worker (bench/workers/allreduce_glimpse.ts under node,
// bench/workers/allreduce_mpi4py.py under /usr/bin/python3). Per size a worker runs ITERS
// all-reduces untimed (warm-up), then REPEATS times: barrier, ITERS all-reduces timed together.
// ITERS = target-mb / size, clamped to 5..2000, so every size runs long enough to time. A repeat's
// time is its slowest rank's; a figure is the fastest repeat over all rounds (the least
// disturbed), the median is reported beside it. busbw = size / time × 2(N−1)/N, as nccl-tests
// define it. The jobs of each round alternate which library goes first. Transports: shm is Open
// MPI's shared memory (--mca btl self,vader), tcp its TCP path over loopback (--mca btl tcp,self),
// the one multi-machine runs take; --mpirun adds flags to every job. Without mpi4py the anchor is
// null with the reason. The load average is reported: MPI ranks spin while they wait, and on a
// machine with more runnable processes than cores a spinning rank loses its core to them.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { mpiAddonPath } from '../src/dist/mpi.js';
import { formatPlan, RESULT_PREFIX, type PlanItem, type WorkerResult } from './lib/allreduce_plan.js';
import { anchorThreadEnv, checkPositiveInts, flag, textFlag } from './lib/timing.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const GLIMPSE_WORKER = path.join(HERE, 'workers', 'allreduce_glimpse.js');
// The Python worker is not compiled: it is read from the source tree, beside the TypeScript one.
const MPI4PY_WORKER = path.resolve(HERE, '../../bench/workers/allreduce_mpi4py.py');
const PYTHON = '/usr/bin/python3';

const TRANSPORTS: Record<string, string[]> = {
  shm: ['--mca', 'btl', 'self,vader'],
  tcp: ['--mca', 'btl', 'tcp,self'],
};
/** The target: at least this fraction of mpi4py's bus bandwidth from this size up. */
const TARGET_RATIO = 0.95;
const TARGET_FROM_BYTES = 1 << 20;

interface Job {
  ok: boolean;
  result?: WorkerResult;
  /** Why the job gave no result. */
  error?: string;
  argv: string[];
}

function runJob(mpirunFlags: string[], program: string[], plan: PlanItem[], repeats: number, env: Record<string, string>): Job {
  const argv = [...mpirunFlags, ...program, formatPlan(plan), String(repeats)];
  const run = spawnSync('mpirun', argv, { encoding: 'utf8', timeout: 900_000, maxBuffer: 16 << 20, env: { ...process.env, ...env } });
  const tail = (s: string) => s.trim().split('\n').slice(-6).join('\n');
  if (run.error) return { ok: false, error: `mpirun failed to run: ${run.error.message}`, argv };
  if (run.status !== 0) return { ok: false, error: `mpirun exited with ${run.status}: ${tail(run.stderr || run.stdout)}`, argv };
  const line = run.stdout.split('\n').find((l) => l.startsWith(RESULT_PREFIX));
  if (!line) return { ok: false, error: `no result line in the output: ${tail(run.stdout + run.stderr)}`, argv };
  return { ok: true, result: JSON.parse(line.slice(RESULT_PREFIX.length)) as WorkerResult, argv };
}

/** Why mpi4py cannot be the anchor here, or null when it can. */
function mpi4pyMissing(): string | null {
  const probe = spawnSync(PYTHON, ['-c', 'import mpi4py, numpy'], { encoding: 'utf8' });
  if (probe.error) return `could not run ${PYTHON}: ${probe.error.message}`;
  if (probe.status !== 0) {
    return `${PYTHON} cannot import mpi4py and numpy (${(probe.stderr || '').trim().split('\n').pop()}); scripts/install-bench-anchors.sh installs python3-mpi4py and python3-numpy`;
  }
  return null;
}

function sizeLabel(bytes: number): string {
  if (bytes >= 1 << 20) return `${bytes / (1 << 20)} MB`;
  if (bytes >= 1 << 10) return `${bytes / (1 << 10)} KB`;
  return `${bytes} B`;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const r3 = (x: number) => Math.round(x * 1000) / 1000;

export async function run(args: string[]): Promise<object> {
  const ranks = flag(args, '--ranks', 2);
  const minBytes = flag(args, '--min-bytes', 4096);
  const maxBytes = flag(args, '--max-bytes', 256 << 20);
  const factor = flag(args, '--factor', 4);
  const repeats = flag(args, '--repeats', 5);
  const rounds = flag(args, '--rounds', 2);
  const targetMb = flag(args, '--target-mb', 64);
  const transports = textFlag(args, '--transports', 'shm,tcp').split(',');
  const extraFlags = textFlag(args, '--mpirun', '').split(/\s+/).filter((f) => f !== '');
  checkPositiveInts('allreduce', { '--ranks': ranks, '--min-bytes': minBytes, '--max-bytes': maxBytes, '--repeats': repeats, '--rounds': rounds, '--target-mb': targetMb });
  if (!Number.isInteger(factor) || factor < 2) throw new Error(`bench allreduce: --factor must be an integer ≥ 2, got ${factor}`);
  if (minBytes % 4 !== 0) throw new Error(`bench allreduce: --min-bytes must be a multiple of 4 (float32), got ${minBytes}`);
  for (const t of transports) {
    if (!TRANSPORTS[t]) throw new Error(`bench allreduce: unknown transport '${t}' in --transports (known: ${Object.keys(TRANSPORTS).join(', ')})`);
  }
  if (ranks < 2) throw new Error('bench allreduce: --ranks must be at least 2 (one rank communicates nothing)');
  const probe = spawnSync('mpirun', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) throw new Error('bench allreduce: mpirun is not installed; run scripts/install-mpi.sh, then npm rebuild');
  if (!existsSync(mpiAddonPath())) throw new Error(`bench allreduce: the MPI addon is not built (${mpiAddonPath()}); run scripts/install-mpi.sh, then npm rebuild`);
  const mpiVersion = probe.stdout.split('\n')[0]!.trim();

  const plan: PlanItem[] = [];
  for (let bytes = minBytes; bytes <= maxBytes; bytes *= factor) {
    plan.push({ bytes, iters: Math.min(2000, Math.max(5, Math.round((targetMb << 20) / bytes))) });
  }
  // Open MPI refuses root without --allow-run-as-root; more ranks than cores need --oversubscribe.
  const common = [
    ...(process.getuid?.() === 0 ? ['--allow-run-as-root'] : []),
    ...(ranks > availableParallelism() ? ['--oversubscribe'] : []),
    ...extraFlags,
    '-n', String(ranks),
  ];
  const loadBefore = loadavg()[0]!;
  const env = { GLIMPSE_NUM_THREADS: '1', ...anchorThreadEnv(1) };
  let anchorNote = mpi4pyMissing();

  // seconds[transport][library][plan index]: every repeat of every round.
  const seconds: Record<string, Record<string, number[][]>> = {};
  const versions: Record<string, string | undefined> = {};
  let mpiLibrary: string | undefined;
  const commands: Record<string, string[]> = {};
  for (let round = 0; round < rounds; round++) {
    for (const transport of transports) {
      const flags = [...common, ...TRANSPORTS[transport]!];
      const libraries = anchorNote === null ? ['glimpse', 'mpi4py'] : ['glimpse'];
      if (round % 2 === 1) libraries.reverse();
      for (const library of libraries) {
        const program = library === 'glimpse' ? [process.execPath, GLIMPSE_WORKER] : [PYTHON, MPI4PY_WORKER];
        const job = runJob(flags, program, plan, repeats, env);
        commands[`${transport} ${library}`] = ['mpirun', ...job.argv];
        if (!job.ok) {
          if (library === 'glimpse') throw new Error(`bench allreduce: the Glimpse worker failed (${transport}): ${job.error}`);
          anchorNote = `the mpi4py worker failed (${transport}): ${job.error}`;
          continue;
        }
        versions[library] = job.result!.version;
        mpiLibrary ??= job.result!.mpi;
        const perSize = ((seconds[transport] ??= {})[library] ??= plan.map(() => []));
        job.result!.results.forEach((r, i) => perSize[i]!.push(...r.seconds));
      }
    }
  }

  const busFactor = (2 * (ranks - 1)) / ranks;
  const figure = (times: number[], bytes: number) => {
    const best = Math.min(...times);
    return {
      timeUs: r3(best * 1e6),
      busbwGBps: r3((bytes / best) * busFactor / 1e9),
      medianBusbwGBps: r3((bytes / median(times)) * busFactor / 1e9),
    };
  };
  const report: Record<string, object> = {};
  for (const transport of transports) {
    const g = seconds[transport]!.glimpse!;
    const m = anchorNote === null ? seconds[transport]!.mpi4py : undefined;
    const rows = plan.map((p, i) => {
      const ours = figure(g[i]!, p.bytes);
      const theirs = m ? figure(m[i]!, p.bytes) : null;
      return {
        size: sizeLabel(p.bytes),
        bytes: p.bytes,
        iters: p.iters,
        glimpse: ours,
        mpi4py: theirs,
        // > 1: Glimpse is faster. From the best times, and from the medians.
        ratio: theirs ? r3(ours.busbwGBps / theirs.busbwGBps) : null,
        medianRatio: theirs ? r3(ours.medianBusbwGBps / theirs.medianBusbwGBps) : null,
        // What each call costs Glimpse beyond mpi4py's (the comm-thread handoff and the Promise).
        extraUs: theirs ? r3(ours.timeUs - theirs.timeUs) : null,
      };
    });
    const judged = rows.filter((r) => r.bytes >= TARGET_FROM_BYTES && r.ratio !== null).map((r) => r.ratio!);
    report[transport] = {
      mpirunFlags: TRANSPORTS[transport]!.join(' '),
      sizes: rows,
      minRatioFrom1MB: judged.length ? Math.min(...judged) : null,
      targetMet: judged.length ? judged.every((x) => x >= TARGET_RATIO) : null,
    };
  }
  return {
    bench: 'allreduce',
    cores: availableParallelism(),
    loadAverage1m: { before: r3(loadBefore), after: r3(loadavg()[0]!) },
    unit: 'bus bandwidth GB/s (1e9 B/s) = size / time × 2(N−1)/N; float32 sum, in place; time per all-reduce, slowest rank, fastest repeat',
    ranks,
    mpi: mpiLibrary ?? mpiVersion,
    glimpse: versions.glimpse ? `mpiCommunicator (src/dist) on node ${versions.glimpse}` : 'mpiCommunicator (src/dist)',
    anchor: anchorNote === null ? `${versions.mpi4py}: Allreduce(MPI.IN_PLACE, buf)` : null,
    anchorNote: anchorNote ?? undefined,
    target: `glimpse/mpi4py busbw ≥ ${TARGET_RATIO} from ${sizeLabel(TARGET_FROM_BYTES)} up`,
    policy: { repeats, rounds, warmup: 'one untimed repeat per size', itersPerSize: `${targetMb} MB / size, clamped to 5..2000`, barrier: 'before each timed repeat' },
    commands,
    transports: report,
  };
}
