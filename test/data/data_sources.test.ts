// Dataset sources on real files: WebDataset shards (written by our writer and by the `tar`
// package), CSV/TSV listings, image folders, Fashion-MNIST idx files, and openDataset's dispatch.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { test } from 'node:test';
import sharp from 'sharp';
import * as tar from 'tar';
import { indexTar } from '../../src/data/tar.js';
import { WebDataset, expandBraces, expandShardList, writeWebDataset } from '../../src/data/webdataset.js';
import { CsvDataset } from '../../src/data/csv.js';
import { parseDelimited } from '../../src/data/table.js';
import { ImageFolder } from '../../src/data/folder.js';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, FashionMnist } from '../../src/data/fashion_mnist.js';
import { openDataset } from '../../src/data/registry.js';
import { datasetEntries } from '../../src/data/sources.js';
import { ScenesDataset } from '../../src/data/scenes.js';
import { decodeImage } from '../../src/data/image.js';
import type { Sample } from '../../src/data/dataset.js';
import { templateCaption } from '../../src/data/common.js';
import { tempDirs } from '../helpers.js';

const newDir = (): string => {
  const d = tempDirs('data-sources')();
  fs.mkdirSync(d, { recursive: true });
  return d;
};

function pixels(width: number, height: number, seed: number): Uint8Array {
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + seed * 31) % 256;
  return data;
}

async function png(width: number, height: number, seed: number): Promise<Buffer> {
  return sharp(pixels(width, height, seed), { raw: { width, height, channels: 3 } }).png().toBuffer();
}

test('brace patterns expand as webdataset expands shard lists', () => {
  assert.deepEqual(expandBraces('a-{000..003}.tar'), ['a-000.tar', 'a-001.tar', 'a-002.tar', 'a-003.tar']);
  assert.deepEqual(expandBraces('{8..11}'), ['8', '9', '10', '11']);
  assert.deepEqual(expandBraces('{x,y}/s-{0..1}.tar'), ['x/s-0.tar', 'x/s-1.tar', 'y/s-0.tar', 'y/s-1.tar']);
  assert.deepEqual(expandBraces('{a,b{1..2}}'), ['a', 'b1', 'b2']);
  assert.deepEqual(expandShardList('p-{0..1}.tar :: q.tar'), ['p-0.tar', 'p-1.tar', 'q.tar']);
  assert.throws(() => expandBraces('a-{0..2.tar'), /unbalanced/);
  assert.throws(() => expandBraces('{5..2}'), /empty range/);
});

test('writeWebDataset shards read back through the index, and the tar package lists the same members', async () => {
  const dir = newDir();
  const images: Sample[] = [];
  for (let i = 0; i < 5; i++) {
    const w = 9 + i;
    images.push(i % 2 === 0
      ? { key: `k${i}`, image: { kind: 'encoded', bytes: await png(w, 8, i), name: `k${i}.png` }, caption: `a caption ${i}`, label: i }
      : { key: `sub/k${i}`, image: { kind: 'pixels', image: { width: w, height: 8, data: pixels(w, 8, i) } }, caption: i === 3 ? undefined : `c${i}` });
  }
  const written = await writeWebDataset(images, path.join(dir, 'out-%02d.tar'), { samplesPerShard: 2 });
  assert.deepEqual(written, { shards: ['00', '01', '02'].map((n) => path.join(dir, `out-${n}.tar`)), samples: 5 });
  // The tar package lists the same members our index finds, at the same sizes.
  const listed: { path: string; size: number }[] = [];
  await tar.t({ file: written.shards[0]!, onReadEntry: (e) => listed.push({ path: e.path, size: e.size ?? 0 }) });
  assert.deepEqual(indexTar(written.shards[0]!).members.map((m) => ({ path: m.name, size: m.size })), listed);
  assert.deepEqual(listed.map((e) => e.path), ['k0.png', 'k0.txt', 'k0.cls', 'sub/k1.png', 'sub/k1.txt']);

  const ds = WebDataset.open(path.join(dir, 'out-{00..02}.tar'));
  assert.equal(ds.length, 5);
  for (let i = 0; i < 5; i++) {
    const s = await ds.get(i);
    assert.equal(s.key, images[i]!.key);
    assert.equal(s.caption, images[i]!.caption);
    assert.equal(s.label, images[i]!.label);
    assert.equal(s.image.kind, 'encoded');
    const decoded = await decodeImage((s.image as { bytes: Uint8Array }).bytes);
    assert.deepEqual(decoded.data, pixels(9 + i, 8, i)); // PNG is lossless either way
  }
});

