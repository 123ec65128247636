// `glimpse launch` and the CLI as one rank of a job: the mpirun command line, the checks before
// it runs, the summary of a failed job, and what a launched rank prints and how many threads it takes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { cliEntry, failedRank, failureSummary, mpirunArgs, rankThreads } from '../../src/cli/launch.js';
import { mpiSkipReason } from '../dist/mpirun.js';
import { tempDirs } from '../helpers.js';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const clipConfig = fileURLToPath(new URL('../../../configs/scenes-clip.yaml', import.meta.url));
const run = (args: readonly string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 180_000 });
const tmp = tempDirs('launch');
const asRoot = process.getuid?.() === 0;
const skipMpi = mpiSkipReason();
// The variables a launcher sets, without the launcher (none of these commands starts MPI).
const rankEnv = (rank: number, size: number, localSize?: number) => ({
  OMPI_COMM_WORLD_RANK: String(rank), OMPI_COMM_WORLD_SIZE: String(size), ...(localSize !== undefined ? { OMPI_COMM_WORLD_LOCAL_SIZE: String(localSize) } : {}),
});

test('launch --dry-run prints the mpirun command line: ranks, root flag, hosts, threads, MCA and verbatim mpirun arguments, then node, the CLI and the command', () => {
  const r = run(['launch', '-n', '3', '--hosts', 'node1:2,node-2.lan', '--threads', '4', '--mca', 'btl=tcp,self', '--mca', 'btl_tcp_if_include=eth0',
    '--mpi-arg', '--oversubscribe', '--mpi-arg=--bind-to', '--mpi-arg=none', '--dry-run', '--', 'train', '--config', 'my config.yaml', '--optim.lr', '1e-3']);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), ['mpirun -n 3', ...(asRoot ? ['--allow-run-as-root'] : []), '--host node1:2,node-2.lan -x GLIMPSE_NUM_THREADS=4',
    '--mca btl tcp,self --mca btl_tcp_if_include eth0 --oversubscribe --bind-to none', process.execPath, cliEntry(),
    "train --config 'my config.yaml' --optim.lr 1e-3"].join(' '));
  assert.equal(cliEntry(), cli);

  const hostfile = path.join(tmp());
  fs.writeFileSync(hostfile, 'localhost slots=2\n');
  const h = run(['launch', '-n', '2', '--hostfile', hostfile, '--dry-run', '--', 'info']);
  assert.equal(h.status, 0, h.stderr);
  assert.equal(h.stdout.trim(), `mpirun -n 2${asRoot ? ' --allow-run-as-root' : ''} --hostfile ${hostfile} ${process.execPath} ${cli} info`);
});

test('the mpirun arguments carry --allow-run-as-root exactly when launch runs as root', () => {
  const o = { ranks: 2, command: ['info'] };
  assert.deepEqual(mpirunArgs(o, true), ['-n', '2', '--allow-run-as-root', process.execPath, cliEntry(), 'info']);
  assert.deepEqual(mpirunArgs(o, false), ['-n', '2', process.execPath, cliEntry(), 'info']);
});

