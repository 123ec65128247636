// Without the MPI addon the distributed layer fails at once, saying how to get it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mpiCommunicator } from '../../src/dist/index.js';

function withAddonPath(path: string, fn: () => void): void {
  const saved = process.env.GLIMPSE_MPI_ADDON;
  process.env.GLIMPSE_MPI_ADDON = path;
  try {
    fn();
  } finally {
    if (saved === undefined) delete process.env.GLIMPSE_MPI_ADDON;
    else process.env.GLIMPSE_MPI_ADDON = saved;
  }
}

test('a missing MPI addon is an error that names scripts/install-mpi.sh', () => {
  const dir = mkdtempSync(join(tmpdir(), 'glimpse-nompi-'));
  try {
    const path = join(dir, 'glimpse_mpi.node');
    withAddonPath(path, () => {
      assert.throws(() => mpiCommunicator(), (e: Error) => {
        assert.match(e.message, /the distributed layer needs MPI, and the MPI addon is not built/);
        assert.ok(e.message.includes(path), e.message);
        assert.match(e.message, /scripts\/install-mpi\.sh, then rebuild the addons with npm rebuild/);
        return true;
      });
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an MPI addon that does not load is an error that names scripts/install-mpi.sh', () => {
  const dir = mkdtempSync(join(tmpdir(), 'glimpse-nompi-'));
  try {
    const path = join(dir, 'glimpse_mpi.node');
    writeFileSync(path, 'not a shared library');
    withAddonPath(path, () => {
      assert.throws(() => mpiCommunicator(), /the MPI addon at .* does not load \(.*\)\. Install Open MPI with scripts\/install-mpi\.sh/);
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
