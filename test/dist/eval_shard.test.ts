// Evaluation shared over 2 ranks under a real mpirun gives the metrics of one process:
// eval_shard_worker.ts evaluates tiny random models (CLIP: zero-shot with the scenes'
// compositional metrics, retrieval, linear probe; a ViT classifier; an MAE; a BERT) on 13 scenes
// (shares of 7 and 6) and on a single sample (a rank with nothing to evaluate), and rank 0 again
// alone. Forward passes over differently made-up batches may round differently: image features
// agree within FEATURE_TOLERANCE; the metrics here come out equal.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCENE_CLASS_NAMES } from '../../src/data/scenes.js';
import { labelFields } from '../../src/io/hf.js';
import type { ImageClassifier } from '../../src/models/family.js';
import { getModelEntry, modelFromConfig } from '../../src/models/registry.js';
import { Generator } from '../../src/tensor/random.js';
import { tempDirs } from '../helpers.js';
import { mpirun, mpiSkipReason } from './mpirun.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const tmp = tempDirs('eval-shard');
const skip = mpiSkipReason();

/** An image embedding computed in another batch (of 4 or of 3): 9e-8 at most seen here, float32 rounding. */
const FEATURE_TOLERANCE = 1e-6;
/** The linear probe's L-BFGS fit amplifies the features' rounding; its weights agree to this (relative). */
const PROBE_TOLERANCE = 1e-4;

type Metrics = Record<string, number>;
interface RankResult {
  rank: number;
  worldSize: number;
  shared: Record<string, Metrics>;
  files: string[];
  single?: Record<string, Metrics>;
  singleFiles?: string[];
}

function corpusFile(dir: string): string {
  const licences = '/usr/share/common-licenses';
  const names = ['GPL-3', 'Apache-2.0'].filter((n) => fs.existsSync(path.join(licences, n)));
  assert.ok(names.length > 0, `no licence texts in ${licences}`);
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'licences.txt');
  fs.writeFileSync(file, names.map((n) => fs.readFileSync(path.join(licences, n), 'utf8')).join('\n\n'));
  return file;
}

test('sharded evaluation: 2 ranks give the metrics of one process, every rank the same; only rank 0 writes', { skip }, () => {
  const dir = tmp();
  const run = mpirun(2, path.join(here, 'eval_shard_worker.js'), [], {
    env: { GLIMPSE_EVAL_SHARD_WORKER: '1', GLIMPSE_EVAL_SHARD_DIR: dir, GLIMPSE_EVAL_SHARD_CORPUS: corpusFile(dir) },
  });
  assert.equal(run.status, 0, run.output);
  const [r0, r1] = [0, 1].map((k) => JSON.parse(fs.readFileSync(path.join(dir, `result-rank${k}.json`), 'utf8')) as RankResult);
  assert.equal(r0!.worldSize, 2);
  // Every rank computes the metrics from the same gathered rows: bit for bit the same.
  assert.deepEqual(r1!.shared, r0!.shared);
  const single = r0!.single!;
  assert.deepEqual(Object.keys(r0!.shared).sort(), Object.keys(single).sort());
  for (const [name, metrics] of Object.entries(single)) {
    assert.deepEqual(Object.keys(r0!.shared[name]!).sort(), Object.keys(metrics).sort(), name);
    for (const [k, v] of Object.entries(metrics)) {
      const got = r0!.shared[name]![k]!;
      if (name === 'features') assert.ok(Math.abs(got - v) <= FEATURE_TOLERANCE, `feature ${k}: ${got} on 2 ranks, ${v} in one process`);
      else if (name === 'linear-probe' && /^\d+$/.test(k)) assert.ok(Math.abs(got - v) <= PROBE_TOLERANCE * Math.abs(v), `probe weight ${k}: ${got} on 2 ranks, ${v} in one process`);
      else assert.equal(got, v, `${name} ${k}: ${got} on 2 ranks, ${v} in one process`);
    }
  }
  for (const name of ['clip', 'classifier', 'classifier-one-sample', 'mae', 'mae-one-sample', 'mlm', 'retrieval-by-sample', 'linear-probe']) {
    assert.ok(Object.keys(single[name] ?? {}).length > 0, `case ${name} evaluated`);
  }
  // Rank 0 writes what one process writes; rank 1 nothing.
  assert.deepEqual(r0!.files, r0!.singleFiles);
  assert.equal(r0!.files.length, 3);
  assert.deepEqual(r1!.files, []);
});

test('glimpse eval accuracy under mpirun -n 2: rank 0 prints once, what one process prints', { skip }, () => {
  const dir = tmp();
  const model = modelFromConfig({ ...getModelEntry('test-vit').config, architectures: ['ViTForImageClassification'], ...labelFields(SCENE_CLASS_NAMES) },
    { generator: new Generator(11) }) as ImageClassifier;
  model.savePretrained(dir);
  const main = path.join(here, '..', '..', 'src', 'cli', 'main.js');
  for (const json of [false, true]) {
    const args = ['eval', 'accuracy', '--model', dir, '--data', 'scenes:val', '--limit', '9', '--batch-size', '4', ...(json ? ['--json'] : [])];
    const alone = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', env: { ...process.env, GLIMPSE_NUM_THREADS: '1' } });
    assert.equal(alone.status, 0, alone.stderr);
    const shared = mpirun(2, main, args);
    assert.equal(shared.status, 0, shared.output);
    assert.equal(shared.stdout, alone.stdout);
    assert.match(alone.stdout, json ? /"samples":9/ : /^accuracy of .*: 9 images/);
  }
});
