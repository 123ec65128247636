import { test, mock } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  SafetensorsFile, loadSafetensors, serializeSafetensors, writeSafetensors,
  f16BitsToF32, bf16BitsToF32, f32BitsToF16, f32BitsToBf16, MAX_HEADER_SIZE,
} from '../../src/io/safetensors.js';
import type { TensorToWrite } from '../../src/io/safetensors.js';
import { rng, findShared, sharedNotFound } from '../helpers.js';

const tmpDir = fs.mkdtempSync(path.join(os.tmpdir(), 'glimpse-st-'));
process.on('exit', () => fs.rmSync(tmpDir, { recursive: true, force: true }));
let fileCounter = 0;
const tmpFile = (bytes?: Uint8Array): string => {
  const f = path.join(tmpDir, `t${fileCounter++}.safetensors`);
  if (bytes) fs.writeFileSync(f, bytes);
  return f;
};

const bitsOf = (x: number): number => new Uint32Array(new Float32Array([x]).buffer)[0]!;
const floatOf = (u: number): number => new Float32Array(new Uint32Array([u]).buffer)[0]!;

/** A file image from a header (object or raw text) and data bytes, built without the module. */
function image(header: unknown, data: ArrayLike<number> = [], lengthField?: bigint): Uint8Array {
  const text = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const out = Buffer.alloc(8 + text.length + data.length);
  out.writeBigUInt64LE(lengthField ?? BigInt(text.length), 0);
  text.copy(out, 8);
  out.set(data, 8 + text.length);
  return out;
}

/** float16 value of bits h, computed from the definition. */
function f16Reference(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return mant ? NaN : sign * Infinity;
  return exp === 0 ? sign * mant * 2 ** -24 : sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

test('float16 decoding: known values and every bit pattern', () => {
  const known: [number, number][] = [
    [0x3c00, 1], [0xc000, -2], [0x7bff, 65504], [0x0001, 2 ** -24], [0x03ff, 1023 * 2 ** -24],
    [0x0400, 2 ** -14], [0x7c00, Infinity], [0xfc00, -Infinity], [0x3555, 0.333251953125],
  ];
  for (const [h, v] of known) assert.equal(f16BitsToF32(h), v, `0x${h.toString(16)}`);
  assert.ok(Object.is(f16BitsToF32(0x8000), -0));
  assert.ok(Number.isNaN(f16BitsToF32(0x7e00)) && Number.isNaN(f16BitsToF32(0xfc01)));
  for (let h = 0; h < 65536; h++) {
    const got = f16BitsToF32(h);
    const want = f16Reference(h);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(got), `0x${h.toString(16)}`);
    else assert.ok(Object.is(got, want), `0x${h.toString(16)}: ${got} vs ${want}`);
  }
});

test('float16 encoding rounds to nearest even, with overflow, subnormals and NaN', () => {
  for (let h = 0; h < 65536; h++) {
    if (Number.isNaN(f16Reference(h))) continue;
    assert.equal(f32BitsToF16(bitsOf(f16Reference(h))), h, `round trip 0x${h.toString(16)}`);
  }
  const cases: [number, number][] = [
    [1, 0x3c00], [-2, 0xc000], [65504, 0x7bff], [65519.99, 0x7bff], [65520, 0x7c00], [1e10, 0x7c00],
    [-1e10, 0xfc00], [2 ** -24, 0x0001], [2 ** -25, 0x0000], [2 ** -25 * 1.5, 0x0001], [3 * 2 ** -25, 0x0002],
    [5 * 2 ** -25, 0x0002], [1e-30, 0], [-1e-30, 0x8000], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02],
    [(2 ** -14) * (1 - 2 ** -12), 0x0400], [Infinity, 0x7c00],
  ];
  for (const [x, h] of cases) assert.equal(f32BitsToF16(bitsOf(x)), h, `${x}`);
  const nan = f32BitsToF16(0x7f800001);
  assert.ok((nan & 0x7c00) === 0x7c00 && (nan & 0x3ff) !== 0, 'signalling NaN stays NaN');

  // Random floats against a search over all finite halves (ties to the even bit pattern).
  const halves = Array.from({ length: 0x7c00 }, (_, h) => f16Reference(h));
  const r = rng(7);
  for (let i = 0; i < 5000; i++) {
    const x = floatOf(bitsOf((r() < 0.5 ? 1 : -1) * 2 ** (r() * 44 - 28)));
    const a = Math.abs(x);
    let lo = 0, hi = halves.length - 1;
    while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (halves[mid]! <= a) lo = mid; else hi = mid; }
    let want: number;
    if (a >= 65520) want = 0x7c00;
    else {
      const dl = a - halves[lo]!, dh = halves[hi]! - a;
      want = dl < dh ? lo : dh < dl ? hi : lo % 2 === 0 ? lo : hi;
    }
    assert.equal(f32BitsToF16(bitsOf(x)), want | (x < 0 ? 0x8000 : 0), `${x}`);
  }
});

