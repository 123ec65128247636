// Test helpers: a seeded RNG, random data, random strided views, and closeness checks.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import sharp from 'sharp';
import type { Backend, Storage, View } from '../src/tensor/backend.js';
import { contiguousStrides, numel } from '../src/tensor/backend.js';
import type { DType, TypedArray } from '../src/tensor/dtype.js';
import { allocHost } from '../src/tensor/dtype.js';

/** mulberry32: small, seeded, good enough for test data. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randInt(r: () => number, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

/** Random host data: floats uniform in [lo, hi), ints in [0, hi), masks 0/1. */
export function randomData(r: () => number, dtype: DType, n: number, lo = -2, hi = 2): TypedArray {
  const out = allocHost(dtype, n);
  for (let i = 0; i < n; i++) {
    if (dtype === 'float32' || dtype === 'float64') (out as Float32Array)[i] = lo + (hi - lo) * r();
    else if (dtype === 'int64') (out as BigInt64Array)[i] = BigInt(Math.floor(r() * hi));
    else if (dtype === 'bool' || dtype === 'uint8') (out as Uint8Array)[i] = r() < 0.5 ? 1 : 0;
    else (out as Int32Array)[i] = Math.floor(r() * hi);
  }
  return out;
}

export function denseView(storage: Storage, shape: readonly number[], offset = 0): View {
  return { storage, offset, shape: [...shape], strides: contiguousStrides(shape) };
}

export type Layout = 'dense' | 'offset' | 'transposed' | 'sliced' | 'broadcast';

/**
 * A view of the given logical shape laid out in memory as `layout` says, filled with random
 * data: 'transposed' stores the last two axes swapped, 'sliced' takes a window of a larger
 * buffer (non-unit gaps between rows), 'broadcast' gives size-1 axes stride 0 over a smaller buffer.
 * The same data is placed on each backend so results can be compared.
 */
export function randomView(
  r: () => number, backends: Backend[], dtype: DType, shape: readonly number[], layout: Layout,
  lo = -2, hi = 2,
): View[] {
  const nd = shape.length;
  let allocShape = [...shape];
  let perm: number[] | null = null;
  let pad = 0;
  if (layout === 'transposed' && nd >= 2) {
    perm = [...Array(nd).keys()];
    [perm[nd - 1], perm[nd - 2]] = [perm[nd - 2]!, perm[nd - 1]!];
    allocShape = perm.map((p) => shape[p]!);
  } else if (layout === 'sliced' && nd >= 1) {
    allocShape[nd - 1] = shape[nd - 1]! + 3;
  } else if (layout === 'offset') {
    pad = 5;
  }
  const data = randomData(r, dtype, numel(allocShape) + pad, lo, hi);
  const baseStrides = contiguousStrides(allocShape);
  let strides: number[];
  if (perm) {
    strides = new Array<number>(nd);
    for (let i = 0; i < nd; i++) strides[perm[i]!] = baseStrides[i]!;
  } else {
    strides = baseStrides;
  }
  let offset = pad;
  if (layout === 'sliced' && nd >= 1) offset = 1; // skip the first column: rows start mid-buffer
  if (layout === 'broadcast') strides = strides.map((s, i) => (shape[i] === 1 ? 0 : s));
  return backends.map((b) => ({ storage: b.fromHost(data, dtype), offset, shape: [...shape], strides }));
}

/** Asserts every element is within atol + rtol * |expected|; NaNs must match NaNs. */
export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} != ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    const a = Number(actual[i]);
    const e = Number(expected[i]);
    if (Number.isNaN(e) && Number.isNaN(a)) continue;
    if (a === e) continue; // covers matching infinities
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) {
      assert.fail(`${what}: element ${i} is ${a}, expected ${e} (rtol ${rtol}, atol ${atol})`);
    }
  }
}

/** Max |a-b| / (max |b| + tiny): the "relative to the largest element" error the fixtures use. */
export function relMaxError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let maxErr = 0;
  let maxRef = 0;
  for (let i = 0; i < expected.length; i++) {
    maxErr = Math.max(maxErr, Math.abs(Number(actual[i]) - Number(expected[i])));
    maxRef = Math.max(maxRef, Math.abs(Number(expected[i])));
  }
  return maxErr / (maxRef + 1e-30);
}

export function storageData(s: Storage): TypedArray {
  return (s as unknown as { data: TypedArray }).data;
}

