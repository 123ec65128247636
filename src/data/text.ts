// Text corpora for language-model pretraining: documents of plain English prose. The built-in one
// is Debian's package descriptions (scripts/install-corpus.sh puts the Translation-en index of a
// release in a system folder); plain .txt files and folders of them work the same way. A corpus
// splits into train and val by a hash, so the held-out part is fixed without a file listing it.
import fs from 'node:fs';
import path from 'node:path';
import { mixSeed } from './common.js';

/** Where scripts/install-corpus.sh puts Translation-en, unless GLIMPSE_CORPUS_DIR names another folder. */
export const DEBIAN_DESCRIPTIONS_DIR = '/usr/share/datasets/debian-descriptions';

export type TextSplit = 'train' | 'val' | 'all';

export interface TextCorpus {
  /** What the corpus is, for logs and reports: `debian-descriptions(train)`, `notes.txt(val)`. */
  readonly name: string;
  /** The spec it was opened from, so it can be opened again. */
  readonly spec: string;
  readonly split: TextSplit;
  readonly documents: readonly string[];
}

export interface OpenTextCorpusOptions {
  /** The split when the spec names none (default 'all'). */
  split?: TextSplit;
  /** The fraction of documents held out as 'val' (default 0.02). */
  valFraction?: number;
  /** Keeps the first n documents of the split (after the split, so train and val stay disjoint). */
  maxDocuments?: number;
  /** The folder of 'debian-descriptions' (default $GLIMPSE_CORPUS_DIR, else /usr/share/datasets/debian-descriptions). */
  root?: string;
}

/** One package's description from a Translation-<lang> index. */
export interface DebianDescription {
  readonly package: string;
  readonly descriptionMd5: string;
  /** The one-line summary (the first line of Description-<lang>). */
  readonly synopsis: string;
  /** The long description's paragraphs, each reflowed to plain text (verbatim lines kept on their own lines). */
  readonly paragraphs: readonly string[];
}

/** A description as one document: the synopsis, then each paragraph after a blank line. */
export function descriptionText(d: DebianDescription): string {
  return [d.synopsis, ...d.paragraphs].join('\n\n');
}

/**
 * Parses a Translation-<lang> index (deb822 stanzas of Package, Description-md5 and
 * Description-<lang>). In the description's continuation lines one leading space is syntax; a
 * line ' .' is a paragraph break; a line with two or more leading spaces is shown verbatim (code,
 * lists), so it keeps its own line while ordinary lines join into a paragraph with spaces.
 * `where` names the file in errors.
 */
export function readDebianDescriptions(text: string, where = 'Translation file'): DebianDescription[] {
  const out: DebianDescription[] = [];
  const lines = text.split('\n');
  let stanza: { line: number; fields: Map<string, string[]> } | null = null;
  let current: string[] | null = null; // the field that continuation lines extend

  const finish = (): void => {
    if (!stanza) return;
    const { fields, line } = stanza;
    stanza = null;
    current = null;
    const pkg = fields.get('package')?.[0]?.trim();
    const descriptionKey = [...fields.keys()].find((k) => k.startsWith('description-') && k !== 'description-md5');
    if (!pkg) throw new Error(`${where}: the stanza at line ${line} has no Package field`);
    if (!descriptionKey) throw new Error(`${where}: package ${pkg} (line ${line}) has no Description-<lang> field`);
    const [first, ...rest] = fields.get(descriptionKey)!;
    out.push({
      package: pkg,
      descriptionMd5: fields.get('description-md5')?.[0]?.trim() ?? '',
      synopsis: first!.trim(),
      paragraphs: reflow(rest),
    });
  };

  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!;
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line.trim() === '') {
      finish();
      continue;
    }
    if (line[0] === ' ' || line[0] === '\t') {
      if (!current) throw new Error(`${where}: line ${i + 1} continues no field: ${JSON.stringify(line.slice(0, 60))}`);
      current.push(line);
      continue;
    }
    const colon = line.indexOf(':');
    if (colon <= 0) throw new Error(`${where}: line ${i + 1} is not a 'Field: value' line: ${JSON.stringify(line.slice(0, 60))}`);
    stanza ??= { line: i + 1, fields: new Map() };
    const key = line.slice(0, colon).toLowerCase();
    if (stanza.fields.has(key)) throw new Error(`${where}: field ${line.slice(0, colon)} appears twice in the stanza at line ${stanza.line}`);
    current = [line.slice(colon + 1).trim()];
    stanza.fields.set(key, current);
  }
  finish();
  return out;
}