test('bfloat16 conversions', () => {
  assert.equal(bf16BitsToF32(0x3f80), 1);
  assert.equal(bf16BitsToF32(0xc000), -2);
  assert.equal(bf16BitsToF32(0x4049), 3.140625);
  assert.equal(bf16BitsToF32(0x0001), 2 ** -133);
  assert.equal(bf16BitsToF32(0x7f80), Infinity);
  assert.ok(Number.isNaN(bf16BitsToF32(0x7fc0)));
  assert.equal(f32BitsToBf16(bitsOf(1)), 0x3f80);
  assert.equal(f32BitsToBf16(0x3f808000), 0x3f80, 'tie rounds down to even');
  assert.equal(f32BitsToBf16(0x3f818000), 0x3f82, 'tie rounds up to even');
  assert.equal(f32BitsToBf16(0x3f808001), 0x3f81);
  assert.equal(f32BitsToBf16(0x3f807fff), 0x3f80);
  assert.equal(f32BitsToBf16(0x7f7fffff), 0x7f80, 'largest float32 rounds to inf');
  assert.equal(f32BitsToBf16(0xff800000), 0xff80);
  assert.equal(f32BitsToBf16(0x00000001), 0x0000, 'tiny subnormal rounds to zero');
  const nan = f32BitsToBf16(0x7f800001);
  assert.ok((nan & 0x7f80) === 0x7f80 && (nan & 0x7f) !== 0, 'NaN stays NaN');
});

test('round trip of every dtype, 0-d and empty tensors, and metadata', () => {
  const f32 = new Float32Array([1.5, -0.1, 65504, 1e-7, -3e38, 0.3333]);
  const tensors: Record<string, TensorToWrite> = {
    f32: { shape: [2, 3], data: f32 },
    f16: { dtype: 'F16', shape: [6], data: f32 },
    bf16: { dtype: 'BF16', shape: [3, 2], data: f32 },
    f64: { shape: [2], data: new Float64Array([Math.PI, -1e300]) },
    i64: { shape: [3], data: new BigInt64Array([-(2n ** 63n), 2n ** 63n - 1n, 5n]) },
    i64_from_i32: { dtype: 'I64', shape: [2], data: new Int32Array([-7, 2 ** 31 - 1]) },
    i32: { shape: [1, 2], data: new Int32Array([-(2 ** 31), 12345]) },
    i16: { dtype: 'I16', shape: [2], data: new Int32Array([-32768, 32767]) },
    i8: { dtype: 'I8', shape: [2], data: new Int32Array([-128, 127]) },
    u8: { shape: [3], data: new Uint8Array([0, 128, 255]) },
    mask: { dtype: 'bool', shape: [3], data: new Uint8Array([1, 0, 1]) },
    scalar: { shape: [], data: new Float32Array([42]) },
    empty: { shape: [0, 4], data: new Float32Array(0) },
    empty_bool: { dtype: 'BOOL', shape: [2, 0], data: new Uint8Array(0) },
  };
  const metadata = { format: 'pt', note: 'ünïcode "quoted"' };
  const file = tmpFile();
  writeSafetensors(file, tensors, metadata);
  assert.deepEqual(fs.readdirSync(tmpDir).filter((f) => f.endsWith('.tmp')), [], 'no temporary file left');
  const bytes = fs.readFileSync(file);
  assert.deepEqual(bytes, serializeSafetensors(tensors, metadata));

  for (const loaded of [loadSafetensors(file), loadSafetensors(bytes)]) {
    const t = loaded.tensors;
    assert.deepEqual(loaded.metadata, metadata);
    assert.deepEqual(Object.keys(t).sort(), Object.keys(tensors).sort());
    assert.deepEqual(t.f32, { dtype: 'float32', shape: [2, 3], data: f32 });
    assert.deepEqual(t.f16!.data, Float32Array.from(f32, (x) => f16BitsToF32(f32BitsToF16(bitsOf(x)))));
    assert.deepEqual(t.bf16!.data, Float32Array.from(f32, (x) => bf16BitsToF32(f32BitsToBf16(bitsOf(x)))));
    assert.equal(t.f16!.dtype, 'float32');
    assert.deepEqual(t.f64, { dtype: 'float64', shape: [2], data: new Float64Array([Math.PI, -1e300]) });
    assert.deepEqual(t.i64, { dtype: 'int64', shape: [3], data: tensors.i64!.data });
    assert.deepEqual(t.i64_from_i32!.data, new BigInt64Array([-7n, 2n ** 31n - 1n]));
    assert.deepEqual(t.i32, { dtype: 'int32', shape: [1, 2], data: tensors.i32!.data });
    assert.deepEqual(t.i16, { dtype: 'int32', shape: [2], data: new Int32Array([-32768, 32767]) });
    assert.deepEqual(t.i8, { dtype: 'int32', shape: [2], data: new Int32Array([-128, 127]) });
    assert.deepEqual(t.u8, { dtype: 'uint8', shape: [3], data: new Uint8Array([0, 128, 255]) });
    assert.deepEqual(t.mask, { dtype: 'bool', shape: [3], data: new Uint8Array([1, 0, 1]) });
    assert.deepEqual(t.scalar, { dtype: 'float32', shape: [], data: new Float32Array([42]) });
    assert.deepEqual(t.empty, { dtype: 'float32', shape: [0, 4], data: new Float32Array(0) });
    assert.deepEqual(t.empty_bool, { dtype: 'bool', shape: [2, 0], data: new Uint8Array(0) });
  }
  // Writing what was read reproduces the same file (F16/BF16 excepted: they load as float32).
  const { tensors: back } = loadSafetensors(bytes);
  delete back.f16; delete back.bf16; delete back.i16; delete back.i8;
  const again = loadSafetensors(serializeSafetensors(back)).tensors;
  assert.deepEqual(again, back);

  // An existing file is replaced.
  writeSafetensors(file, { x: { shape: [1], data: new Int32Array([3]) } });
  assert.deepEqual(loadSafetensors(file).tensors.x!.data, new Int32Array([3]));
});

