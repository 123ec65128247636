// The training report: ticks, scaling, chance lines, the example grid, per-attribute accuracy,
// the config the run uses, and a self-contained page from a real run.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import YAML from 'yaml';
import { SCENE_CLASS_NAMES, ScenesDataset } from '../../src/data/scenes.js';
import { samplePixels } from '../../src/eval/features.js';
import { rows, zeroShotClassify } from '../../src/tasks/zeroshot.js';
import { resolveConfig } from '../../src/train/config.js';
import { type EvalDetails, visionLanguageModel } from '../../src/train/evaluate.js';
import { MetricsLog } from '../../src/train/progress.js';
import { lineChart, niceTicks, renderReport } from '../../src/train/report.js';
import { train } from '../../src/train/trainer.js';
import { tempDirs } from '../helpers.js';

const newDir = tempDirs('report');

test('niceTicks: round steps spanning the range', () => {
  assert.deepEqual(niceTicks(0, 10), [0, 2, 4, 6, 8, 10]);
  assert.deepEqual(niceTicks(0.13, 0.52), [0.2, 0.3, 0.4, 0.5]);
  assert.deepEqual(niceTicks(-3, 3, 3), [-2, 0, 2]);
  assert.deepEqual(niceTicks(5, 5), [5]);
});

test('lineChart: one path per series in the plot area; non-finite points left out; empty data said', () => {
  const svg = lineChart('loss', [{ name: 'a', points: [[0, 1], [1, NaN], [2, 3]] }, { name: 'b', points: [[0, 2], [2, 2]] }], { width: 400, height: 200 });
  const paths = [...svg.matchAll(/<path d="([^"]+)"/g)].map((m) => m[1]!);
  assert.equal(paths.length, 2);
  const coords = paths[0]!.split(/[ML]/).filter(Boolean).map((p) => p.split(',').map(Number));
  assert.equal(coords.length, 2, 'the NaN point is skipped');
  for (const [x, y] of coords) assert.ok(x! >= 64 && x! <= 250 && y! >= 28 && y! <= 160, `${x},${y} inside the plot (left of the legend)`);
  assert.ok(coords[0]![1]! > coords[1]![1]!, 'larger values are drawn higher');
  assert.match(svg, />a<\/text>/);
  assert.match(lineChart('x', [{ name: 'a', points: [] }]), /no data/);
});