test('launch refuses bad input with a message that names the problem', () => {
  const hostfile = tmp();
  fs.writeFileSync(hostfile, 'localhost\n');
  const o = { ranks: 2, command: ['info'] };
  assert.throws(() => mpirunArgs({ ...o, hosts: 'a:1', hostfile }), /^Error: launch: --hosts and --hostfile exclude each other/);
  assert.throws(() => mpirunArgs({ ...o, hostfile: path.join(hostfile, 'none') }), /^Error: launch: the hostfile .*none does not exist/);
  assert.throws(() => mpirunArgs({ ...o, command: [] }), /^Error: launch: give the glimpse command to run after --/);
  assert.throws(() => mpirunArgs({ ...o, mca: ['btl'] }), /^Error: launch: --mca is key=value \(e.g. btl=tcp,self\), got 'btl'/);
  assert.throws(() => mpirunArgs({ ...o, mca: ['=tcp'] }), /--mca is key=value/);
  for (const hosts of ['a:0', 'a:two', 'a,,b', 'a:2:3', ' a', 'a;b', '']) {
    assert.throws(() => mpirunArgs({ ...o, hosts }), (e: Error) => e.message.startsWith(
      `launch: --hosts is host[:slots] separated by commas (e.g. node1:2,node2:2), got '${hosts}': `), hosts);
  }
  for (const hosts of ['localhost', 'node1:2,node2:16', '10.0.0.1:4,node-3.example.org']) assert.ok(mpirunArgs({ ...o, hosts }).includes(hosts), hosts);

  // As the CLI reports them: a bad count, and a command given without --.
  const cases: [string[], RegExp][] = [
    [['-n', '1.5', '--threads', '2', '--', 'info'], /^glimpse: launch: -n must be a positive integer, got '1.5'/],
    [['-n', '2', '--threads', '0', '--', 'info'], /^glimpse: launch: --threads must be a positive integer, got '0'/],
    [['-n', '2', 'train', '--config', 'c.yaml'], /unknown option '--config'\n\(the command the ranks run goes after --/],
  ];
  for (const [args, message] of cases) {
    const r = run(['launch', '--dry-run', ...args]);
    assert.equal(r.status, 1, args.join(' '));
    assert.match(r.stderr, message, args.join(' '));
  }
});

test('launch without mpirun on the PATH, or without the MPI addon, fails at once naming scripts/install-mpi.sh', () => {
  const noMpi = run(['launch', '-n', '2', '--', 'info'], { PATH: tmp() });
  assert.equal(noMpi.status, 1);
  assert.match(noMpi.stderr, /^glimpse: launch: mpirun is not on the PATH; install Open MPI with scripts\/install-mpi\.sh/);
  const missing = path.join(tmp(), 'glimpse_mpi.node');
  const mpirunPath = path.dirname(spawnSync('sh', ['-c', 'command -v mpirun'], { encoding: 'utf8' }).stdout.trim() || tmp());
  const noAddon = run(['launch', '-n', '2', '--', 'info'], { PATH: mpirunPath, GLIMPSE_MPI_ADDON: missing });
  assert.equal(noAddon.status, 1);
  assert.match(noAddon.stderr, skipMpi?.startsWith('mpirun is not installed')
    ? /^glimpse: launch: mpirun is not on the PATH; .*scripts\/install-mpi\.sh/
    : new RegExp(`^glimpse: launch: the MPI addon is not built \\(no ${missing}\\); install Open MPI with scripts/install-mpi\\.sh`));
});

test('train --distributed without the MPI addon fails at once, naming scripts/install-mpi.sh once prefixed', () => {
  const r = run(['train', '--config', clipConfig, '--out', tmp(), '--distributed'], { GLIMPSE_MPI_ADDON: path.join(tmp(), 'glimpse_mpi.node') });
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /^glimpse: the distributed layer needs MPI, and the MPI addon is not built .*scripts\/install-mpi\.sh/);
  // Launched as one of two ranks, train joins without the flag.
  const launched = run(['train', '--config', clipConfig, '--out', tmp()], { ...rankEnv(0, 2), GLIMPSE_MPI_ADDON: path.join(tmp(), 'glimpse_mpi.node') });
  assert.equal(launched.status, 1);
  assert.match(launched.stderr, /^glimpse: the distributed layer needs MPI/);
});

// mpirun's reports (Open MPI 4.1) of the two ways a job fails, and PRRTE's (Open MPI 5) naming of a process.
const SIGNAL_REPORT = `--------------------------------------------------------------------------
Primary job  terminated normally, but 1 process returned
a non-zero exit code. Per user-direction, the job has been aborted.
--------------------------------------------------------------------------
--------------------------------------------------------------------------
mpirun noticed that process rank 1 with PID 0 on node vm exited on signal 9 (Killed).
--------------------------------------------------------------------------
`;
const EXIT_REPORT = `--------------------------------------------------------------------------
mpirun detected that one or more processes exited with non-zero status, thus causing
the job to be terminated. The first process to do so was:

  Process name: [[26015,1],3]
  Exit code:    2
--------------------------------------------------------------------------
`;

