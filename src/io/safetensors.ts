// Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
//   [u64 little-endian N][N bytes of JSON header, may be padded with whitespace][data section]
// The header maps tensor names to {dtype, shape, data_offsets: [begin, end]} (offsets relative
// to the data section) plus an optional "__metadata__" map of string to string. Readers here
// apply the reference implementation's checks and report every defect with the file, tensor
// and offsets involved. Files are read lazily: opening reads only the header, and each
// tensor is read on demand.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { allocHost } from '../tensor/dtype.js';
import type { DType, TypedArray } from '../tensor/dtype.js';

export type SafetensorsDType = 'F32' | 'F16' | 'BF16' | 'F64' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** One header entry. `begin`/`end` are byte offsets relative to the data section, as in the file. */
export interface TensorInfo {
  readonly name: string;
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

/** A tensor as the engine holds it on the host (see src/tensor/dtype.ts). */
export interface HostTensor {
  dtype: DType;
  shape: number[];
  data: TypedArray;
}

/**
 * A tensor to write. `dtype` is the stored type (or an engine dtype, mapped to its natural
 * stored type); when omitted it follows the array: Float32Array→F32, Float64Array→F64,
 * Int32Array→I32, BigInt64Array→I64, Uint8Array→U8. Conversions allowed on request:
 * Float32Array→F16/BF16 (round to nearest even), Int32Array→I64/I16/I8 (range-checked),
 * Uint8Array→BOOL (values must be 0/1).
 */
export interface TensorToWrite {
  dtype?: SafetensorsDType | DType;
  shape: readonly number[];
  data: TypedArray;
}

export const MAX_HEADER_SIZE = 100_000_000;

// Element sizes, in the reference's dtype order (ascending alignment): the writer sorts by
// descending position here, then by name, exactly as the reference does.
const DTYPE_SIZE: Record<SafetensorsDType, number> = {
  BOOL: 1, U8: 1, I8: 1, I16: 2, F16: 2, BF16: 2, I32: 4, F32: 4, F64: 8, I64: 8,
};
const DTYPE_RANK = Object.fromEntries(Object.keys(DTYPE_SIZE).map((d, i) => [d, i])) as Record<SafetensorsDType, number>;
const ENGINE_DTYPE: Record<SafetensorsDType, DType> = {
  F32: 'float32', F16: 'float32', BF16: 'float32', F64: 'float64',
  I64: 'int64', I32: 'int32', I16: 'int32', I8: 'int32', U8: 'uint8', BOOL: 'bool',
};
const STORED_DTYPE: Record<DType, SafetensorsDType> = {
  float32: 'F32', float64: 'F64', int32: 'I32', int64: 'I64', uint8: 'U8', bool: 'BOOL',
};

function isSafetensorsDType(s: unknown): s is SafetensorsDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, s);
}

// Typed arrays use host byte order; the format is little-endian. Every supported Node
// platform but s390x is little-endian, so we refuse rather than carry a byte-swapping path.
function requireLittleEndian(): void {
  if (os.endianness() !== 'LE') throw new Error('safetensors: big-endian hosts are not supported');
}

// ---------------------------------------------------------------------------------------------
// Half-precision conversions, exact and bit-level (NaN payloads survive decoding).

let f16Table: Uint32Array | null = null;

/** float32 bit patterns of all 65536 float16 values. */
function f16ToF32Table(): Uint32Array {
  if (f16Table) return f16Table;
  const t = new Uint32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >> 10) & 0x1f;
    let mant = h & 0x3ff;
    if (exp === 0x1f) t[h] = sign | 0x7f800000 | (mant << 13);
    else if (exp !== 0) t[h] = sign | ((exp + 112) << 23) | (mant << 13);
    else if (mant === 0) t[h] = sign;
    else {
      // Subnormal: shift the leading one into the implicit bit position.
      let e = 113;
      while ((mant & 0x400) === 0) { mant <<= 1; e--; }
      t[h] = sign | (e << 23) | ((mant & 0x3ff) << 13);
    }
  }
  return (f16Table = t);
}