test('writeWebDataset rejects keys that cannot name members, duplicates, and a single-file pattern that needs more', async () => {
  const dir = newDir();
  const sample = (key: string): Sample => ({ key, image: { kind: 'pixels', image: { width: 2, height: 2, data: new Uint8Array(12) } } });
  await assert.rejects(writeWebDataset([sample('a.b')], path.join(dir, 'x-%d.tar')), /key "a\.b" cannot name tar members/);
  await assert.rejects(writeWebDataset([sample('')], path.join(dir, 'x-%d.tar')), /key "" cannot name tar members/);
  await assert.rejects(writeWebDataset([sample('k'), sample('k')], path.join(dir, 'x-%d.tar')), /duplicate key k/);
  await assert.rejects(writeWebDataset([sample('k1'), sample('k2')], path.join(dir, 'one.tar'), { samplesPerShard: 1 }), /one\.tar has no %d/);
  await assert.rejects(writeWebDataset([sample('k')], path.join(dir, 'x-%d.tar'), { samplesPerShard: 0 }), /samplesPerShard must be a positive integer/);
  // Nothing half-written is left behind: only the complete first shard of the failed run above.
  assert.deepEqual(fs.readdirSync(dir).sort(), ['one.tar']);
  assert.deepEqual(await writeWebDataset([sample('k')], path.join(dir, 'single.tar')), { shards: [path.join(dir, 'single.tar')], samples: 1 });
});

test('img2dataset layout: jpg/webp members, captions from .txt or .json, long names, a damaged shard', async () => {
  const dir = newDir();
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'deep'.repeat(30)), { recursive: true });
  const jpg = await sharp(pixels(16, 12, 1), { raw: { width: 16, height: 12, channels: 3 } }).jpeg().toBuffer();
  const webp = await sharp(pixels(10, 10, 2), { raw: { width: 10, height: 10, channels: 3 } }).webp().toBuffer();
  const longKey = `${'deep'.repeat(30)}/${'2'.repeat(110)}`; // no ustar prefix split fits: a pax header
  fs.writeFileSync(path.join(src, '000000000.jpg'), jpg);
  fs.writeFileSync(path.join(src, '000000000.txt'), 'a dog on a beach\n');
  fs.writeFileSync(path.join(src, '000000000.json'), JSON.stringify({ caption: 'ignored: the .txt wins' }));
  fs.writeFileSync(path.join(src, '000000001.webp'), webp);
  fs.writeFileSync(path.join(src, '000000001.json'), JSON.stringify({ caption: 'from the json', url: 'http://x' }));
  fs.writeFileSync(path.join(src, `${longKey}.jpg`), jpg);
  fs.writeFileSync(path.join(src, 'notes.txt'), 'a key without an image');
  const shard = path.join(dir, 'a.tar');
  // The tar package writes pax headers for the long name, as Python's tarfile does.
  await tar.c({ file: shard, cwd: src, portable: true }, ['000000000.jpg', '000000000.txt', '000000000.json', '000000001.webp', '000000001.json', `${longKey}.jpg`, 'notes.txt']);
  const warnings: string[] = [];
  const ds = WebDataset.open(shard, { onWarning: (m) => warnings.push(m) });
  assert.equal(ds.length, 3);
  assert.deepEqual(warnings, [`webdataset: 1 keys in ${shard} have no image and are left out`]);
  const [a, b, c] = await Promise.all([0, 1, 2].map((i) => ds.get(i)));
  assert.equal(a!.caption, 'a dog on a beach');
  assert.equal(b!.caption, 'from the json');
  assert.equal(c!.key, longKey);
  assert.equal(c!.caption, undefined);
  assert.deepEqual((a!.image as { bytes: Uint8Array }).bytes, new Uint8Array(jpg));
  assert.deepEqual((b!.image as { bytes: Uint8Array }).bytes, new Uint8Array(webp));

  // Cut inside the last member: the members before it stay usable, with a warning.
  const whole = fs.readFileSync(shard);
  const cut = path.join(dir, 'cut.tar');
  const lastOffset = indexTar(shard).members.at(-1)!.offset;
  fs.writeFileSync(cut, whole.subarray(0, lastOffset + 5));
  warnings.length = 0;
  const partial = WebDataset.open(cut, { onWarning: (m) => warnings.push(m) });
  assert.equal(partial.length, 3);
  assert.match(warnings[0]!, /cut\.tar is damaged \(member at byte \d+ runs past the end/);

  fs.writeFileSync(path.join(dir, 'junk.tar'), Buffer.alloc(2048, 65));
  assert.throws(() => WebDataset.open(path.join(dir, 'junk.tar')), /junk\.tar: not a tar archive/);
  assert.throws(() => WebDataset.open(path.join(dir, 'a.tar::missing-{0..1}.tar')), /shard not found: missing-0\.tar, missing-1\.tar/);
  // Two sources joined with '::' are one dataset.
  assert.equal(WebDataset.open(`${shard}::${shard}`).length, 6);
});

