// `glimpse launch -n N [--hosts h:2,... | --hostfile F] [--threads T] [--mca k=v] [--mpi-arg X] -- <command>`:
// runs a glimpse command on N ranks under Open MPI's mpirun, and the per-rank defaults a
// launched process applies to itself (threads, quiet ranks).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { constants } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { mpiAddonPath } from '../dist/mpi.js';
import { launchEnvironment, type LaunchEnvironment } from '../dist/world.js';
import { positiveInt } from './args.js';

const INSTALL_HINT = 'install Open MPI with scripts/install-mpi.sh, then rebuild the addons with npm rebuild';

/** What `glimpse launch` was asked to run. */
export interface LaunchOptions {
  /** Number of ranks (mpirun -n). */
  ranks: number;
  /** Open MPI's host list, host[:slots],... (exclusive with hostfile). */
  hosts?: string;
  hostfile?: string;
  /** GLIMPSE_NUM_THREADS for every rank. */
  threads?: number;
  /** MCA parameters as key=value, each passed as `--mca key value`. */
  mca?: readonly string[];
  /** mpirun arguments passed verbatim, in order, after the others. */
  mpiArgs?: readonly string[];
  /** The glimpse command and its flags, run on every rank. */
  command: readonly string[];
}

/** Checks Open MPI's --host syntax, host[:slots] separated by commas; returns it unchanged. */
export function checkHosts(hosts: string): string {
  const entries = hosts.split(',');
  for (const e of entries) {
    const m = /^([A-Za-z0-9][A-Za-z0-9._-]*)(?::(.*))?$/.exec(e);
    const slots = m?.[2];
    if (!m || (slots !== undefined && !/^[1-9]\d*$/.test(slots))) {
      throw new Error(`launch: --hosts is host[:slots] separated by commas (e.g. node1:2,node2:2), got '${hosts}': '${e}' is not a host name with an optional positive slot count`);
    }
  }
  return hosts;
}

/** The CLI entry every rank runs: this package's main.js, beside this module. */
export function cliEntry(): string {
  return fileURLToPath(new URL('./main.js', import.meta.url));
}

/** Open MPI refuses to start as root unless told to (containers and CI run as root). */
function runsAsRoot(): boolean {
  return process.getuid?.() === 0;
}

/** mpirun's arguments (after `mpirun`) for a launch. */
export function mpirunArgs(o: LaunchOptions, asRoot = runsAsRoot()): string[] {
  if (o.command.length === 0) throw new Error('launch: give the glimpse command to run after --, e.g. glimpse launch -n 2 -- train --config configs/scenes-clip.yaml');
  if (o.hosts !== undefined && o.hostfile !== undefined) throw new Error('launch: --hosts and --hostfile exclude each other; give one');
  const args = ['-n', String(o.ranks)];
  if (asRoot) args.push('--allow-run-as-root');
  if (o.hosts !== undefined) args.push('--host', checkHosts(o.hosts));
  if (o.hostfile !== undefined) {
    if (!fs.existsSync(o.hostfile)) throw new Error(`launch: the hostfile ${o.hostfile} does not exist`);
    args.push('--hostfile', o.hostfile);
  }
  if (o.threads !== undefined) args.push('-x', `GLIMPSE_NUM_THREADS=${o.threads}`);
  for (const kv of o.mca ?? []) {
    const eq = kv.indexOf('=');
    if (eq <= 0) throw new Error(`launch: --mca is key=value (e.g. btl=tcp,self), got '${kv}'`);
    args.push('--mca', kv.slice(0, eq), kv.slice(eq + 1));
  }
  args.push(...(o.mpiArgs ?? []), process.execPath, cliEntry(), ...o.command);
  return args;
}

/** A command line as a shell reads it back: words with special characters single-quoted. */
export function shellLine(words: readonly string[]): string {
  return words.map((w) => (/^[A-Za-z0-9_@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, `'\\''`)}'`)).join(' ');
}

/** The first executable file named `name` in the PATH directories, or null. */
function onPath(name: string, pathVar = process.env.PATH ?? ''): string | null {
  for (const dir of pathVar.split(path.delimiter)) {
    if (dir === '') continue;
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      if (fs.statSync(file).isFile()) return file;
    } catch {
      // not here
    }
  }
  return null;
}

