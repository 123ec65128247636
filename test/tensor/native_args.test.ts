// The native addon's argument decoding (one typed descriptor per kernel, native/common.h) and its
// op code tables (native/codes.h) against the TypeScript ones (src/tensor/backends/native/codes.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { loadAddon } from '../../src/tensor/backends/native/addon.js';
import {
  ACTIVATION_CODE, BINARY_CODE, DTYPE_CODE, REDUCE_CODE, UNARY_CODE, codeMismatch,
} from '../../src/tensor/backends/native/codes.js';

const addon = loadAddon();
const skip = addon ? false : 'the native addon is not built';
const f = (k: number) => new Float32Array(k);

/** A table's names in code order, as the addon exports them. */
function names(table: Record<string, number>): string[] {
  return Object.entries(table).sort((a, b) => a[1] - b[1]).map(([name]) => name);
}

const tsCodes = () => ({
  dtype: names(DTYPE_CODE), unary: names(UNARY_CODE), activation: names(ACTIVATION_CODE),
  binary: names(BINARY_CODE), reduce: names(REDUCE_CODE),
});

test('the addon exports the code tables TypeScript uses, name for name', { skip }, () => {
  const codes = (addon as unknown as { codes: Record<string, string[]> }).codes;
  assert.deepEqual({ ...codes }, tsCodes());
  assert.equal(codeMismatch(codes), null);
  assert.ok(Object.isFrozen(codes) && Object.isFrozen(codes.binary));
});

test('codeMismatch names the table and the code that differ', () => {
  assert.equal(codeMismatch(tsCodes()), null);
  const swapped = { ...tsCodes(), binary: names(BINARY_CODE).map((n) => (n === 'and' ? 'or' : n === 'or' ? 'and' : n)) };
  assert.match(codeMismatch(swapped)!, /binary 'or' is code 13 in the addon but 14 in TypeScript/);
  const extra = { ...tsCodes(), unary: [...names(UNARY_CODE), 'cube'] };
  assert.match(codeMismatch(extra)!, /unary code 19 is 'cube' in the addon, which TypeScript does not have/);
  const short = { ...tsCodes(), reduce: names(REDUCE_CODE).slice(0, 4) };
  assert.match(codeMismatch(short)!, /reduce 'argmin' \(code 4 in TypeScript\) is missing from the addon/);
  const { dtype: _, ...noDtype } = tsCodes();
  assert.match(codeMismatch(noDtype)!, /no 'dtype' code table/);
  assert.match(codeMismatch({ ...tsCodes(), scan: ['cumsum'] })!, /'scan' code table that TypeScript does not have/);
  assert.match(codeMismatch(undefined)!, /no 'dtype' code table/);
});

test('a wrong argument count names the kernel and lists its arguments', { skip }, () => {
  assert.throws(() => addon!.reduce!(0, f(12), 0, 2, 3, 2),
    /^Error: reduce: expected 7 arguments \(op, x, xOffset, outer, n, inner, out\), got 6$/);
  assert.throws(() => addon!.softmax!(f(10), 0, f(10), 2, 5, false, 'extra'), /softmax: expected 6 arguments .*, got 7/);
  assert.throws(() => addon!.numThreads!(1), /numThreads: expected 0 arguments \(\), got 1/);
});

test('a wrong argument type names the kernel, the argument and its position', { skip }, () => {
  const e = (re: RegExp) => (err: unknown) => err instanceof Error && !(err instanceof RangeError) && re.test(err.message);
  assert.throws(() => addon!.reduce!(0, f(12), 'zero', 2, 3, 2, f(4)),
    e(/^reduce: xOffset must be an integer \(argument 3 of 7\)$/));
  assert.throws(() => addon!.softmax!(f(10), 0, f(10), 2, 5, 1), e(/^softmax: log must be a boolean \(argument 6 of 6\)$/));
  assert.throws(() => addon!.layerNorm!(f(10), 0, null, 0, null, 0, 2, 5, '1e-5', f(10), f(2), f(2)),
    e(/^layerNorm: eps must be a number \(argument 9 of 12\)$/));
  assert.throws(() => addon!.ewUnary!(0, f(8), 0, 1, [8], f(8)), e(/^ewUnary: xStrides must be an array of integers/));
  assert.throws(() => addon!.ewUnary!(0, f(8), 0, [1, 'a'], [8], f(8)), e(/xStrides must be an array of integers/));
  // Arrays: any typed array, a required type, or also null.
  assert.throws(() => addon!.ewUnary!(0, [1, 2], 0, [1], [2], f(2)), e(/^ewUnary: x must be a typed array \(argument 2 of 6\)$/));
  assert.throws(() => addon!.matmul!(f(9), 0, [9, 3, 1], [1], 0, [9, 3, 1], f(9), 1, 3, 3, 3),
    e(/^matmul: b must be a typed array, a Float32Array \(argument 4 of 11\)$/));
  assert.throws(() => addon!.matmul!(f(9), 0, [9, 3, 1], new Float64Array(9), 0, [9, 3, 1], f(9), 1, 3, 3, 3),
    e(/^matmul: b must be a Float32Array \(argument 4 of 11\)$/));
  assert.throws(() => addon!.matmul!(f(9), 0, [9, 3, 1], null, 0, [9, 3, 1], f(9), 1, 3, 3, 3), e(/b must be a typed array/));
  assert.throws(() => addon!.layerNorm!(f(10), 0, new Int32Array(5), 0, null, 0, 2, 5, 1e-5, f(10), f(2), f(2)),
    e(/^layerNorm: gamma must be a Float32Array or null \(argument 3 of 12\)$/));
  assert.throws(() => addon!.gather!(f(4), 0, f(4), 0, 1, 1, 4, 4, f(4)),
    e(/^gather: index must be an Int32Array \(argument 3 of 9\)$/));
  // Codes: out of their table (an optional one also takes -1, none).
  assert.throws(() => addon!.reduce!(5, f(12), 0, 2, 3, 2, f(4)), e(/^reduce: op: unknown reduce op code 5 \(argument 1 of 7\)$/));
  assert.throws(() => addon!.ewUnaryGrad!(-1, f(4), 0, [1], f(4), 0, [1], [4], f(4)), e(/unknown activation code -1/));
  assert.throws(() => addon!.ewCopy!(6, f(4), 0, [1], 0, f(4), 0, [1], [4]), e(/^ewCopy: dstDtype: unknown dtype code 6/));
  assert.throws(() => addon!.biasActivation!(f(4), 0, f(2), 0, -2, 2, 2, null, f(4)), e(/act: unknown activation code -2/));
  addon!.biasActivation!(f(4), 0, f(2), 0, -1, 2, 2, null, f(4));
  addon!.biasActivation!(f(4), 0, f(2), 0, -1, 2, 2, undefined, f(4));
});

test('index errors stay RangeErrors, named by the kernel', { skip }, () => {
  assert.throws(() => addon!.indexSelect!(f(4), 0, new Int32Array([0, 5]), 0, 1, 2, 1, 4, 1, f(2)),
    (err: unknown) => err instanceof RangeError && /^indexSelect: index 5 is out of range/.test(err.message));
});