/** A long description's continuation lines (each starting with its syntactic space) as paragraphs. */
function reflow(continuation: readonly string[]): string[] {
  const paragraphs: string[] = [];
  let words: string[] = [];
  let lines: string[] = []; // finished lines of the paragraph: joined prose and verbatim lines
  const endLine = (): void => {
    if (words.length) lines.push(words.join(' '));
    words = [];
  };
  const endParagraph = (): void => {
    endLine();
    if (lines.length) paragraphs.push(lines.join('\n'));
    lines = [];
  };
  for (const l of continuation) {
    const body = l.slice(1); // the syntactic space (or tab)
    if (body.trim() === '.') endParagraph();
    else if (body.startsWith(' ') || body.startsWith('\t')) {
      endLine();
      lines.push(body.trimEnd());
    } else if (body.trim() !== '') {
      words.push(body.trim());
    }
  }
  endParagraph();
  return paragraphs;
}

/** Plain text: documents separated by one or more blank lines, each trimmed. */
export function splitPlainText(text: string): string[] {
  return text.split(/\r?\n(?:[ \t]*\r?\n)+/).map((d) => d.trim()).filter((d) => d !== '');
}

/**
 * Whether a document belongs to the val split: a hash of its key (below) against the fraction, so
 * the split is the same on every machine and does not move when the corpus grows.
 */
export function isHeldOut(key: string, valFraction: number): boolean {
  // FNV-1a over UTF-16 code units, then mixSeed's finaliser so that similar keys spread out.
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  return mixSeed(h) / 4294967296 < valFraction;
}

/**
 * A Debian description's split key: its first paragraph (the synopsis when there is none).
 * Packages built from one source (0ad and 0ad-data, a library and its -dev and -doc packages)
 * share that paragraph and differ in a closing sentence, so keying on it keeps each family on one
 * side of the split; keying on the package name would put near-copies of training text in val.
 */
function descriptionKey(d: DebianDescription): string {
  return d.paragraphs[0] ?? d.synopsis;
}

const SPLITS: readonly TextSplit[] = ['train', 'val', 'all'];

function checkOptions(o: OpenTextCorpusOptions): { valFraction: number; maxDocuments: number } {
  const valFraction = o.valFraction ?? 0.02;
  if (!(typeof valFraction === 'number' && valFraction > 0 && valFraction < 1)) throw new Error(`openTextCorpus: valFraction must be in (0, 1), got ${valFraction}`);
  const maxDocuments = o.maxDocuments ?? Infinity;
  if (maxDocuments !== Infinity && !(Number.isInteger(maxDocuments) && maxDocuments >= 1)) throw new Error(`openTextCorpus: maxDocuments must be a positive integer, got ${maxDocuments}`);
  if (o.split !== undefined && !SPLITS.includes(o.split)) throw new Error(`openTextCorpus: split must be one of ${SPLITS.join(', ')}, got ${JSON.stringify(o.split)}`);
  return { valFraction, maxDocuments };
}