test('delimited text: quotes, escaped quotes, separators and newlines inside fields, CRLF, BOM', () => {
  const text = '\ufefffilepath,title\r\n"a,b.jpg","say ""hi""\nthere"\r\n\r\nc.jpg,plain\n';
  const t = parseDelimited(text, ',');
  assert.deepEqual(t.header, ['filepath', 'title']);
  assert.deepEqual(t.rows, [['a,b.jpg', 'say "hi"\nthere'], ['c.jpg', 'plain']]);
  assert.deepEqual(t.lines, [2, 5]);
  assert.throws(() => parseDelimited('a,"b\n', ','), /line 1: a quoted field is never closed/);
});

test('CSV/TSV listings: open_clip columns, relative paths, custom separator and columns', async () => {
  const dir = newDir();
  fs.mkdirSync(path.join(dir, 'imgs'));
  fs.writeFileSync(path.join(dir, 'imgs', 'x.png'), await png(6, 5, 3));
  fs.writeFileSync(path.join(dir, 'pairs.tsv'), 'title\tfilepath\n"a ""quoted"" caption"\timgs/x.png\n');
  const tsv = CsvDataset.open(path.join(dir, 'pairs.tsv'));
  const s = await tsv.get(0);
  assert.equal(s.caption, 'a "quoted" caption');
  assert.equal(s.key, path.join(dir, 'imgs', 'x.png'));
  assert.equal((await decodeImage((s.image as { bytes: Uint8Array }).bytes)).width, 6);

  fs.writeFileSync(path.join(dir, 'pairs.csv'), 'image,text\nimgs/x.png,"one, two"\n');
  assert.throws(() => CsvDataset.open(path.join(dir, 'pairs.csv')), /no column 'filepath' .*header: "image,text"/);
  const csv = CsvDataset.open(path.join(dir, 'pairs.csv'), { separator: ',', imageColumn: 'image', captionColumn: 'text' });
  assert.equal((await csv.get(0)).caption, 'one, two');
  assert.deepEqual(csv.spec.options, { separator: ',', imageColumn: 'image', captionColumn: 'text' });
  fs.writeFileSync(path.join(dir, 'bad.csv'), 'filepath\ttitle\nx.png\n');
  fs.writeFileSync(path.join(dir, 'wide.csv'), 'filepath\ttitle\nx.png\tcap\textra\n');
  assert.throws(() => CsvDataset.open(path.join(dir, 'wide.csv')), /wide\.csv: line 2: 3 fields, but the header has 2/);
  assert.throws(() => CsvDataset.open(path.join(dir, 'bad.csv')), /bad\.csv line 2 has an empty 'title'/);
});