test('serialized bytes follow the reference layout', () => {
  const out = serializeSafetensors({
    b: { shape: [2], data: new Float32Array([1, 2]) },
    c: { shape: [3], data: new Uint8Array([7, 8, 9]) },
    a: { shape: [1], data: new BigInt64Array([5n]) },
  }, { format: 'pt' });
  // Sorted by dtype alignment (I64, F32, U8), metadata first, padded with spaces to 8 bytes.
  let header = '{"__metadata__":{"format":"pt"},'
    + '"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},'
    + '"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},'
    + '"c":{"dtype":"U8","shape":[3],"data_offsets":[16,19]}}';
  header += ' '.repeat((8 - (header.length % 8)) % 8);
  const want = Buffer.concat([
    Buffer.from([header.length, 0, 0, 0, 0, 0, 0, 0]), Buffer.from(header),
    Buffer.from([5, 0, 0, 0, 0, 0, 0, 0]), Buffer.from([0, 0, 0x80, 0x3f, 0, 0, 0, 0x40]), Buffer.from([7, 8, 9]),
  ]);
  assert.equal(header.length % 8, 0);
  assert.deepEqual(out, want);

  // Full dtype order, names compared bytewise within a dtype (integer-like names included).
  const one = (dtype: TensorToWrite['dtype'], data: TensorToWrite['data']) => ({ dtype, shape: [1], data });
  const all = serializeSafetensors({
    bool: one('BOOL', new Uint8Array([1])), u8: one('U8', new Uint8Array([1])), i8: one('I8', new Int32Array([1])),
    i16: one('I16', new Int32Array([1])), f16: one('F16', new Float32Array([1])), bf16: one('BF16', new Float32Array([1])),
    i32: one('I32', new Int32Array([1])), f32: one('F32', new Float32Array([1])), f64: one('F64', new Float64Array([1])),
    i64: one('I64', new BigInt64Array([1n])), '9': one('F32', new Float32Array([1])), '10': one('F32', new Float32Array([1])),
  });
  const n = Number(all.readBigUInt64LE(0));
  const text = all.subarray(8, 8 + n).toString();
  const order = [...text.matchAll(/"([^"]+)":\{"dtype"/g)].map((m) => m[1]);
  assert.deepEqual(order, ['i64', 'f64', '10', '9', 'f32', 'i32', 'bf16', 'f16', 'i16', 'i8', 'u8', 'bool']);
  assert.equal(n % 8, 0);
  assert.match(text, / *$/);
  assert.equal(all.length, 8 + n + 8 + 8 + 4 * 4 + 2 * 3 + 1 * 3);
});