test('the summary of a failed job names the rank mpirun blamed', () => {
  assert.equal(failedRank(SIGNAL_REPORT), 'rank 1 exited on signal 9 (Killed)');
  assert.equal(failedRank(EXIT_REPORT), 'rank 3 was the first to fail (exit code 2)');
  assert.equal(failedRank(EXIT_REPORT.replace('[[26015,1],3]', '[prterun-vm-1234@1,5]')), 'rank 5 was the first to fail (exit code 2)');
  assert.equal(failedRank('MPI_ABORT was invoked on rank 2 in communicator MPI_COMM_WORLD\nwith errorcode 1.'), 'rank 2 called MPI_Abort');
  assert.equal(failedRank('glimpse: config: c.yaml does not exist\n'), null);
  assert.equal(failureSummary(137, `some output\n${SIGNAL_REPORT}`, null), 'glimpse launch: the job failed (mpirun exit code 137): rank 1 exited on signal 9 (Killed)');
  assert.equal(failureSummary(1, '', null), 'glimpse launch: the job failed (mpirun exit code 1)');
  assert.equal(failureSummary(130, '', 'SIGINT'), 'glimpse launch: the job was stopped by SIGINT (mpirun exit code 130)');
});

test('a launched rank takes its share of the cores unless GLIMPSE_NUM_THREADS is set', () => {
  assert.equal(rankThreads(16, {}), null, 'a process on its own');
  assert.equal(rankThreads(16, rankEnv(0, 1)), null, 'a world of one');
  assert.equal(rankThreads(16, rankEnv(1, 4, 4)), 4);
  assert.equal(rankThreads(16, rankEnv(1, 4, 3)), 5, 'floor(16 / 3)');
  assert.equal(rankThreads(2, rankEnv(1, 4, 4)), 1, 'at least one');
  assert.equal(rankThreads(16, rankEnv(1, 8, 1)), null, 'one rank on its machine keeps every core');
  assert.equal(rankThreads(16, rankEnv(1, 8)), 2, 'no local size: the whole world is on this machine');
  assert.equal(rankThreads(16, { ...rankEnv(1, 4, 4), GLIMPSE_NUM_THREADS: '3' }), null, 'the user chose');
  assert.equal(rankThreads(12, { SLURM_PROCID: '0', SLURM_NTASKS: '6', SLURM_STEP_TASKS_PER_NODE: '3(x2)', SLURM_NODEID: '1' }), 4);
});

test('the CLI as a launched rank runs its share of threads; rank 0 prints, other ranks print no results and prefix their errors', () => {
  const cores = os.availableParallelism();
  const threadsOf = (env: NodeJS.ProcessEnv) => {
    const r = run(['info', '--json'], env);
    assert.equal(r.status, 0, r.stderr);
    return (JSON.parse(r.stdout) as { threads: number }).threads;
  };
  assert.equal(threadsOf({ ...rankEnv(0, 2, 2), GLIMPSE_NUM_THREADS: '' }), Math.max(1, Math.floor(cores / 2)));
  assert.equal(threadsOf({ ...rankEnv(0, 2, 2), GLIMPSE_NUM_THREADS: '3' }), 3);

  const quiet = run(['info', '--json'], rankEnv(1, 2));
  assert.equal(quiet.status, 0, quiet.stderr);
  assert.equal(quiet.stdout, '');

  const lead = run(['train', '--config', '/nonexistent.yaml'], rankEnv(0, 2));
  assert.equal(lead.status, 1);
  assert.equal(lead.stderr, 'glimpse: config: /nonexistent.yaml does not exist\n');
  const other = run(['train', '--config', '/nonexistent.yaml'], rankEnv(1, 2));
  assert.equal(other.status, 1);
  assert.equal(other.stdout, '');
  assert.equal(other.stderr, '[rank 1] glimpse: config: /nonexistent.yaml does not exist\n');
  // Commander's own errors, on every line.
  const usage = run(['launch', '-n', '2', 'train', '--config', 'c.yaml'], rankEnv(1, 2));
  assert.equal(usage.status, 1);
  const lines = usage.stderr.trimEnd().split('\n');
  assert.ok(lines.length >= 2 && lines.every((l) => l.startsWith('[rank 1] ')), usage.stderr);
});