test('image folders: classes and files in torchvision ImageFolder order, captions from templates', async () => {
  const dir = newDir();
  const files = ['dog/b.png', 'dog/a.JPG', 'dog/z/c.webp', 'Cat/x.png', 'cat/readme.md', 'cat/y.png'];
  for (const f of files) {
    fs.mkdirSync(path.join(dir, path.dirname(f)), { recursive: true });
    const ext = path.extname(f).toLowerCase();
    const s = sharp(pixels(4, 4, 0), { raw: { width: 4, height: 4, channels: 3 } });
    fs.writeFileSync(path.join(dir, f), ext === '.md' ? 'text' : ext === '.jpg' ? await s.jpeg().toBuffer() : ext === '.webp' ? await s.webp().toBuffer() : await s.png().toBuffer());
  }
  const ds = ImageFolder.open(dir, { captions: { templates: ['a photo of a {}.', 'a {} picture'] } });
  assert.deepEqual(ds.classNames, ['Cat', 'cat', 'dog']); // code-point order: upper case first
  const got = await Promise.all(Array.from({ length: ds.length }, (_, i) => ds.get(i)));
  assert.deepEqual(got.map((s) => s.key), ['Cat/x.png', 'cat/y.png', 'dog/a.JPG', 'dog/b.png', 'dog/z/c.webp']);
  assert.deepEqual(got.map((s) => s.label), [0, 1, 2, 2, 2]);
  for (const s of got) assert.ok(s.caption === `a photo of a ${ds.classNames[s.label!]}.` || s.caption === `a ${ds.classNames[s.label!]} picture`, s.caption);
  // Templates are picked per index, all of them about equally often.
  const picks = Array.from({ length: 300 }, (_, i) => templateCaption({ templates: ['{} one', '{} two', '{} three'] }, 'x', i));
  for (const t of ['x one', 'x two', 'x three']) assert.ok(Math.abs(picks.filter((p) => p === t).length - 100) < 30, t);
  assert.equal((await ds.get(3)).caption, got[3]!.caption, 'the same index gets the same caption');
  assert.throws(() => ImageFolder.open(path.join(dir, 'dog', 'z')), /no class sub-folders/);
  assert.throws(() => ImageFolder.open(dir, { captions: { templates: ['no placeholder'] } }), /has no '\{\}'/);
});

/** idx files as the Fashion-MNIST distribution has them. */
function idx(dims: number[], data: Uint8Array): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE(0x0800 + dims.length, 0);
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([header, data]);
}

test('Fashion-MNIST idx files, compressed or not, as RGB pixels with class names and template captions', async () => {
  const dir = newDir();
  const n = 10000;
  const images = new Uint8Array(n * 784);
  for (let i = 0; i < images.length; i++) images[i] = (i * 13) % 256;
  const labels = Uint8Array.from({ length: n }, (_, i) => (i * 3) % 10);
  fs.writeFileSync(path.join(dir, 't10k-images-idx3-ubyte.gz'), zlib.gzipSync(idx([n, 28, 28], images), { level: 1 }));
  fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), idx([n], labels));
  const ds = FashionMnist.open('test', { root: dir, captions: { templates: ['a photo of a {}.'] } });
  assert.equal(ds.length, 10000);
  const s = await ds.get(1234);
  assert.equal(s.key, 'fashion-mnist/test/1234');
  assert.equal(s.label, labels[1234]);
  assert.equal(s.caption, `a photo of a ${FASHION_MNIST_CLASSES[labels[1234]!]}.`);
  assert.equal(s.image.kind, 'pixels');
  const img = (s.image as { image: { width: number; height: number; data: Uint8Array } }).image;
  assert.deepEqual([img.width, img.height], [28, 28]);
  for (const p of [0, 100, 783]) {
    const grey = images[1234 * 784 + p]!;
    assert.deepEqual([...img.data.subarray(3 * p, 3 * p + 3)], [grey, grey, grey]);
  }
  assert.throws(() => FashionMnist.open('train', { root: dir }), /train-images-idx3-ubyte\(\.gz\) not found; install Debian's dataset-fashion-mnist/);
  fs.writeFileSync(path.join(dir, 't10k-labels-idx1-ubyte'), idx([n - 1], labels.subarray(1)));
  assert.throws(() => FashionMnist.open('test', { root: dir }), /has size 9999 in dimension 0, expected 10000/);
});