/**
 * Runs a test file again in a child process with extra environment (e.g. GLIMPSE_NO_AVX2=1 for
 * the portable kernels) and fails if any of its tests fail. NODE_TEST_CONTEXT is removed: a child
 * that inherits it reports to this runner's protocol and exits 0 whatever happened.
 */
export function rerunTestFile(file: string, env: Record<string, string>, args: string[] = []): string {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  delete childEnv.NODE_TEST_CONTEXT;
  const path = file.startsWith('file:') ? fileURLToPath(file) : file;
  const res = spawnSync(process.execPath, ['--test', ...args, path], { env: childEnv, encoding: 'utf8', timeout: 300_000 });
  assert.equal(res.status, 0, `child run with ${JSON.stringify(env)} failed:\n${res.stdout.slice(-4000)}\n${res.stderr.slice(-2000)}`);
  return res.stdout;
}

/** A function that makes fresh folders under one temporary root, removed when the process exits. */
export function tempDirs(prefix: string): () => string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), `glimpse-${prefix}-`));
  process.on('exit', () => fs.rmSync(root, { recursive: true, force: true }));
  let n = 0;
  return () => path.join(root, `d${n++}`);
}

/**
 * The folders where the shared test data (shared/: fixtures made by the reference implementations)
 * is looked for, in order: GLIMPSE_SHARED, ./shared, ../shared, and beside the package.
 */
export function sharedRoots(): string[] {
  const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
  const roots = [process.env.GLIMPSE_SHARED, 'shared', '../shared', path.join(repoRoot, 'shared'), path.join(repoRoot, '../shared')];
  return [...new Set(roots.filter((r) => r).map((r) => path.resolve(r!)))];
}

/** A folder of the shared test data (`sub`, e.g. 'fixtures/hf/vit') that holds `marker`; null when shared/ is absent. */
export function findShared(sub: string, marker: string): string | null {
  for (const root of sharedRoots()) {
    const dir = path.join(root, sub);
    if (fs.existsSync(path.join(dir, marker))) return dir;
  }
  return null;
}

/** The skip message of a test whose shared data is absent: where it was looked for, and how to point at it. */
export function sharedNotFound(): string {
  return `shared fixtures not found in ${sharedRoots().join(', ')}: set GLIMPSE_SHARED to the shared/ folder `
    + '(fixtures made by the reference implementations; see README.md)';
}

/** An HF fixture folder (../shared/fixtures/hf/<name>), or null. */
export const findFixture = (name: string): string | null => findShared(`fixtures/hf/${name}`, 'config.json');

export const floats = (t: { data(): TypedArray }): Float32Array => t.data() as Float32Array;

export function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

export function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** Asserts a saved config.json kept the original's top-level `keys` and every field of its sub-configs. */
export function assertConfigKept(saved: Record<string, unknown>, orig: Record<string, unknown>, keys: readonly string[],
  subConfigs: readonly string[] = ['text_config', 'vision_config']): void {
  for (const k of keys) assert.deepEqual(saved[k], orig[k], k);
  for (const sub of subConfigs) {
    const a = saved[sub] as Record<string, unknown>;
    const b = orig[sub] as Record<string, unknown>;
    for (const k of Object.keys(b)) assert.deepEqual(a[k], b[k], `${sub}.${k}`);
    // HF's save_pretrained writes every field its config class has: a key it lacks is one we invented.
    for (const k of Object.keys(a)) assert.ok(k in b, `${sub}.${k} is not a field of HF's config`);
  }
}

/** Runs a commander command in-process; returns what it printed on stdout. */
export async function runCommand(cmd: Command, args: string[]): Promise<string> {
  const printed: string[] = [];
  const log = console.log;
  console.log = (...xs: unknown[]) => { printed.push(xs.join(' ')); };
  try {
    await cmd.exitOverride().parseAsync(args, { from: 'user' });
  } finally {
    console.log = log;
  }
  return printed.join('\n');
}

/** A PNG of seeded noise (a linear congruential generator), for tests that need image files. */
export async function writeNoiseImage(file: string, seed: number, width = 40, height = 36): Promise<string> {
  const data = Buffer.alloc(width * height * 3);
  let s = seed;
  for (let i = 0; i < data.length; i++) data[i] = (s = (s * 1103515245 + 12345) >>> 0) >>> 24;
  await sharp(data, { raw: { width, height, channels: 3 } }).png().toFile(file);
  return file;
}