test('renderReport: escaped text, charts for loss, lr and evaluations, no external resources', () => {
  const config = resolveConfig({ model: 'test-clip', steps: 2, data: { train: 'scenes:<train>' } });
  const html = renderReport({
    title: 'run <1>', config,
    records: [{ step: 1, epoch: 0, loss: 2, lr: 1e-3, samples_per_s: 10, elapsed_s: 1 }, { step: 2, epoch: 0, loss: 1.5, lr: 5e-4, 'eval/top1': 0.5 }],
    final: { 'eval/top1': 0.5 },
  });
  assert.match(html, /<title>run &#60;1&#62;<\/title>/);
  assert.match(html, /scenes:&#60;train&#62;/);
  assert.equal((html.match(/<svg /g) ?? []).length, 3);
  assert.doesNotMatch(html, /<script|src=|href=/);
});

test('lineChart: from the given x range, chance lines labelled, coinciding series told apart by dash and marker', () => {
  const same: [number, number][] = [[50, 0.2], [100, 0.2]];
  const svg = lineChart('accuracy', [{ name: 'top1', points: same }, { name: 'top5', points: same }],
    { width: 400, height: 200, xRange: [0, 100], yRange: [0, 1], references: [{ y: 0.25, label: 'chance top-5: 25.0%' }] });
  // Step 50 is halfway along the plot (64 to 250), not at its left edge.
  const first = /<path d="M([\d.]+),/.exec(svg)!;
  assert.equal(Number(first[1]), 157);
  assert.match(svg, /<text x="\d+" y="194" text-anchor="middle" class="label">step<\/text>/);
  const chance = /<line x1="64" x2="250" y1="([\d.]+)" y2="[\d.]+" class="chance"\/>/.exec(svg);
  assert.ok(chance, 'the chance line');
  assert.equal(Number(chance[1]), 200 - 40 - 0.25 * (200 - 28 - 40));
  const label = /<text x="68" y="([\d.]+)" class="chance-label">chance top-5: 25.0%<\/text><\/svg>$/.exec(svg);
  assert.ok(label, 'its label, drawn over the data');
  assert.equal(Number(label[1]), Number(chance[1]) - 3, 'just above the line');
  const paths = [...svg.matchAll(/<path d="M[^"]+" fill="none" stroke="([^"]+)" stroke-width="([\d.]+)"( stroke-dasharray="[^"]+")?(?: opacity="[\d.]+")?>/g)];
  assert.equal(paths.length, 2);
  assert.notEqual(paths[0]![1], paths[1]![1], 'colours differ');
  assert.notEqual(paths[0]![3], paths[1]![3], 'dashes differ');
  assert.ok(Number(paths[0]![2]) >= Number(paths[1]![2]) + 2, 'the covered series is drawn wider, a band around the other');
  assert.equal((svg.match(/<circle /g) ?? []).length, 3, 'circles at the first series\' points and in its legend');
  assert.equal((svg.match(/<rect [^>]*fill="#d62728"/g) ?? []).length, 3, 'squares at the second\'s');
});

/** Evaluation details as evaluateModel writes them: chance levels, two examples, per-attribute groups. */
const details: EvalDetails = {
  step: 4, dataset: 'scenes(test)', samples: 24,
  chance: { 'eval/zeroshot_top1': 1 / 64, 'eval/zeroshot_top5': 5 / 64, 'eval/i2t_R@1': 1 / 24, 'eval/t2i_R@1': 1 / 24, 'eval/colour_acc_seen': 1 / 8, 'eval/colour_acc_held_out': 1 / 8, 'eval/shape_acc_seen': 1 / 8, 'eval/shape_acc_held_out': 1 / 8 },
  examples: [
    { image: 'data:image/png;base64,AAAA', predicted: 'red circle', truth: 'red star', caption: 'a picture of a red star', correct: false },
    { image: 'data:image/png;base64,BBBB', predicted: 'white cross', truth: 'white cross', correct: true },
  ],
  compositions: { datasets: ['scenes(test)', 'scenes(val)'], samples: { seen: 24, held_out: 24 } },
};

test('renderReport: chance lines, the example grid, per-attribute accuracy with its finding, charts from step 0', () => {
  const config = resolveConfig({ model: 'test-clip', steps: 8, data: { train: 'scenes:train', val: 'scenes:test' } });
  const evalAt = (step: number, f: number) => ({
    step, epoch: 0, 'eval/zeroshot_top1': 0.1 * f, 'eval/zeroshot_top5': 0.4 * f, 'eval/i2t_R@1': 0.2 * f, 'eval/t2i_R@1': 0.2 * f,
    'eval/colour_acc_seen': 0.9 * f, 'eval/shape_acc_seen': 0.8 * f, 'eval/colour_acc_held_out': 0.85 * f, 'eval/shape_acc_held_out': 0.1 * f,
  });
  const records = [{ step: 1, epoch: 0, loss: 3 }, evalAt(4, 0.5), { step: 8, epoch: 0, loss: 2 }, evalAt(8, 1)];
  const { step: _, epoch: __, ...final } = evalAt(8, 1);
  const html = renderReport({ title: 'run', config, records, final, evaluation: details });
  // One chance line per level: top-1 and top-5 on the accuracy chart, R@1 (both directions) on retrieval's, colour and shape on the attributes'.
  const labels = [...html.matchAll(/class="chance-label">([^<]+)</g)].map((m) => m[1]);
  assert.deepEqual(labels, ['chance top-1: 1.6%', 'chance top-5: 7.8%', 'chance R@1: 4.2%', 'chance colour, shape: 12.5%']);
  assert.match(html, /<tr><th>zeroshot_top1<\/th><td class="num">10.0%<\/td><td class="num chance">1.6%<\/td><\/tr>/);
  // The examples: each an embedded PNG with the predicted and the true class, the caption where it says more.
  const figures = [...html.matchAll(/<figure class="(right|wrong)"><img alt="[^"]*" src="(data:image\/png;base64,[^"]+)"><figcaption>predicted: <b>([^<]+)<\/b><br>true: ([^<]+)(.*?)<\/figcaption>/g)];
  assert.deepEqual(figures.map((f) => [f[1], f[2], f[3], f[4]]), [
    ['wrong', 'data:image/png;base64,AAAA', 'red circle', 'red star'], ['right', 'data:image/png;base64,BBBB', 'white cross', 'white cross'],
  ]);
  assert.match(figures[0]![5]!, /a picture of a red star/);
  // Per attribute: a row per group and chance, and the sentence naming the attribute that fails on new pairs.
  assert.match(html, /<tr><th><\/th><th>colour<\/th><th>shape<\/th><\/tr><tr><th>seen<\/th><td class="num">90.0%<\/td><td class="num">80.0%<\/td><\/tr><tr><th>held-out<\/th><td class="num">85.0%<\/td><td class="num">10.0%<\/td><\/tr><tr><th>chance<\/th><td class="num chance">12.5%<\/td><td class="num chance">12.5%<\/td><\/tr>/);
  assert.match(html, /the right colour for 85.0% and the right shape for 10.0% of the images. Shape drops from 80.0% on seen to 10.0% on held-out compositions/);
  assert.match(html, /Images: scenes\(test\) and scenes\(val\) \(24 seen, 24 held-out\)/);
  // Every chart starts at step 0: the loss chart's first point (step 1 of 8) is an eighth along the plot, the evaluations' (step 4) half.
  const firstX = [...html.matchAll(/<path d="M([\d.]+),[^"]*" fill="none"/g)].map((m) => Number(m[1]));
  const plotX = (step: number, right: number) => 64 + (step / 8) * (720 - 64 - right);
  assert.equal(firstX[0], Number(plotX(1, 16).toFixed(1)));
  assert.equal(firstX.at(-1), Number(plotX(4, 150).toFixed(1)));
  assert.doesNotMatch(html, /<script|href=|src="(?!data:image\/png;base64,)/);
});

test('renderReport: the config lists only the sections the run uses', () => {
  const render = (raw: Record<string, unknown>) => {
    const html = renderReport({ title: 'run', config: resolveConfig(raw), records: [], final: {} });
    return YAML.parse(decodeEntities(/<pre>([\s\S]*)<\/pre>/.exec(html)![1]!)) as Record<string, Record<string, unknown>>;
  };
  const clip = render({ model: 'test-clip', steps: 2, data: { train: 'scenes:train' } });
  for (const k of ['mae', 'mlm', 'eval', 'label_smoothing', 'unlock_last_blocks', 'epochs', 'time_budget_s']) assert.equal(k in clip, false, k);
  assert.equal('val_options' in clip.data!, false);
  assert.deepEqual(clip.model, { name: 'test-clip' });
  assert.equal(clip.steps, 2);
  const withVal = render({ model: 'test-clip', steps: 2, data: { train: 'scenes:train', val: 'scenes:test', val_options: { scenes: { length: 8 } } } });
  assert.deepEqual(withVal.data!.val_options, { scenes: { length: 8 } });
  assert.equal(withVal.eval!.every, 0);
  const custom = render({ model: { custom: { family: 'clip' } }, steps: 2, data: { train: 'scenes:train' } });
  assert.deepEqual(Object.keys(custom.model!.custom as object).filter((k) => k.startsWith('decoder_')), []);
  assert.equal((custom.model!.custom as Record<string, unknown>).text_layers, 2);
  const mae = render({ model: 'test-vit-mae', task: 'mae', epochs: 1, data: { train: 'scenes:train' } });
  assert.deepEqual(Object.keys(mae.mae!), ['mask_ratio', 'norm_pix_loss', 'pictures']);
  for (const k of ['mlm', 'patch_dropout', 'lock_image', 'steps']) assert.equal(k in mae, false, k);
});

const decodeEntities = (s: string) => s.replace(/&#(\d+);/g, (_, c: string) => String.fromCharCode(Number(c)));

test('a tiny CLIP run on the scenes: the report explains it, and per-attribute accuracy matches a count image by image', async () => {
  const out = newDir();
  const templates = ['a {}.'];
  const scenes = { length: 24, size: 32, supersample: 1 };
  const config = resolveConfig({
    model: 'test-clip', task: 'clip', steps: 6, batch_size: 8, log_every: 1, seed: 3,
    data: { train: 'scenes:train', val: 'scenes:test', options: { scenes }, workers: 0 },
    optim: { lr: 2e-3, warmup_steps: 1 }, eval: { every: 3, templates }, out,
  });
  const r = await train(config, { progress: 'none' });
  const html = fs.readFileSync(r.reportFile!, 'utf8');
  assert.match(html, /class="chance-label">chance top-1: 1.6%</);
  assert.match(html, /class="chance-label">chance R@1: 4.2%</);
  const images = [...html.matchAll(/<figure class="(?:right|wrong)"><img alt="[^"]*" src="data:image\/png;base64,([^"]+)"><figcaption>predicted: <b>([^<]+)<\/b><br>true: ([^<]+)</g)];
  assert.equal(images.length, 12);
  const test = new ScenesDataset('test', scenes);
  for (const [i, m] of images.entries()) {
    assert.ok(SCENE_CLASS_NAMES.includes(m[2]!), m[2]);
    assert.equal(m[3], SCENE_CLASS_NAMES[test.scene(i).objects[0]!.classIndex]);
    const png = Buffer.from(m[1]!, 'base64');
    assert.equal(png.subarray(1, 4).toString(), 'PNG');
  }
  // Per attribute, counted image by image from zero-shot predictions of the trained model.
  const vl = visionLanguageModel(r.model, 'trained');
  vl.model.eval();
  const count = async (ds: ScenesDataset) => {
    const samples = await Promise.all(Array.from({ length: ds.length }, (_, i) => ds.get(i)));
    const z = await zeroShotClassify(vl, await samplePixels(samples, vl.imageProcessor), SCENE_CLASS_NAMES, { templates, batchSize: 64 });
    const right = { colour: 0, shape: 0, both: 0 };
    rows(z.logits).forEach((logits, i) => {
      // The best logit, the first on ties (as the evaluation ranks).
      const best = logits.reduce((b, v, c) => (v > logits[b]! ? c : b), 0);
      const [colour, shape] = SCENE_CLASS_NAMES[best]!.split(' ');
      const o = ds.scene(i).objects[0]!;
      right.colour += Number(colour === o.colour);
      right.shape += Number(shape === o.shape);
      right.both += Number(colour === o.colour && shape === o.shape);
    });
    return { colour: right.colour / ds.length, shape: right.shape / ds.length, both: right.both / ds.length };
  };
  const heldOut = await count(test);
  const seen = await count(new ScenesDataset('val', { ...scenes, maxObjects: 1 }));
  const last = new MetricsLog(path.join(out, 'metrics.jsonl')).read().filter((x) => x['eval/colour_acc_held_out'] !== undefined);
  assert.deepEqual(last.map((x) => x.step), [3, 6]);
  assert.deepEqual(r.metrics, last.at(-1) && Object.fromEntries(Object.entries(last.at(-1)!).filter(([k]) => k.startsWith('eval/'))));
  assert.deepEqual({
    colour: r.metrics['eval/colour_acc_held_out'], shape: r.metrics['eval/shape_acc_held_out'], both: r.metrics['eval/zeroshot_top1_held_out'],
  }, heldOut);
  assert.deepEqual({ colour: r.metrics['eval/colour_acc_seen'], shape: r.metrics['eval/shape_acc_seen'], both: r.metrics['eval/zeroshot_top1_seen'] }, seen);
  assert.equal(r.metrics['eval/zeroshot_top1'], heldOut.both);
  assert.match(html, /<h2>Seen and held-out compositions<\/h2>/);
});

test('a tiny classifier run: the report shows its predictions on validation images against chance', async () => {
  const out = newDir();
  const config = resolveConfig({
    model: 'test-vit', task: 'ce', steps: 2, batch_size: 8, log_every: 1, seed: 1,
    data: { train: 'scenes:train', val: 'scenes:test', options: { scenes: { length: 16, size: 32, supersample: 1 } }, workers: 0 },
    out,
  });
  const r = await train(config, { progress: 'none' });
  const html = fs.readFileSync(r.reportFile!, 'utf8');
  assert.match(html, /class="chance-label">chance top-1: 1.6%</);
  assert.match(html, /<tr><th>top1<\/th><td class="num">\d+\.\d%<\/td><td class="num chance">1.6%<\/td><\/tr>/);
  const test = new ScenesDataset('test', { length: 16, size: 32 });
  const truths = [...html.matchAll(/<img alt="[^"]*" src="data:image\/png;base64,[^"]+"><figcaption>predicted: <b>([^<]+)<\/b><br>true: ([^<]+)</g)].map((m) => m[2]);
  assert.deepEqual(truths, Array.from({ length: 12 }, (_, i) => SCENE_CLASS_NAMES[test.scene(i).objects[0]!.classIndex]));
});

test('renderReport: the per-attribute finding tells a drop on new pairs from an attribute not learnt at all, and from one that holds', () => {
  const config = resolveConfig({ model: 'test-clip', steps: 8, data: { train: 'scenes:train', val: 'scenes:test' } });
  const finding = (shapeSeen: number, shapeHeldOut: number) => {
    const final = { 'eval/colour_acc_seen': 1, 'eval/colour_acc_held_out': 1, 'eval/shape_acc_seen': shapeSeen, 'eval/shape_acc_held_out': shapeHeldOut };
    return /of the images\. ([^<]+)<\/p>/.exec(renderReport({ title: 'run', config, records: [{ step: 8, epoch: 0, ...final }], final, evaluation: details }))![1];
  };
  assert.match(finding(0.9, 0.2)!, /^Shape drops from 90.0% on seen to 20.0% on held-out compositions/);
  assert.match(finding(0.19, 0.21)!, /^Shape is as weak on seen compositions \(19.0%\): the model has not learnt shapes yet/);
  assert.match(finding(0.9, 0.88)!, /^Shape holds from seen \(90.0%\) to held-out compositions/);
});