/** float32 bit pattern → float16 bits, rounding to nearest even; NaN stays NaN. */
export function f32BitsToF16(u: number): number {
  const sign = (u >>> 16) & 0x8000;
  const exp = (u >>> 23) & 0xff;
  const mant = u & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 | (mant >>> 13) : 0);
  const e = exp - 112;
  if (e >= 31) return sign | 0x7c00;
  if (e >= 1) {
    let h = (e << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1))) h++; // a carry into the exponent is right, up to inf
    return sign | h;
  }
  // Result is subnormal (or zero): count units of 2^-24.
  const shift = 14 - e;
  if (exp === 0 || shift > 24) return sign;
  const m = mant | 0x800000;
  let h = m >>> shift;
  const rest = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (h & 1))) h++;
  return sign | h;
}

/** float32 bit pattern → bfloat16 bits, rounding to nearest even; NaN stays NaN. */
export function f32BitsToBf16(u: number): number {
  if ((u & 0x7fffffff) > 0x7f800000) return (u >>> 16) | 0x40;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

const scratch = new Uint32Array(1);
const scratchF32 = new Float32Array(scratch.buffer);

export function f16BitsToF32(h: number): number {
  scratch[0] = f16ToF32Table()[h & 0xffff]!;
  return scratchF32[0]!;
}

export function bf16BitsToF32(h: number): number {
  scratch[0] = (h & 0xffff) << 16;
  return scratchF32[0]!;
}

// ---------------------------------------------------------------------------------------------
// Reading

/** Where the bytes come from: a file descriptor or an in-memory buffer. */
interface ByteSource {
  readonly size: number;
  /** Fills `dst` from absolute position `pos`; throws if the source ends first. */
  readInto(dst: Uint8Array, pos: number): void;
  close(): void;
}

class FileSource implements ByteSource {
  readonly size: number;
  private fd: number | null;
  constructor(readonly file: string) {
    this.fd = fs.openSync(file, 'r');
    try {
      this.size = fs.fstatSync(this.fd).size;
    } catch (e) {
      fs.closeSync(this.fd);
      throw e;
    }
  }
  readInto(dst: Uint8Array, pos: number): void {
    if (this.fd === null) throw new Error(`${this.file}: safetensors file is closed`);
    for (let done = 0; done < dst.length;) {
      const chunk = Math.min(dst.length - done, 1 << 30); // readSync caps a single read below 2 GiB
      const n = fs.readSync(this.fd, dst, done, chunk, pos + done);
      if (n === 0) throw new Error(`${this.file}: unexpected end of file at byte ${pos + done} (was the file truncated?)`);
      done += n;
    }
  }
  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

class MemorySource implements ByteSource {
  constructor(private readonly bytes: Uint8Array) {}
  get size(): number { return this.bytes.length; }
  readInto(dst: Uint8Array, pos: number): void {
    dst.set(this.bytes.subarray(pos, pos + dst.length));
  }
  close(): void {}
}

export class SafetensorsFile {
  /** Tensors in file order (ascending offsets). */
  readonly tensors: readonly TensorInfo[];
  readonly metadata: Readonly<Record<string, string>>;
  /** Absolute position of the data section: 8 + header length. */
  readonly dataStart: number;
  private readonly byName: Map<string, TensorInfo>;

  private constructor(private readonly source: ByteSource, readonly label: string) {
    ({ tensors: this.tensors, metadata: this.metadata, dataStart: this.dataStart } = parseHeader(source, label));
    this.byName = new Map(this.tensors.map((t) => [t.name, t]));
  }

  /** Opens a file and validates its header; tensor data is read only by read(). Call close() when done. */
  static open(file: string): SafetensorsFile {
    const source = new FileSource(file);
    try {
      return new SafetensorsFile(source, file);
    } catch (e) {
      source.close();
      throw e;
    }
  }

  /** Parses an in-memory safetensors image (the bytes are not copied). */
  static fromBytes(bytes: Uint8Array, label = '<buffer>'): SafetensorsFile {
    return new SafetensorsFile(new MemorySource(bytes), label);
  }

  get names(): string[] {
    return this.tensors.map((t) => t.name);
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  info(name: string): TensorInfo {
    const t = this.byName.get(name);
    if (!t) throw new Error(`${this.label}: no tensor named ${JSON.stringify(name)}`);
    return t;
  }

  /** The stored little-endian bytes of one tensor. */
  readBytes(name: string): Uint8Array {
    const t = this.info(name);
    const out = new Uint8Array(t.end - t.begin);
    this.source.readInto(out, this.dataStart + t.begin);
    return out;
  }

  /** Reads and decodes one tensor into a fresh, aligned host array. */
  read(name: string): HostTensor {
    requireLittleEndian();
    const t = this.info(name);
    const n = t.shape.reduce((a, b) => a * b, 1);
    const dtype = ENGINE_DTYPE[t.dtype];
    const pos = this.dataStart + t.begin;
    const readAs = <A extends TypedArray | Uint16Array | Int16Array | Int8Array>(out: A): A => {
      this.source.readInto(new Uint8Array(out.buffer), pos);
      return out;
    };
    let data: TypedArray;
    if (t.dtype === 'F16' || t.dtype === 'BF16') {
      const raw = readAs(new Uint16Array(n));
      const bits = new Uint32Array(n);
      if (t.dtype === 'BF16') for (let i = 0; i < n; i++) bits[i] = raw[i]! << 16;
      else for (let i = 0, table = f16ToF32Table(); i < n; i++) bits[i] = table[raw[i]!]!;
      data = new Float32Array(bits.buffer);
    } else if (t.dtype === 'I16' || t.dtype === 'I8') {
      data = new Int32Array(readAs(t.dtype === 'I16' ? new Int16Array(n) : new Int8Array(n)));
    } else {
      data = readAs(allocHost(dtype, n));
      const bad = t.dtype === 'BOOL' ? (data as Uint8Array).findIndex((v) => v > 1) : -1;
      if (bad >= 0) {
        throw new Error(`${this.label}: BOOL tensor ${JSON.stringify(name)} has value ${data[bad]} at element ${bad} (byte ${t.begin + bad} of the data section); BOOL values must be 0 or 1`);
      }
    }
    return { dtype, shape: [...t.shape], data };
  }

  /** Reads every tensor (convenient for small files; use read() to stay lazy). */
  readAll(): Record<string, HostTensor> {
    return Object.fromEntries(this.tensors.map((t) => [t.name, this.read(t.name)]));
  }

  close(): void {
    this.source.close();
  }
}

/** Reads the header (and nothing else) and checks it against the reference's rules. */
function parseHeader(source: ByteSource, label: string): { tensors: TensorInfo[]; metadata: Record<string, string>; dataStart: number } {
  const fail: (msg: string) => never = (msg) => { throw new Error(`${label}: ${msg}`); };
  if (source.size < 8) fail(`file is ${source.size} bytes, too short for the 8-byte header length`);
  const lenBytes = new Uint8Array(8);
  source.readInto(lenBytes, 0);
  const n = new DataView(lenBytes.buffer).getBigUint64(0, true);
  // Both checks come before allocating: a corrupt length must not cost memory.
  if (n > BigInt(MAX_HEADER_SIZE)) fail(`header length ${n} exceeds the limit of ${MAX_HEADER_SIZE} bytes`);
  if (n > BigInt(source.size - 8)) fail(`header length ${n} is larger than the ${source.size - 8} bytes after the length field`);
  const headerBytes = new Uint8Array(Number(n));
  source.readInto(headerBytes, 8);
  const dataStart = 8 + headerBytes.length;

  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes));
  } catch (e) {
    fail(e instanceof SyntaxError ? `header is not valid JSON: ${e.message}` : 'header is not valid UTF-8');
  }
  if (!isObject(header)) fail('header must be a JSON object');

  const metadata: [string, string][] = [];
  const tensors: TensorInfo[] = [];
  for (const [name, entry] of Object.entries(header as Record<string, unknown>)) {
    if (name !== '__metadata__') {
      tensors.push(parseEntry(name, entry, fail));
      continue;
    }
    if (!isObject(entry)) fail(`__metadata__ must be an object of strings, got ${JSON.stringify(entry)}`);
    for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
      if (typeof v !== 'string') fail(`__metadata__ value for key ${JSON.stringify(k)} must be a string, got ${JSON.stringify(v)}`);
      metadata.push([k, v as string]);
    }
  }

  // The data must tile [0, dataLength) exactly, in order of begin offset.
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end);
  const dataLength = source.size - dataStart;
  let pos = 0;
  let prev = '';
  for (const t of tensors) {
    const where = `tensor ${JSON.stringify(t.name)} (data_offsets [${t.begin}, ${t.end}])`;
    if (t.begin > pos) {
      fail(pos === 0 ? `${where}: the first tensor must start at offset 0` : `${where} leaves a gap: bytes [${pos}, ${t.begin}) belong to no tensor`);
    }
    if (t.begin < pos) fail(`${where} overlaps tensor ${JSON.stringify(prev)}, which ends at ${pos}`);
    const nbytes = elementCount(t.shape, fail, where) * DTYPE_SIZE[t.dtype];
    if (t.end - t.begin !== nbytes) {
      fail(`${where} holds ${t.end - t.begin} bytes but ${t.dtype} of shape [${t.shape.join(', ')}] needs ${nbytes}`);
    }
    if (t.end > dataLength) fail(`${where} extends past the end of the file (the data section has ${dataLength} bytes)`);
    pos = t.end;
    prev = t.name;
  }
  if (pos !== dataLength) fail(`${dataLength - pos} trailing bytes after the last tensor (data ends at ${pos} of ${dataLength})`);
  return { tensors, metadata: Object.fromEntries(metadata), dataStart };
}