test('the installed Fashion-MNIST, when present', { skip: !fs.existsSync(path.join(FASHION_MNIST_DIR, 'train-labels-idx1-ubyte.gz')) && 'dataset-fashion-mnist is not installed' }, async () => {
  const train = await openDataset('fashion-mnist');
  assert.equal(train.length, 60000);
  assert.deepEqual(train.classNames, FASHION_MNIST_CLASSES);
  const test10k = await openDataset('fmnist:test');
  assert.equal(test10k.length, 10000);
  // Every class appears 1000 times in the test set.
  const counts = new Array(10).fill(0);
  for (let i = 0; i < 10000; i += 1) counts[(await test10k.get(i)).label!]++;
  assert.deepEqual(counts, new Array(10).fill(1000));
});

test('openDataset picks the source from the spec and names what it cannot open', async () => {
  const dir = newDir();
  await writeWebDataset([{ key: 'k', image: { kind: 'encoded', bytes: await png(4, 4, 0), name: 'k.png' }, caption: 'c' }], path.join(dir, 's-%d.tar'));
  fs.mkdirSync(path.join(dir, 'folder', 'cls'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'folder', 'cls', 'i.png'), await png(4, 4, 1));
  fs.writeFileSync(path.join(dir, 'list.tsv'), 'filepath\ttitle\nfolder/cls/i.png\thello\n');
  fs.mkdirSync(path.join(dir, 'empty', 'cls'), { recursive: true });

  const scenes = await openDataset('scenes:val', { scenes: { length: 7 } });
  assert.ok(scenes instanceof ScenesDataset);
  assert.equal(scenes.name, 'scenes(val)');
  assert.equal(scenes.length, 7);
  assert.equal((await openDataset('SCENES')).name, 'scenes(train)');
  assert.ok((await openDataset(path.join(dir, 's-0.tar'))) instanceof WebDataset);
  assert.ok((await openDataset(path.join(dir, 's-{0..0}.tar'))) instanceof WebDataset);
  assert.ok((await openDataset(path.join(dir, 'list.tsv'))) instanceof CsvDataset);
  assert.ok((await openDataset(path.join(dir, 'folder'))) instanceof ImageFolder);
  assert.ok((await openDataset(`csv:${path.join(dir, 'list.tsv')}`)) instanceof CsvDataset);
  // Each source's spec opens an equal dataset (what the loader's workers rely on).
  for (const spec of ['scenes:test', path.join(dir, 's-0.tar'), path.join(dir, 'list.tsv'), path.join(dir, 'folder')]) {
    const a = await openDataset(spec, { scenes: { length: 3, seed: 5 } });
    const b = await openDataset(a.spec!.source, a.spec!.options);
    assert.equal(b.name, a.name);
    assert.equal(b.length, a.length);
    assert.deepEqual(await b.get(0), await a.get(0));
  }
  await assert.rejects(openDataset(path.join(dir, 'nope')), /nope does not exist \(expected scenes:<train \| val \| test>/);
  await assert.rejects(openDataset(path.join(dir, 'nope.tsv')), /nope\.tsv does not exist/);
  await assert.rejects(openDataset(path.join(dir, 'empty')), /no images in the class folders of .*empty/);
  await assert.rejects(openDataset('scenes:dev'), /unknown split 'dev'/);
  await assert.rejects(openDataset('csv'), /'csv' needs a path/);
  assert.deepEqual(datasetEntries.map((e) => e.name), ['scenes', 'fashion-mnist', 'webdataset', 'csv', 'image-folder']);
  for (const e of datasetEntries) assert.equal(e.kind, 'dataset');
});