test('glimpse launch -n 2 runs the command on two ranks and reports the rank that failed', { skip: skipMpi }, () => {
  const r = run(['launch', '-n', '2', '--mpi-arg=--oversubscribe', '--', 'train', '--config', '/nonexistent.yaml']);
  const output = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 1, output);
  assert.match(r.stderr, /\nglimpse launch: the job failed \(mpirun exit code 1\): rank [01] was the first to fail \(exit code 1\)\n$/, output);
  // mpirun ends the job when the first rank fails, so the other may not get to say why.
  const errors = r.stderr.split('\n').filter((l) => l.includes('/nonexistent.yaml does not exist'));
  assert.ok(errors.length >= 1, output);
  for (const e of errors) assert.ok(['glimpse: config: /nonexistent.yaml does not exist', '[rank 1] glimpse: config: /nonexistent.yaml does not exist'].includes(e), e);
});

// Open MPI 4 runs the other ranks to their end when told not to abort on a failed one (and then
// exits 0), so both ranks' errors are seen; PRRTE (Open MPI 5) spells that option differently.
const openMpi4 = /Open MPI\)? 4\./.test(spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).stdout ?? '');

test('glimpse launch: each rank reports its own error, rank 1 prefixed, rank 0 not', { skip: skipMpi ?? (openMpi4 ? undefined : 'needs Open MPI 4 (orte_abort_on_non_zero_status)') }, () => {
  const r = run(['launch', '-n', '2', '--mpi-arg=--oversubscribe', '--mca', 'orte_abort_on_non_zero_status=0', '--', 'train', '--config', '/nonexistent.yaml']);
  const output = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 0, output);
  assert.equal(r.stdout, '', output);
  const lines = r.stderr.split('\n');
  assert.ok(lines.includes('glimpse: config: /nonexistent.yaml does not exist'), output);
  assert.ok(lines.includes('[rank 1] glimpse: config: /nonexistent.yaml does not exist'), output);
});

test('a SIGKILLed rank ends the job, and launch names it', { skip: skipMpi ?? (fs.existsSync('/proc/self/environ') ? undefined : 'finds the rank in /proc') }, async () => {
  // A training run far longer than the test: rank 1 is killed as soon as it is found.
  const token = `glimpse-launch-test-${process.pid}-${Date.now()}`;
  const launch = spawn(process.execPath, [cli, 'launch', '-n', '2', '--threads', '1', '--mpi-arg=--oversubscribe', '--', 'train', '--config', clipConfig, '--out', tmp(), '--steps', '100000', '--progress', 'none'],
    { env: { ...process.env, GLIMPSE_LAUNCH_TEST: token }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  launch.stderr.on('data', (c: Buffer) => { stderr += c.toString(); });
  const ended = new Promise<number | null>((resolve) => launch.on('close', (code) => resolve(code)));
  const rankPid = (rank: number): number | null => {
    for (const pid of fs.readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      let env: string[];
      try {
        env = fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      } catch {
        continue; // gone, or not ours
      }
      if (env.includes(`GLIMPSE_LAUNCH_TEST=${token}`) && env.includes(`OMPI_COMM_WORLD_RANK=${rank}`)) return Number(pid);
    }
    return null;
  };
  // A hung job fails the test instead of hanging it (launch passes SIGTERM on to mpirun).
  const guard = setTimeout(() => launch.kill('SIGTERM'), 120_000);
  try {
    let pid: number | null = null;
    while (pid === null && launch.exitCode === null) {
      await new Promise((r) => setTimeout(r, 100));
      pid = rankPid(1);
    }
    assert.ok(pid !== null, `rank 1 never started:\n${stderr}`);
    process.kill(pid, 'SIGKILL');
    const code = await ended;
    assert.notEqual(code, 0, stderr);
    assert.notEqual(code, null, `the job did not end:\n${stderr}`);
    assert.match(stderr, new RegExp(`glimpse launch: the job failed \\(mpirun exit code ${code}\\): rank 1 exited on signal 9 \\(Killed\\)\\n$`), stderr);
  } finally {
    clearTimeout(guard);
    if (launch.exitCode === null) launch.kill('SIGTERM');
  }
});