function isObject(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseEntry(name: string, entry: unknown, fail: (msg: string) => never): TensorInfo {
  const where = `tensor ${JSON.stringify(name)}`;
  if (!isObject(entry)) fail(`${where}: entry must be an object with dtype, shape and data_offsets`);
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (!isSafetensorsDType(dtype)) {
    fail(`${where}: unsupported dtype ${JSON.stringify(dtype)} (supported: ${Object.keys(DTYPE_SIZE).join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every(isIndex)) {
    fail(`${where}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isIndex) || offsets[1]! < offsets[0]!) {
    fail(`${where}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(offsets)}`);
  }
  const [begin, end] = offsets as number[];
  return Object.freeze({ name, dtype: dtype as SafetensorsDType, shape: Object.freeze([...(shape as number[])]), begin: begin!, end: end! });
}

function isIndex(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** Product of the dims; overflow past 2^53 is an error, not a silently wrong size. */
function elementCount(shape: readonly number[], fail: (msg: string) => never, where: string): number {
  let n = 1;
  for (const d of shape) {
    n *= d;
    if (!Number.isSafeInteger(n)) fail(`${where}: element count of shape [${shape.join(', ')}] overflows`);
  }
  return n;
}

/** Reads every tensor and the metadata of a file or an in-memory image. */
export function loadSafetensors(source: string | Uint8Array): { tensors: Record<string, HostTensor>; metadata: Record<string, string> } {
  const f = typeof source === 'string' ? SafetensorsFile.open(source) : SafetensorsFile.fromBytes(source);
  try {
    return { tensors: f.readAll(), metadata: { ...f.metadata } };
  } finally {
    f.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

interface PlannedTensor {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Encoded bytes, produced when written so conversions don't all live in memory at once. */
  bytes: () => Uint8Array;
}

const bytesOf = (a: ArrayBufferView): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function encode(name: string, t: TensorToWrite): PlannedTensor {
  const fail: (msg: string) => never = (msg) => { throw new Error(`safetensors: tensor ${JSON.stringify(name)}: ${msg}`); };
  if (!t || !Array.isArray(t.shape) || !t.shape.every(isIndex)) fail(`shape must be an array of non-negative integers, got ${JSON.stringify(t?.shape)}`);
  const n = elementCount(t.shape, fail, 'shape');
  const data = t.data;
  const natural: SafetensorsDType = data instanceof Float32Array ? 'F32' : data instanceof Float64Array ? 'F64'
    : data instanceof Int32Array ? 'I32' : data instanceof BigInt64Array ? 'I64' : data instanceof Uint8Array ? 'U8'
    : fail('data must be a Float32Array, Float64Array, Int32Array, BigInt64Array or Uint8Array');
  if (data.length !== n) fail(`data has ${data.length} elements but shape [${t.shape.join(', ')}] needs ${n}`);
  const dtype = t.dtype === undefined ? natural : isSafetensorsDType(t.dtype) ? t.dtype
    : Object.prototype.hasOwnProperty.call(STORED_DTYPE, t.dtype) ? STORED_DTYPE[t.dtype]
    : fail(`unknown dtype ${JSON.stringify(t.dtype)}`);

  let bytes = (): Uint8Array => bytesOf(data);
  if (data instanceof Float32Array && (dtype === 'F16' || dtype === 'BF16')) {
    const cvt = dtype === 'F16' ? f32BitsToF16 : f32BitsToBf16;
    const bits = new Uint32Array(data.buffer, data.byteOffset, n);
    bytes = () => { const out = new Uint16Array(n); for (let i = 0; i < n; i++) out[i] = cvt(bits[i]!); return bytesOf(out); };
  } else if (data instanceof Int32Array && dtype === 'I64') {
    bytes = () => { const out = new BigInt64Array(n); for (let i = 0; i < n; i++) out[i] = BigInt(data[i]!); return bytesOf(out); };
  } else if (data instanceof Int32Array && (dtype === 'I16' || dtype === 'I8')) {
    const limit = dtype === 'I16' ? 32768 : 128;
    const i = data.findIndex((v) => v < -limit || v >= limit);
    if (i >= 0) fail(`value ${data[i]} at element ${i} does not fit ${dtype}`);
    bytes = () => bytesOf(dtype === 'I16' ? new Int16Array(data) : new Int8Array(data));
  } else if (data instanceof Uint8Array && dtype === 'BOOL') {
    const i = data.findIndex((v) => v > 1);
    if (i >= 0) fail(`BOOL value at element ${i} is ${data[i]}; BOOL values must be 0 or 1`);
  } else if (dtype !== natural) {
    fail(`cannot store ${data.constructor.name} as ${dtype}`);
  }
  return { name, dtype, shape: [...t.shape], bytes };
}

/** Validates, orders and lays out the tensors; returns the 8-byte length + padded header. */
function plan(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): { head: Uint8Array; items: PlannedTensor[] } {
  requireLittleEndian();
  const items = Object.entries(tensors).map(([name, t]) => {
    if (name === '__metadata__') throw new Error('safetensors: "__metadata__" is reserved and cannot name a tensor');
    return encode(name, t);
  });
  // Reference order: descending dtype alignment, then name by code point (Rust string order).
  const byCodePoint = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));
  items.sort((a, b) => DTYPE_RANK[b.dtype] - DTYPE_RANK[a.dtype] || byCodePoint(a.name, b.name));

  // JSON is assembled by hand because JS objects enumerate integer-like keys first.
  const object = (entries: [string, string][]) => `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;
  const entries: [string, string][] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort(byCodePoint);
    for (const k of keys) {
      if (typeof metadata[k] !== 'string') throw new Error(`safetensors: metadata value for key ${JSON.stringify(k)} must be a string`);
    }
    entries.push(['__metadata__', object(keys.map((k) => [k, JSON.stringify(metadata[k])]))]);
  }
  let offset = 0;
  for (const it of items) {
    const end = offset + it.shape.reduce((a, b) => a * b, 1) * DTYPE_SIZE[it.dtype];
    entries.push([it.name, JSON.stringify({ dtype: it.dtype, shape: it.shape, data_offsets: [offset, end] })]);
    offset = end;
  }
  const json = Buffer.from(object(entries), 'utf8');
  const n = Math.ceil(json.length / 8) * 8;
  if (n > MAX_HEADER_SIZE) throw new Error(`safetensors: header of ${n} bytes exceeds the limit of ${MAX_HEADER_SIZE}`);
  const head = Buffer.alloc(8 + n, 0x20);
  head.writeBigUInt64LE(BigInt(n), 0);
  json.copy(head, 8);
  return { head, items };
}

/** The complete safetensors image of `tensors` in memory. */
export function serializeSafetensors(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Buffer {
  const { head, items } = plan(tensors, metadata);
  return Buffer.concat([head, ...items.map((it) => it.bytes())]);
}

/**
 * Writes `tensors` to `file` atomically: the data goes to a temporary file in the same
 * directory, is flushed to disk, then renamed over `file`, so readers never see a partial file.
 */
export function writeSafetensors(file: string, tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): void {
  const { head, items } = plan(tensors, metadata);
  const dir = path.dirname(path.resolve(file));
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  let fd: number | null = fs.openSync(tmp, 'wx');
  try {
    writeAll(fd, head);
    for (const it of items) writeAll(fd, it.bytes());
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, file);
  } catch (e) {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    throw e;
  }
  // Persist the rename itself; directories cannot be opened for fsync on every platform.
  try {
    const dfd = fs.openSync(dir, 'r');
    try { fs.fsyncSync(dfd); } finally { fs.closeSync(dfd); }
  } catch { /* best effort */ }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length;) {
    done += fs.writeSync(fd, bytes, done, Math.min(bytes.length - done, 1 << 30));
  }
}
