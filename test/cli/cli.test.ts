// The glimpse command line, run as a user runs it: a separate process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

test('glimpse info --json reports the backend and its threads', () => {
  const r = run('info', '--json');
  assert.equal(r.status, 0, r.stderr);
  const info = JSON.parse(r.stdout) as { backend: string; threads: number; native: boolean };
  assert.ok(['native', 'reference'].includes(info.backend));
  assert.ok(info.threads >= 1);
  assert.equal(info.backend === 'native', info.native);
});


test('glimpse --version and -V print the version in package.json', () => {
  const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../../package.json', import.meta.url)), 'utf8')) as { version: string };
  for (const flag of ['--version', '-V']) {
    const r = run(flag);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout.trim(), pkg.version, flag);
  }
});
