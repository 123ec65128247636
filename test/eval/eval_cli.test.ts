import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { type Command } from 'commander';
import { evalCommands, readList } from '../../src/cli/eval.js';
import { filterCommand } from '../../src/cli/filter.js';
import { WebDataset } from '../../src/data/webdataset.js';
import { rng, runCommand, tempDirs } from '../helpers.js';

const tmp = tempDirs('eval-cli');


const lastJson = (out: string): Record<string, unknown> => JSON.parse(out.trim().split('\n').at(-1)!) as Record<string, unknown>;
const named = (name: string): Command => evalCommands().find((c) => c.name() === name)!;

test('eval zeroshot and retrieval on scenes: --json prints one object on the last line; text output names the metrics', async () => {
  const z = lastJson(await runCommand(named('zeroshot'), ['--model', 'test-clip', '--random-init', '--data', 'scenes:val', '--limit', '6', '--batch-size', '4', '--json',
    '--template', 'a {} shape', '--template', 'a photo of a {}.']));
  assert.equal(z.task, 'zeroshot');
  assert.equal(z.samples, 6);
  assert.equal(z.templates, 2);
  assert.ok(typeof z.top1 === 'number' && typeof z.top5 === 'number');
  assert.equal((z.confusion as number[][]).flat().reduce((a, b) => a + b, 0), 6);

  const text = await runCommand(named('zeroshot'), ['--model', 'test-clip', '--random-init', '--data', 'scenes:val', '--limit', '3']);
  assert.match(text, /^zero-shot test-clip on scenes\(val\): 3 images, \d+ classes, 1 templates\n {2}top-1 .*top-5/);

  const r = lastJson(await runCommand(named('retrieval'), ['--model', 'test-siglip', '--random-init', '--data', 'scenes', '--split', 'val', '--limit', '5', '--json']));
  assert.equal(r.task, 'retrieval');
  assert.equal(r.images, 5);
  assert.equal(r.texts, 5);
  for (const k of ['image_to_text_R@1', 'image_to_text_R@5', 'image_to_text_R@10', 'text_to_image_mean_rank', 'text_to_image_median_rank']) assert.ok(k in r, k);
  assert.equal(r['image_to_text_R@5'], 1, 'five images: every caption within rank 5');
  assert.match(await runCommand(named('retrieval'), ['--model', 'test-clip', '--random-init', '--data', 'scenes:val', '--limit', '4']), /image->text {2}R@1 .* median rank \d+\n {2}text->image/);

  await assert.rejects(runCommand(named('retrieval'), ['--model', 'test-clip', '--random-init', '--data', 'scenes:val', '--group-images', 'pixels']), /--group-images must be content or sample/);
  await assert.rejects(runCommand(named('zeroshot'), ['--model', 'test-clip', '--random-init', '--data', 'scenes:val', '--limit', '0']), /--limit must be a positive integer/);
});

test('eval linear-probe on an image folder with a ViT; filter writes shards and prints precision/recall', async () => {
  const root = tmp();
  const r = rng(4);
  for (const [cls, base] of [['dark', 0], ['bright', 150]] as const) {
    fs.mkdirSync(path.join(root, cls), { recursive: true });
    for (let i = 0; i < 8; i++) {
      const data = Buffer.from(Array.from({ length: 16 * 16 * 3 }, () => base + Math.floor(r() * 100)));
      await sharp(data, { raw: { width: 16, height: 16, channels: 3 } }).png().toFile(path.join(root, cls, `${i}.png`));
    }
  }
  const probe = lastJson(await runCommand(named('linear-probe'), ['--model', 'test-vit', '--random-init', '--data', root, '--test-data', root, '--pooling', 'mean',
    '--weight-decays', '1e-3,1e-1', '--json']));
  assert.equal(probe.task, 'linear-probe');
  assert.equal(probe.train_samples, 16);
  assert.equal(probe.test_accuracy, 1);
  assert.deepEqual((probe.grid as { weight_decay: number }[]).map((g) => g.weight_decay), [1e-3, 1e-1]);
  await assert.rejects(runCommand(named('linear-probe'), ['--model', 'test-vit', '--random-init', '--data', root, '--weight-decays', 'x']), /'x' is not a number/);
  // A dual encoder's features are its image embeddings (test-clip: 16-d).
  const clipProbe = lastJson(await runCommand(named('linear-probe'), ['--model', 'test-clip', '--random-init', '--data', root, '--test-data', root, '--weight-decays', '1e-3', '--json']));
  assert.equal(clipProbe.dim, 16);
  await assert.rejects(runCommand(named('linear-probe'), ['--model', 'test-bert', '--random-init', '--data', root]), /BertForMaskedLM has no image features/);

  const out = tmp();
  const f = lastJson(await runCommand(filterCommand(), ['--model', 'test-clip', '--random-init', '--data', 'scenes:val', '--limit', '6', '--keep', '0.5', '--out', out,
    '--shard-size', '2', '--json']));
  assert.equal(f.kept, 3);
  assert.equal((f.shards as string[]).length, 2);
  assert.deepEqual(f.clean, { precision: 1, recall: 0.5, clean_before: 1 });
  assert.equal(WebDataset.open(path.join(out, 'shard-{000000..000001}.tar')).length, 3);
  assert.equal(fs.readFileSync(path.join(out, 'scores.jsonl'), 'utf8').trim().split('\n').length, 6);
  await assert.rejects(runCommand(filterCommand(), ['--model', 'test-clip', '--random-init', '--data', 'scenes:val', '--out', out]), /exactly one of --keep/);
  await assert.rejects(runCommand(filterCommand(), ['--model', 'test-clip', '--random-init', '--data', 'scenes:val', '--out', out, '--keep', 'lots']), /--keep must be a number/);
});

test('readList: a file with one entry per line, or a comma-separated list', () => {
  const file = path.join(tmp(), 'names.txt');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, 'red circle\n\nblue star\r\n');
  assert.deepEqual(readList(file, '--classnames'), ['red circle', 'blue star']);
  assert.deepEqual(readList('a, b ,c', '--classnames'), ['a', 'b', 'c']);
  assert.throws(() => readList(' , ', '--classnames'), /--classnames: ' , ' holds no entries/);
});
