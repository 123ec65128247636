// Text corpora: Debian's Translation index parsed into documents, plain-text files and folders, the
// hash split into train and val, and the errors for paths that hold nothing.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { DEBIAN_DESCRIPTIONS_DIR, descriptionText, isHeldOut, openTextCorpus, readDebianDescriptions, splitPlainText } from '../../src/data/text.js';
import { tempDirs } from '../helpers.js';

const newDir = tempDirs('text-corpus');

// Three stanzas as Debian writes them: a paragraph break (' .'), verbatim list lines (two leading
// spaces), a package without a long description, and a CRLF line.
const SNIPPET = [
  'Package: frobnicate',
  'Description-md5: 0123456789abcdef0123456789abcdef',
  'Description-en: tool to frobnicate widgets',
  ' Frobnicate reads widgets from standard input and',
  ' writes them back, frobnicated.',
  ' .',
  ' Features:',
  '  * fast',
  '  * correct',
  ' .',
  ' This package contains the command line tool.',
  '',
  'Package: frobnicate-doc',
  'Description-md5: fedcba9876543210fedcba9876543210',
  'Description-en: tool to frobnicate widgets (documentation)\r',
  '',
  '',
  'Package: libfoo1',
  'Description-en: foo library',
  ' A library.',
  '',
].join('\n');

test('readDebianDescriptions parses stanzas, paragraphs and verbatim lines', () => {
  const d = readDebianDescriptions(SNIPPET);
  assert.deepEqual(d, [
    {
      package: 'frobnicate', descriptionMd5: '0123456789abcdef0123456789abcdef', synopsis: 'tool to frobnicate widgets',
      paragraphs: ['Frobnicate reads widgets from standard input and writes them back, frobnicated.', 'Features:\n * fast\n * correct', 'This package contains the command line tool.'],
    },
    { package: 'frobnicate-doc', descriptionMd5: 'fedcba9876543210fedcba9876543210', synopsis: 'tool to frobnicate widgets (documentation)', paragraphs: [] },
    { package: 'libfoo1', descriptionMd5: '', synopsis: 'foo library', paragraphs: ['A library.'] },
  ]);
  assert.equal(descriptionText(d[0]!), 'tool to frobnicate widgets\n\nFrobnicate reads widgets from standard input and writes them back, frobnicated.\n\nFeatures:\n * fast\n * correct\n\nThis package contains the command line tool.');
  assert.equal(descriptionText(d[1]!), 'tool to frobnicate widgets (documentation)');
  // Another language's field is read the same way.
  assert.equal(readDebianDescriptions('Package: a\nDescription-de: ein Werkzeug\n Langer Text.\n')[0]!.paragraphs[0], 'Langer Text.');
});

test('readDebianDescriptions names the line of a malformed stanza', () => {
  assert.throws(() => readDebianDescriptions(' orphan continuation\n', 'T'), /T: line 1 continues no field/);
  assert.throws(() => readDebianDescriptions('Package: a\nnot a field\n', 'T'), /T: line 2 is not a 'Field: value' line/);
  assert.throws(() => readDebianDescriptions('Description-en: x\n', 'T'), /T: the stanza at line 1 has no Package field/);
  assert.throws(() => readDebianDescriptions('\nPackage: a\nDescription-md5: 00\n', 'T'), /T: package a \(line 2\) has no Description-<lang> field/);
  assert.throws(() => readDebianDescriptions('Package: a\nPackage: b\nDescription-en: x\n', 'T'), /field Package appears twice in the stanza at line 1/);
});

test('splitPlainText separates documents at blank lines, whitespace-only ones included', () => {
  assert.deepEqual(splitPlainText('one\nline two\n\n  \t\nthree\r\n\r\nfour\n\n\n'), ['one\nline two', 'three', 'four']);
  assert.deepEqual(splitPlainText('\n\n  \n'), []);
});

test('isHeldOut holds out about the fraction asked for', () => {
  let held = 0;
  const n = 20000;
  for (let i = 0; i < n; i++) held += isHeldOut(`package-${i}`, 0.1) ? 1 : 0;
  // Binomial sd = sqrt(n p (1-p)) = 42: within 5 sd.
  assert.ok(Math.abs(held - n * 0.1) < 5 * 42, `held out ${held} of ${n}`);
  assert.equal(isHeldOut('package-7', 0.1), isHeldOut('package-7', 0.1));
});

/** A Translation file of `families` source packages, each a library and its -dev package sharing the first paragraph. */
function writeFamilies(file: string, families: number): void {
  const stanzas: string[] = [];
  for (let f = 0; f < families; f++) {
    for (const [suffix, closing] of [['', 'This package contains the shared library.'], ['-dev', 'This package contains the development files.']] as const) {
      stanzas.push(`Package: lib${f}${suffix}\nDescription-md5: ${f}\nDescription-en: library number ${f}${suffix}\n Library ${f} does thing ${f}.\n .\n ${closing}\n`);
    }
  }
  // A transitional package's text, word for word under two names: kept once.
  stanzas.push('Package: old-a\nDescription-en: transitional package\n It can safely be removed.\n');
  stanzas.push('Package: old-b\nDescription-en: transitional package\n It can safely be removed.\n');
  fs.writeFileSync(file, stanzas.join('\n'));
}