/** Throws, naming scripts/install-mpi.sh, when mpirun or the MPI addon the ranks load is missing. */
export function checkMpiInstalled(): void {
  if (onPath('mpirun') === null) throw new Error(`launch: mpirun is not on the PATH; ${INSTALL_HINT}`);
  const addon = mpiAddonPath();
  if (!fs.existsSync(addon)) throw new Error(`launch: the MPI addon is not built (no ${addon}); ${INSTALL_HINT}`);
}

/**
 * Which rank mpirun blamed for the job's end, from its stderr ('process rank 1 ... exited on
 * signal 9 (Killed)', the first process to exit non-zero, or a rank that called MPI_Abort), as a
 * phrase for the summary line; null when its output names none.
 */
export function failedRank(mpirunStderr: string): string | null {
  const signal = /noticed that process rank (\d+) with PID \d+ on node \S+ exited on signal (\d+)(?: \(([^)]+)\))?/.exec(mpirunStderr);
  if (signal) return `rank ${signal[1]} exited on signal ${signal[2]}${signal[3] ? ` (${signal[3]})` : ''}`;
  // Open MPI 4 names a process [[job,step],rank]; PRRTE (Open MPI 5) [host@step,rank].
  const exited = /exited with non-zero status[\s\S]*?Process name:\s*\[(?:\[[^\]]*\]|[^\],]*),(\d+)\]\s*Exit code:\s*(\d+)/.exec(mpirunStderr);
  if (exited) return `rank ${exited[1]} was the first to fail (exit code ${exited[2]})`;
  const aborted = /MPI_ABORT was invoked on rank (\d+)/.exec(mpirunStderr);
  if (aborted) return `rank ${aborted[1]} called MPI_Abort`;
  return null;
}

/** The line `glimpse launch` prints when mpirun exits non-zero. */
export function failureSummary(code: number, mpirunStderr: string, stoppedBy: NodeJS.Signals | null): string {
  const head = stoppedBy ? `glimpse launch: the job was stopped by ${stoppedBy}` : 'glimpse launch: the job failed';
  const rank = failedRank(mpirunStderr);
  return `${head} (mpirun exit code ${code})${rank ? `: ${rank}` : ''}`;
}

// mpirun's report of a failed rank comes at the end of its output; this much of the tail is kept to scan.
const STDERR_TAIL = 64 * 1024;

/**
 * Runs mpirun with the terminal's stdin and stdout; its stderr is copied through as it comes and
 * its tail kept, to name the rank that failed. SIGINT and SIGTERM are passed on to mpirun, which
 * passes them to the ranks. Resolves to the exit code for this process.
 */
function runMpirun(args: readonly string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn('mpirun', args, { stdio: ['inherit', 'inherit', 'pipe'] });
    let tail = '';
    child.stderr.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      tail = (tail + chunk.toString('utf8')).slice(-STDERR_TAIL);
    });
    let stoppedBy: NodeJS.Signals | null = null;
    const forward = (signal: NodeJS.Signals) => {
      stoppedBy = signal;
      child.kill(signal);
    };
    const signals: NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
    for (const s of signals) process.on(s, forward);
    child.on('error', (e) => {
      for (const s of signals) process.off(s, forward);
      reject(new Error(`launch: cannot run mpirun (${e.message}); ${INSTALL_HINT}`, { cause: e }));
    });
    child.on('close', (code, signal) => {
      for (const s of signals) process.off(s, forward);
      // A shell reports a process killed by signal n as 128 + n.
      const status = code ?? 128 + (signal ? constants.signals[signal] : 0);
      if (status !== 0) console.error(failureSummary(status, tail, stoppedBy));
      resolve(status);
    });
  });
}

/**
 * The GLIMPSE_NUM_THREADS a launched rank should use so that the ranks on one machine share its
 * cores: floor(cores / ranks on this machine), at least 1. Null (keep the native default) when
 * the user set GLIMPSE_NUM_THREADS, or this process is not one of several ranks on its machine.
 * The ranks on a machine are the launcher's local size, else the whole world.
 */