test('reads hand-built files: padding, unordered entries, unaligned data', () => {
  const f32 = new Float32Array([1.25, -7, 3e-3]);
  const i64 = new BigInt64Array([-2n, 99n]);
  const data = Buffer.concat([Buffer.from(i64.buffer), Buffer.from(f32.buffer), Buffer.from([1, 0])]);
  // Entries listed out of offset order; header of odd length so the data is unaligned in memory.
  const header = '\t\n{"z":{"dtype":"BOOL","shape":[2],"data_offsets":[28,30]},'
    + '"y":{"data_offsets":[16,28],"shape":[3],"dtype":"F32"},'
    + '"x":{"dtype":"I64","shape":[2],"data_offsets":[0,16]},"__metadata__":{}} \r\n  ';
  assert.equal(header.length % 2, 1);
  const bytes = image(header, data);
  for (const f of [SafetensorsFile.fromBytes(bytes), SafetensorsFile.open(tmpFile(bytes))]) {
    assert.deepEqual(f.names, ['x', 'y', 'z']);
    assert.equal(f.dataStart, 8 + header.length);
    assert.deepEqual(f.info('y'), { name: 'y', dtype: 'F32', shape: [3], begin: 16, end: 28 });
    assert.deepEqual(f.read('y').data, f32);
    assert.deepEqual(f.read('x').data, i64);
    assert.deepEqual(f.read('z'), { dtype: 'bool', shape: [2], data: new Uint8Array([1, 0]) });
    assert.deepEqual(f.metadata, {});
    assert.deepEqual(f.readBytes('y'), new Uint8Array(f32.buffer));
    assert.throws(() => f.read('nope'), /no tensor named "nope"/);
    f.close();
  }
  assert.deepEqual(SafetensorsFile.fromBytes(image('{}')).names, []);
});