test('a Translation file: copies kept once, train and val disjoint and complete, families on one side', () => {
  const dir = newDir();
  fs.mkdirSync(dir);
  const file = path.join(dir, 'Translation-en');
  writeFamilies(file, 150);
  const all = openTextCorpus(file);
  assert.equal(all.documents.length, 301);
  assert.equal(all.name, 'Translation-en(all)');
  assert.equal(all.documents.filter((d) => d.startsWith('transitional package')).length, 1);
  const train = openTextCorpus(`${file}:train`, { valFraction: 0.2 });
  const val = openTextCorpus(file, { split: 'val', valFraction: 0.2 });
  assert.equal(train.split, 'train');
  assert.equal(val.name, 'Translation-en(val)');
  assert.equal(train.documents.length + val.documents.length, 301);
  const trainSet = new Set(train.documents);
  assert.ok(val.documents.every((d) => !trainSet.has(d)));
  assert.ok(val.documents.length > 20 && val.documents.length < 100, `val holds ${val.documents.length} of 301`);
  // A library and its -dev package are in the same split.
  const libs = (docs: readonly string[]): Set<string> => new Set(docs.map((d) => /^library number (\d+)/.exec(d)?.[1]).filter((x) => x !== undefined));
  const valLibs = libs(val.documents);
  for (const f of valLibs) {
    assert.ok(val.documents.includes(`library number ${f}-dev\n\nLibrary ${f} does thing ${f}.\n\nThis package contains the development files.`), `lib${f}-dev is not in val with lib${f}`);
  }
  for (const f of libs(train.documents)) assert.ok(!valLibs.has(f), `family ${f} is on both sides`);
  // maxDocuments keeps the first documents of the split.
  assert.deepEqual(openTextCorpus(`${file}:train`, { valFraction: 0.2, maxDocuments: 5 }).documents, train.documents.slice(0, 5));
});

test('.txt files and folders of them, read in sorted order at any depth', () => {
  const dir = newDir();
  fs.mkdirSync(path.join(dir, 'b', 'inner'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'b', 'inner', 'z.txt'), 'deep document');
  fs.writeFileSync(path.join(dir, 'b', 'a.txt'), 'second\n\nthird');
  fs.writeFileSync(path.join(dir, 'a.txt'), 'first document\nstill the first\n');
  fs.writeFileSync(path.join(dir, 'notes.md'), 'not a text file of the corpus');
  const corpus = openTextCorpus(dir);
  assert.deepEqual(corpus.documents, ['first document\nstill the first', 'second', 'third', 'deep document']);
  assert.equal(corpus.name, `${path.basename(dir)}(all)`);
  assert.deepEqual(openTextCorpus(path.join(dir, 'b', 'a.txt')).documents, ['second', 'third']);
});

test('openTextCorpus names what is missing or empty', () => {
  const dir = newDir();
  fs.mkdirSync(dir);
  assert.throws(() => openTextCorpus(path.join(dir, 'nope.txt')), /nope\.txt does not exist/);
  assert.throws(() => openTextCorpus(dir), /holds no \.txt files/);
  fs.writeFileSync(path.join(dir, 'blank.txt'), '\n \n\n');
  assert.throws(() => openTextCorpus(path.join(dir, 'blank.txt')), /blank\.txt holds no documents/);
  fs.writeFileSync(path.join(dir, 'one.txt'), 'a single document');
  const one = path.join(dir, 'one.txt');
  const side = isHeldOut('a single document', 0.5) ? 'train' : 'val';
  assert.throws(() => openTextCorpus(`${one}:${side}`, { valFraction: 0.5 }), new RegExp(`the ${side} split of .*one\\.txt holds no documents \\(of 1`));
  fs.writeFileSync(path.join(dir, 'Translation-en.xz'), 'xz');
  assert.throws(() => openTextCorpus(path.join(dir, 'Translation-en.xz')), /is compressed; decompress it first/);
  assert.throws(() => openTextCorpus('debian-descriptions:val', { root: dir }), /Translation-en does not exist \(install it with: bash scripts\/install-corpus\.sh /);
  assert.throws(() => openTextCorpus(one, { valFraction: 1 }), /valFraction must be in \(0, 1\)/);
  assert.throws(() => openTextCorpus(one, { maxDocuments: 0 }), /maxDocuments must be a positive integer/);
  assert.throws(() => openTextCorpus(one, { split: 'test' as never }), /split must be one of train, val, all/);
  assert.throws(() => openTextCorpus(''), /empty corpus spec/);
});

const installed = path.join(process.env.GLIMPSE_CORPUS_DIR || DEBIAN_DESCRIPTIONS_DIR, 'Translation-en');
test('the installed Debian descriptions, when present', { skip: !fs.existsSync(installed) && `${installed} is not installed (bash scripts/install-corpus.sh)` }, () => {
  const train = openTextCorpus('debian-descriptions:train');
  const val = openTextCorpus('debian-descriptions:val');
  assert.equal(train.name, 'debian-descriptions(train)');
  const total = train.documents.length + val.documents.length;
  assert.ok(total > 40000, `${total} documents`);
  const share = val.documents.length / total;
  assert.ok(share > 0.015 && share < 0.025, `val holds ${(100 * share).toFixed(2)}%`);
  const trainSet = new Set(train.documents);
  assert.ok(val.documents.every((d) => !trainSet.has(d)), 'a document is in both splits');
  for (const d of [...val.documents, ...train.documents.slice(0, 2000)]) {
    assert.ok(d.trim() === d && d !== '', 'an empty or untrimmed document');
    assert.ok(!/^Description-|^Package: |\n \.\n/m.test(d), `deb822 syntax left in: ${d.slice(0, 80)}`);
  }
});
