// The buffer pool of empty() storages (emptyHost in src/tensor/backends/host.ts): after a collection
// at a step boundary (reclaimMemory), a dead storage's buffer serves the next request of its dtype and
// length, and a live storage's never does; a loop that never reclaims pools nothing; work that hands
// out more than two steps' worth between collections stops being pooled.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { getBackend, reclaimMemory } from '../../src/tensor/device.js';
import { hostData } from '../../src/tensor/backends/host.js';
import type { Storage } from '../../src/tensor/backend.js';
import type { TypedArray } from '../../src/tensor/dtype.js';

const backend = getBackend('native');
// reclaimMemory collects only after 256 MB of empty() storages since its last collection: one
// storage that large, never written, so its pages are never touched.
const STEP_FLOATS = 64 * 2 ** 20;

/** One "training step": allocates what `make` lists and a large buffer, then drops every storage, like a step's activations. */
function step(make: Record<string, [Storage['dtype'], number]>): Record<string, TypedArray> {
  const arrays: Record<string, TypedArray> = {};
  for (const [name, [dtype, length]] of Object.entries(make)) arrays[name] = hostData(backend.empty(dtype, length));
  backend.empty('float32', STEP_FLOATS);
  return arrays; // the typed arrays only: their storages are dead once this returns
}

test('a dead storage\'s buffer serves the next empty() of its dtype and length after reclaimMemory', async () => {
  await reclaimMemory(); // whatever the earlier code left
  step({});
  await reclaimMemory(); // from here on a step's allocations are pooled
  const dead = step({ a: ['float32', 1000], b: ['int32', 1000] });
  const live = backend.empty('float32', 1000);
  await reclaimMemory();
  const other = hostData(backend.empty('float32', 999));
  assert.notEqual(other, dead.a, 'another length does not take the buffer');
  const int = hostData(backend.empty('int32', 1000));
  assert.equal(int, dead.b, 'the dead int32 buffer is handed out again');
  const first = hostData(backend.empty('float32', 1000));
  const second = hostData(backend.empty('float32', 1000));
  assert.ok(first === dead.a || second === dead.a, 'the dead float32 buffer is handed out again');
  assert.notEqual(first, hostData(live));
  assert.notEqual(second, hostData(live), 'a live storage\'s buffer is never handed out');
});

test('the pool empties at each collection: a buffer not reused within a step is not kept', async () => {
  await reclaimMemory();
  step({});
  await reclaimMemory();
  const dead = step({ a: ['float32', 777] });
  await reclaimMemory(); // dead.a is pooled now...
  step({});
  await reclaimMemory(); // ...and dropped here, unused for a whole step
  assert.notEqual(hostData(backend.empty('float32', 777)), dead.a);
});

test('past twice a step\'s worth between collections, storages are no longer pooled (their memory is freed as usual)', async () => {
  step({});
  await reclaimMemory(); // collects: over 256 MB were handed out since the last collection
  step({});
  await reclaimMemory(); // the pool's cap is now one step's worth: STEP_FLOATS floats
  const early = step({ a: ['float32', 555] }); // within the first step's worth: pooled
  step({}); // a second step's worth, with no collection between (an evaluation loop)...
  const late = step({ a: ['float32', 556] }); // ...so this one is past twice the cap: not pooled
  await reclaimMemory();
  assert.equal(hostData(backend.empty('float32', 555)), early.a, 'the storage within the limit is pooled');
  assert.notEqual(hostData(backend.empty('float32', 556)), late.a, 'the storage past the limit is not');
});