test('malformed files are rejected with messages naming the problem', () => {
  const t = (dtype: string, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });
  const ok = { a: t('F32', [2], [0, 8]) };
  const cases: [string, Uint8Array, RegExp][] = [
    ['truncated', new Uint8Array(5), /file is 5 bytes, too short for the 8-byte header length/],
    ['empty', new Uint8Array(0), /file is 0 bytes/],
    ['length past end', image(ok, new Uint8Array(8), 1000n), /header length 1000 is larger than the \d+ bytes after the length field/],
    ['length over limit', image(ok, new Uint8Array(8), BigInt(MAX_HEADER_SIZE) + 1n), /header length 100000001 exceeds the limit of 100000000 bytes/],
    ['length u64 max', image(ok, new Uint8Array(8), 2n ** 64n - 1n), /header length 18446744073709551615 exceeds the limit/],
    ['invalid JSON', image('{"a": {'), /header is not valid JSON/],
    ['invalid UTF-8', image(Buffer.from([0x7b, 0xff, 0x7d]).toString('latin1')), /header is not valid (UTF-8|JSON)/],
    ['non-UTF-8 bytes', (() => { const b = image('{"\u0000"}'); b[10] = 0xff; return b; })(), /header is not valid UTF-8/],
    ['array header', image('[1,2]'), /header must be a JSON object/],
    ['null header', image('null'), /header must be a JSON object/],
    ['metadata value', image({ __metadata__: { format: 1 } }), /__metadata__ value for key "format" must be a string, got 1/],
    ['metadata not map', image({ __metadata__: 'pt' }), /__metadata__ must be an object of strings/],
    ['entry not object', image({ a: [1] }), /tensor "a": entry must be an object/],
    ['unknown dtype', image({ a: t('U32', [1], [0, 4]) }, new Uint8Array(4)), /tensor "a": unsupported dtype "U32"/],
    ['fp8 dtype', image({ a: t('F8_E4M3', [1], [0, 1]) }, new Uint8Array(1)), /unsupported dtype "F8_E4M3"/],
    ['negative shape', image({ a: t('F32', [-1], [0, 4]) }, new Uint8Array(4)), /tensor "a": shape must be an array of non-negative integers, got \[-1\]/],
    ['fractional shape', image({ a: t('F32', [1.5], [0, 4]) }, new Uint8Array(4)), /shape must be an array of non-negative integers, got \[1.5\]/],
    ['string shape', image({ a: t('F32', ['2'], [0, 8]) }, new Uint8Array(8)), /shape must be an array/],
    ['missing shape', image({ a: { dtype: 'F32', data_offsets: [0, 0] } }), /shape must be an array/],
    ['shape overflow', image({ a: t('F32', [2 ** 40, 2 ** 40], [0, 4]) }, new Uint8Array(4)), /tensor "a" \(data_offsets \[0, 4\]\): element count of shape \[1099511627776, 1099511627776\] overflows/],
    ['bad offsets', image({ a: t('F32', [1], [4, 0]) }, new Uint8Array(4)), /tensor "a": data_offsets must be \[begin, end\] with 0 <= begin <= end, got \[4,0\]/],
    ['short offsets', image({ a: t('F32', [1], [0]) }, new Uint8Array(4)), /data_offsets must be \[begin, end\]/],
    ['not from zero', image({ a: t('F32', [1], [4, 8]) }, new Uint8Array(8)), /tensor "a" \(data_offsets \[4, 8\]\): the first tensor must start at offset 0/],
    ['gap', image({ a: t('F32', [1], [0, 4]), b: t('F32', [1], [8, 12]) }, new Uint8Array(12)), /tensor "b" \(data_offsets \[8, 12\]\) leaves a gap: bytes \[4, 8\) belong to no tensor/],
    ['overlap', image({ a: t('F32', [2], [0, 8]), b: t('F32', [2], [4, 12]) }, new Uint8Array(12)), /tensor "b" \(data_offsets \[4, 12\]\) overlaps tensor "a", which ends at 8/],
    ['out of file', image({ a: t('F32', [2], [0, 8]) }, new Uint8Array(4)), /tensor "a" \(data_offsets \[0, 8\]\) extends past the end of the file \(the data section has 4 bytes\)/],
    ['size mismatch', image({ a: t('F32', [3], [0, 8]) }, new Uint8Array(8)), /tensor "a" \(data_offsets \[0, 8\]\) holds 8 bytes but F32 of shape \[3\] needs 12/],
    ['trailing bytes', image(ok, new Uint8Array(11)), /3 trailing bytes after the last tensor \(data ends at 8 of 11\)/],
    ['data without tensors', image({}, new Uint8Array(2)), /2 trailing bytes after the last tensor/],
  ];
  for (const [what, bytes, pattern] of cases) {
    const file = tmpFile(bytes);
    assert.throws(() => SafetensorsFile.open(file), (e: Error) => {
      assert.ok(e.message.startsWith(`${file}: `), `${what}: message names the file: ${e.message}`);
      assert.match(e.message, pattern, what);
      return true;
    }, what);
    assert.throws(() => SafetensorsFile.fromBytes(bytes), pattern, what);
  }

  const bools = image({ ok: t('BOOL', [2], [0, 2]), m: t('BOOL', [3], [2, 5]) }, [1, 0, 0, 2, 1]);
  const f = SafetensorsFile.open(tmpFile(bools));
  assert.deepEqual(f.read('ok').data, new Uint8Array([1, 0]));
  assert.throws(() => f.read('m'), /BOOL tensor "m" has value 2 at element 1 \(byte 3 of the data section\); BOOL values must be 0 or 1/);
  f.close();
});

test('writer rejects invalid input', () => {
  const cases: [Record<string, TensorToWrite>, RegExp][] = [
    [{ a: { shape: [3], data: new Float32Array(2) } }, /tensor "a": data has 2 elements but shape \[3\] needs 3/],
    [{ a: { shape: [-1], data: new Float32Array(0) } }, /tensor "a": shape must be an array of non-negative integers/],
    [{ a: { dtype: 'I8', shape: [1], data: new Int32Array([200]) } }, /value 200 at element 0 does not fit I8/],
    [{ a: { dtype: 'BOOL', shape: [2], data: new Uint8Array([0, 3]) } }, /BOOL value at element 1 is 3/],
    [{ a: { dtype: 'F16', shape: [1], data: new Float64Array(1) } }, /cannot store Float64Array as F16/],
    [{ a: { dtype: 'Q4' as 'F32', shape: [1], data: new Float32Array(1) } }, /unknown dtype "Q4"/],
    [{ __metadata__: { shape: [1], data: new Float32Array(1) } }, /"__metadata__" is reserved/],
  ];
  for (const [tensors, pattern] of cases) assert.throws(() => serializeSafetensors(tensors), pattern);
  assert.throws(() => serializeSafetensors({}, { a: 1 as unknown as string }), /metadata value for key "a" must be a string/);
  const file = tmpFile();
  assert.throws(() => writeSafetensors(file, cases[0]![0]), /data has 2 elements/);
  assert.ok(!fs.existsSync(file));
  assert.deepEqual(fs.readdirSync(tmpDir).filter((f) => f.endsWith('.tmp')), []);
});

