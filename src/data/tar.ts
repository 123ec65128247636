// Tar archives as WebDataset uses them: an index of the regular files in a shard (name, offset,
// size) for random access, and a writer of plain ustar archives.
//
// The index reads the 512-byte headers itself instead of streaming the archive through the `tar`
// package: random access needs each member's byte offset, which a streaming parser does not report,
// and skipping from header to header reads only the headers, never the images.
import fs from 'node:fs';

const BLOCK = 512;

/** A regular file inside an archive: its path and where its bytes are. */
export interface TarMember {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
}

export interface TarIndex {
  readonly members: TarMember[];
  /** Set when the archive ends early (a shard cut short by a failed download): what was wrong. */
  readonly truncated?: string;
}

function cString(buf: Uint8Array, start: number, length: number): string {
  let end = start;
  while (end < start + length && buf[end] !== 0) end++;
  return Buffer.from(buf.buffer, buf.byteOffset + start, end - start).toString('utf8');
}

/** A numeric header field: octal text, or GNU's base-256 for values too large for it. */
function numberField(buf: Uint8Array, start: number, length: number): number {
  if (buf[start]! & 0x80) {
    let v = buf[start]! & 0x7f;
    for (let i = start + 1; i < start + length; i++) v = v * 256 + buf[i]!;
    return v;
  }
  const text = cString(buf, start, length).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) return NaN;
  return parseInt(text, 8);
}

function checksumOk(h: Uint8Array): boolean {
  const stored = numberField(h, 148, 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return sum === stored;
}

/** The records of a pax extended header ("<len> <key>=<value>\n" ...). */
function parsePax(bytes: Uint8Array): Map<string, string> {
  const out = new Map<string, string>();
  const text = Buffer.from(bytes).toString('utf8');
  let pos = 0;
  while (pos < text.length) {
    const space = text.indexOf(' ', pos);
    if (space < 0) break;
    const len = parseInt(text.slice(pos, space), 10);
    if (!(len > 0)) break;
    const record = text.slice(space + 1, pos + len - 1);
    const eq = record.indexOf('=');
    if (eq > 0) out.set(record.slice(0, eq), record.slice(eq + 1));
    pos += len;
  }
  return out;
}

/**
 * Lists the regular files of a tar archive with their offsets. Pax and GNU long names are
 * followed; directories, links and global headers are skipped. A bad header checksum or a member
 * running past the end of the file stops the index there and is reported in `truncated` (the
 * members before it stay usable); a file that is not a tar archive at all is an error.
 */
export function indexTar(file: string): TarIndex {
  const fd = fs.openSync(file, 'r');
  try {
    const fileSize = fs.fstatSync(fd).size;
    const header = new Uint8Array(BLOCK);
    const members: TarMember[] = [];
    let pos = 0;
    let longName: string | undefined;
    let paxName: string | undefined;
    let paxSize: number | undefined;
    const readAt = (buf: Uint8Array, at: number): number => fs.readSync(fd, buf, 0, buf.length, at);
    while (pos + BLOCK <= fileSize) {
      if (readAt(header, pos) < BLOCK) break;
      if (header.every((b) => b === 0)) return { members }; // end-of-archive marker
      if (!checksumOk(header)) {
        const what = `bad header checksum at byte ${pos}`;
        if (pos === 0) throw new Error(`${file}: not a tar archive (${what})`);
        return { members, truncated: what };
      }
      const type = String.fromCharCode(header[156]!);
      const extension = type === 'x' || type === 'L' || type === 'g';
      const size = extension ? numberField(header, 124, 12) : paxSize ?? numberField(header, 124, 12);
      if (!Number.isFinite(size)) return { members, truncated: `bad size field at byte ${pos}` };
      const dataStart = pos + BLOCK;
      if (dataStart + size > fileSize) return { members, truncated: `member at byte ${pos} runs past the end of the file` };
      const next = dataStart + Math.ceil(size / BLOCK) * BLOCK;
      if (type === 'x' || type === 'L') {
        const body = new Uint8Array(size);
        readAt(body, dataStart);
        if (type === 'L') {
          longName = cString(body, 0, size);
        } else {
          const pax = parsePax(body);
          paxName = pax.get('path');
          const s = pax.get('size');
          paxSize = s !== undefined ? Number(s) : undefined;
        }
        pos = next;
        continue;
      }
      if (type === 'g') {
        pos = next;
        continue;
      }
      if (type === '0' || type === '\0' || type === '7') {
        let name = paxName ?? longName;
        if (name === undefined) {
          const base = cString(header, 0, 100);
          const ustar = cString(header, 257, 6) === 'ustar';
          const prefix = ustar ? cString(header, 345, 155) : '';
          name = prefix ? `${prefix}/${base}` : base;
        }
        members.push({ name, offset: dataStart, size });
      }
      longName = paxName = paxSize = undefined;
      pos = next;
    }
    return { members };
  } finally {
    fs.closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// Writing

function writeField(h: Uint8Array, start: number, length: number, text: string): void {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > length) throw new Error(`tar: '${text}' does not fit a ${length}-byte header field`);
  h.set(bytes, start);
}

function octal(h: Uint8Array, start: number, length: number, value: number): void {
  writeField(h, start, length, value.toString(8).padStart(length - 1, '0'));
}

/** Splits a path into ustar's prefix and name fields, or throws when it cannot fit. */
function splitName(name: string): [string, string] {
  if (Buffer.byteLength(name) <= 100) return ['', name];
  for (let i = name.indexOf('/'); i >= 0; i = name.indexOf('/', i + 1)) {
    const prefix = name.slice(0, i);
    const rest = name.slice(i + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100) return [prefix, rest];
  }
  throw new Error(`tar: member name too long for a ustar header: ${name}`);
}

/** The 512-byte ustar header of a regular file (mode 0644, mtime 0 so archives are reproducible). */
export function tarHeader(name: string, size: number): Uint8Array {
  const h = new Uint8Array(BLOCK);
  const [prefix, base] = splitName(name);
  writeField(h, 0, 100, base);
  octal(h, 100, 8, 0o644);
  octal(h, 108, 8, 0);
  octal(h, 116, 8, 0);
  octal(h, 124, 12, size);
  octal(h, 136, 12, 0);
  h[156] = '0'.charCodeAt(0);
  writeField(h, 257, 6, 'ustar');
  writeField(h, 263, 2, '00');
  writeField(h, 345, 155, prefix);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  writeField(h, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  return h;
}

/**
 * Writes a tar archive of the given files atomically (a temporary file renamed into place once
 * complete, so a reader never sees half a shard).
 */
export async function writeTar(file: string, entries: Iterable<{ name: string; data: Uint8Array }>): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  const handle = await fs.promises.open(tmp, 'w');
  try {
    const pad = new Uint8Array(BLOCK);
    for (const e of entries) {
      await handle.write(tarHeader(e.name, e.data.length));
      await handle.write(e.data);
      const rest = (BLOCK - (e.data.length % BLOCK)) % BLOCK;
      if (rest) await handle.write(pad, 0, rest);
    }
    await handle.write(new Uint8Array(2 * BLOCK));
    await handle.sync();
  } catch (e) {
    await handle.close();
    await fs.promises.rm(tmp, { force: true });
    throw e;
  }
  await handle.close();
  await fs.promises.rename(tmp, file);
}