function readText(file: string): string {
  try {
    const text = fs.readFileSync(file, 'utf8');
    return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text; // a byte-order mark is not text
  } catch (e) {
    throw new Error(`openTextCorpus: cannot read ${file}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, { cause: e });
  }
}

/** A Translation index: by its name, else by its first field. */
function isTranslationFile(file: string, text: string): boolean {
  return /^Translation-[A-Za-z_]+$/.test(path.basename(file)) || text.startsWith('Package:');
}

/** The .txt files under a folder, at any depth, in a fixed (sorted) order. */
function textFilesUnder(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    const entries = fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    for (const e of entries) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && /\.txt$/i.test(e.name)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Documents and their split keys from one path. */
function readPath(p: string): { documents: string[]; keys: string[] } {
  if (!fs.existsSync(p)) throw new Error(`openTextCorpus: ${p} does not exist`);
  if (fs.statSync(p).isDirectory()) {
    const files = textFilesUnder(p);
    if (files.length === 0) throw new Error(`openTextCorpus: ${p} holds no .txt files`);
    const documents = files.flatMap((f) => splitPlainText(readText(f)));
    return { documents, keys: documents };
  }
  if (/\.(xz|gz|bz2|lzma|zst)$/i.test(p)) throw new Error(`openTextCorpus: ${p} is compressed; decompress it first (xz -d / gunzip), or install the corpus with scripts/install-corpus.sh`);
  const text = readText(p);
  if (isTranslationFile(p, text)) {
    // Packages that share one description word for word (transitional packages, a library's
    // builds) count once: copies would weigh that text more in training for no new information.
    const seen = new Set<string>();
    const documents: string[] = [];
    const keys: string[] = [];
    for (const d of readDebianDescriptions(text, p)) {
      const doc = descriptionText(d);
      if (seen.has(doc)) continue;
      seen.add(doc);
      documents.push(doc);
      keys.push(descriptionKey(d));
    }
    return { documents, keys };
  }
  const documents = splitPlainText(text);
  return { documents, keys: documents };
}

/**
 * Opens a text corpus: `debian-descriptions` (Translation-en in the corpus folder), a Translation
 * file's path, a .txt file (documents separated by blank lines) or a folder of .txt files (read in
 * sorted order, at any depth). A trailing `:train`, `:val` or `:all` picks the split
 * (`debian-descriptions:val`); without one, `options.split` does (default all). A missing path,
 * or a corpus or split without documents, is an error naming it.
 */
export function openTextCorpus(spec: string, options: OpenTextCorpusOptions = {}): TextCorpus {
  if (typeof spec !== 'string' || spec.trim() === '') throw new Error('openTextCorpus: empty corpus spec');
  const { valFraction, maxDocuments } = checkOptions(options);
  const suffix = /:(train|val|all)$/.exec(spec);
  const split: TextSplit = suffix ? (suffix[1] as TextSplit) : (options.split ?? 'all');
  const source = suffix ? spec.slice(0, suffix.index) : spec;
  let label: string;
  let read: { documents: string[]; keys: string[] };
  if (source === 'debian-descriptions') {
    const root = options.root ?? (process.env.GLIMPSE_CORPUS_DIR || DEBIAN_DESCRIPTIONS_DIR);
    const file = path.join(root, 'Translation-en');
    if (!fs.existsSync(file)) throw new Error(`openTextCorpus: ${file} does not exist (install it with: bash scripts/install-corpus.sh${options.root ? ` ${root}` : ''})`);
    label = 'debian-descriptions';
    read = readPath(file);
  } else {
    label = path.basename(source.replace(/[/\\]+$/, '')) || source;
    read = readPath(source);
  }
  if (read.documents.length === 0) throw new Error(`openTextCorpus: ${source} holds no documents`);
  const documents: string[] = [];
  for (let i = 0; i < read.documents.length && documents.length < maxDocuments; i++) {
    if (split === 'all' || isHeldOut(read.keys[i]!, valFraction) === (split === 'val')) documents.push(read.documents[i]!);
  }
  if (documents.length === 0) throw new Error(`openTextCorpus: the ${split} split of ${source} holds no documents (of ${read.documents.length}; valFraction ${valFraction})`);
  return { name: `${label}(${split})`, spec, split, documents };
}