test('opening reads only the header; read() reads only the requested tensor', (t) => {
  const big = (v: number) => ({ shape: [1024], data: new Float32Array(1024).fill(v) });
  const file = tmpFile();
  writeSafetensors(file, { a: big(1), b: big(2), c: big(3) });
  const headerLength = Number(fs.readFileSync(file).readBigUInt64LE(0));
  const reads: { length: number; position: number }[] = [];
  const original = fs.readSync;
  t.mock.method(fs, 'readSync', (...args: unknown[]) => {
    reads.push({ length: args[3] as number, position: args[4] as number });
    return (original as (...a: unknown[]) => number)(...args);
  });
  const f = SafetensorsFile.open(file);
  assert.equal(reads.reduce((s, r) => s + r.length, 0), 8 + headerLength);
  reads.length = 0;
  const b = f.read('b');
  assert.deepEqual(reads, [{ length: 4096, position: 8 + headerLength + f.info('b').begin }]);
  assert.ok(b.data.every((v) => v === 2));
  // A file that shrinks under an open reader gives an error, not zeros.
  fs.truncateSync(file, f.dataStart + 100);
  assert.throws(() => f.read('c'), /unexpected end of file at byte \d+/);
  f.close();
  assert.throws(() => f.read('a'), /closed/);
  mock.restoreAll();
});

test('a failed write leaves the previous file untouched and no temporary file', (t) => {
  const file = tmpFile();
  writeSafetensors(file, { old: { shape: [2], data: new Int32Array([1, 2]) } });
  const before = fs.readFileSync(file);
  let calls = 0;
  const original = fs.writeSync;
  t.mock.method(fs, 'writeSync', (...args: unknown[]) => {
    if (++calls === 2) throw new Error('disk full (simulated)');
    return (original as (...a: unknown[]) => number)(...args);
  });
  assert.throws(() => writeSafetensors(file, { a: { shape: [3], data: new Float32Array(3) } }), /disk full/);
  mock.restoreAll();
  assert.ok(calls >= 2);
  assert.deepEqual(fs.readFileSync(file), before);
  assert.deepEqual(fs.readdirSync(tmpDir).filter((f) => f.endsWith('.tmp')), []);
});

test('a header length beyond a small file fails fast without allocating it', () => {
  const bytes = image('{}', [], 99_999_999n);
  const before = process.memoryUsage().arrayBuffers;
  assert.throws(() => SafetensorsFile.open(tmpFile(bytes)), /header length 99999999 is larger than the 2 bytes/);
  assert.ok(process.memoryUsage().arrayBuffers - before < 50_000_000);
});

/** The HF fixtures folder, or null when shared/ is absent. */
const findFixtures = (): string | null => findShared('fixtures/hf', 'README.md');

test('reads the Hugging Face fixture files', (t) => {
  const dir = findFixtures();
  if (!dir) return t.skip(sharedNotFound());
  const files = fs.readdirSync(dir).flatMap((d) => {
    const sub = path.join(dir, d);
    return fs.statSync(sub).isDirectory()
      ? fs.readdirSync(sub).filter((f) => f.endsWith('.safetensors')).map((f) => path.join(sub, f)) : [];
  });
  assert.ok(files.length >= 8, `found ${files.length} fixture files`);
  for (const file of files) {
    const f = SafetensorsFile.open(file);
    const header = JSON.parse(fs.readFileSync(file).subarray(8, f.dataStart).toString()) as Record<string, { shape: number[] }>;
    assert.deepEqual(new Set(f.names), new Set(Object.keys(header).filter((k) => k !== '__metadata__')));
    assert.ok(f.names.length > 0, file);
    for (const name of f.names) {
      const x = f.read(name);
      assert.deepEqual(x.shape, header[name]!.shape, `${file} ${name}`);
      assert.equal(x.data.length, x.shape.reduce((a, b) => a * b, 1));
      if (x.data instanceof Float32Array) assert.ok(x.data.every(Number.isFinite), `${file} ${name} finite`);
    }
    f.close();
  }
});