export function rankThreads(cores: number, env: NodeJS.ProcessEnv): number | null {
  if ((env.GLIMPSE_NUM_THREADS ?? '') !== '') return null;
  const job = launchEnvironment(env);
  if (job === null || job.worldSize <= 1) return null;
  const local = job.localSize ?? job.worldSize;
  if (local <= 1) return null;
  return Math.max(1, Math.floor(cores / local));
}

/** This process's job when it is one of several ranks; null for a process on its own. */
export function launchedRank(env: NodeJS.ProcessEnv = process.env): LaunchEnvironment | null {
  const job = launchEnvironment(env);
  return job !== null && job.worldSize > 1 ? job : null;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** The commander `launch` command, for the CLI to mount. */
export function launchCommand(): Command {
  return new Command('launch')
    .description('run a glimpse command on N processes (ranks) under MPI, on this machine or several')
    .usage('-n <ranks> [options] -- <glimpse command and its flags>')
    .argument('[command...]', 'the glimpse command every rank runs, after --')
    .requiredOption('-n, --ranks <n>', 'number of ranks (processes)', positiveInt('launch: -n'))
    .option('--hosts <list>', "machines and their slots (ranks each takes), host[:slots] separated by commas: node1:2,node2:2 (default: this machine)")
    .option('--hostfile <file>', "an Open MPI hostfile: one machine a line, 'node1 slots=2'")
    .option('--threads <n>', 'GLIMPSE_NUM_THREADS of every rank (default: the cores of a machine / its ranks)', positiveInt('launch: --threads'))
    .option('--mca <key=value>', 'an Open MPI MCA parameter, passed as --mca key value (repeatable), e.g. --mca btl=tcp,self', collect)
    .option('--mpi-arg <arg>', 'an argument passed to mpirun as it is (repeatable), e.g. --mpi-arg=--oversubscribe', collect)
    .option('--dry-run', 'print the mpirun command line instead of running it (checks the options, not the MPI installation)')
    .showHelpAfterError('(the command the ranks run goes after --: glimpse launch -n 2 -- train --config c.yaml; see glimpse launch --help)')
    .addHelpText('after', `
Every rank runs this package's CLI with the same node (process.execPath), so on several machines
both must be installed at the same paths. Ranks on this machine inherit the environment; mpirun
passes variables to other machines only when asked (--mpi-arg=-x --mpi-arg=NAME).

A rank finds its place in the job from the launcher's variables, so
'mpirun -n 2 node dist/src/cli/main.js train ...' and 'srun' work too. Rank 0 prints results and
progress; the other ranks print nothing on stdout, and their errors begin with '[rank N]'.
Unless GLIMPSE_NUM_THREADS is set, each rank uses (cores / ranks on its machine) threads.

launch exits with mpirun's exit code; when it is not 0 it prints one line naming the rank that
failed, when mpirun said. Ctrl-C (SIGINT) and SIGTERM are passed to mpirun, which stops the job.
Needs Open MPI and the MPI addon: scripts/install-mpi.sh, then npm rebuild.

Examples:
  glimpse launch -n 2 -- train --config configs/scenes-clip.yaml
  glimpse launch -n 4 --hosts node1:2,node2:2 --mca btl_tcp_if_include=eth0 -- train --config c.yaml
  glimpse launch -n 2 --mca btl=tcp,self --dry-run -- train --config c.yaml`)
    .action(async (command: string[], o: { ranks: number; hosts?: string; hostfile?: string; threads?: number; mca?: string[]; mpiArg?: string[]; dryRun?: boolean }) => {
      const args = mpirunArgs({ ranks: o.ranks, hosts: o.hosts, hostfile: o.hostfile, threads: o.threads, mca: o.mca, mpiArgs: o.mpiArg, command });
      if (o.dryRun) {
        console.log(shellLine(['mpirun', ...args]));
        return;
      }
      checkMpiInstalled();
      process.exitCode = await runMpirun(args);
    });
}
