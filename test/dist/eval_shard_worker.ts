// One rank of the sharded-evaluation tests (eval_shard.test.ts starts it under mpirun with
// GLIMPSE_EVAL_SHARD_WORKER=1): evaluates tiny random models shared over the job's ranks, and
// rank 0 evaluates them again in this process alone. Each rank writes its metrics (rank 0's with
// the single-process ones) to result-rank<r>.json; the test compares them.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { joinWorld } from '../../src/dist/world.js';
import type { Communicator } from '../../src/dist/communicator.js';
import type { Dataset } from '../../src/data/dataset.js';
import { extractFeatures, imageEmbeddingSource } from '../../src/eval/features.js';
import { evaluateLinearProbe } from '../../src/eval/linear_probe.js';
import { evaluateRetrieval } from '../../src/eval/retrieval.js';
import { resolveConfig } from '../../src/train/config.js';
import { isStreamSplit, isTextCorpus, openDatasets } from '../../src/train/data.js';
import { evaluateModel, evalDetailsFile, reconstructionPicture, visionLanguageModel } from '../../src/train/evaluate.js';
import { buildTrainModel } from '../../src/train/model_setup.js';

type Metrics = Record<string, number>;

const SCENES = { scenes: { length: 13, size: 32, supersample: 1 } };

/** A run's config for `name`, writing under `out`; 13 validation scenes, an odd count. */
function configFor(name: string, out: string, corpus: string) {
  const base = { steps: 1, batch_size: 4, seed: 7, out, data: { train: 'scenes:train', val: 'scenes:test', options: SCENES, workers: 0 } };
  switch (name) {
    case 'clip':
      return resolveConfig({ ...base, model: 'test-clip', task: 'clip', eval: { batch_size: 4 } });
    case 'classifier':
      return resolveConfig({ ...base, model: 'test-vit', task: 'ce', eval: { batch_size: 3 } });
    case 'classifier-one-sample':
      return resolveConfig({ ...base, model: 'test-vit', task: 'ce', eval: { batch_size: 3, max_samples: 1 } });
    case 'mae':
      return resolveConfig({ ...base, model: 'test-vit-mae', task: 'mae', eval: { batch_size: 4 }, mae: { pictures: 3 } });
    case 'mae-one-sample':
      return resolveConfig({ ...base, model: 'test-vit-mae', task: 'mae', eval: { batch_size: 4, max_samples: 1 }, mae: { pictures: 3 } });
    case 'mlm':
      return resolveConfig({
        ...base, task: 'mlm', model: { custom: { family: 'bert', width: 32, layers: 2, heads: 2, context_length: 32 } },
        data: { train: `${corpus}:train`, val: `${corpus}:val`, options: { valFraction: 0.1 } },
        mlm: { vocab_size: 400 }, eval: { batch_size: 2, max_samples: 5 },
      });
    default:
      throw new Error(`no case ${name}`);
  }
}

const CASES = ['clip', 'classifier', 'classifier-one-sample', 'mae', 'mae-one-sample', 'mlm'];

/** Every case's metrics, evaluated by `ranks` (null: this process alone), with files under `dir`. */
async function evaluateAll(ranks: Communicator | null, dir: string, corpus: string): Promise<Record<string, Metrics>> {
  const out: Record<string, Metrics> = {};
  for (const name of CASES) {
    const config = configFor(name, path.join(dir, name), corpus);
    const { trainDataset, val } = await openDatasets(config);
    if (isStreamSplit(trainDataset) || (val && isStreamSplit(val))) throw new Error('eval_shard_worker: no case reads feature streams');
    const setup = await buildTrainModel(config, {
      classNames: isTextCorpus(trainDataset) ? undefined : trainDataset.classNames,
      documents: isTextCorpus(trainDataset) ? async () => trainDataset.documents : undefined,
    });
    out[name] = await evaluateModel(setup, val!, config, { step: 1, communicator: ranks });
    if (name === 'clip' && !isTextCorpus(val!) && !isTextCorpus(trainDataset)) {
      // Retrieval with every sample its own image, and a linear probe on the CLIP's image
      // embeddings: features of 13 training and 13 test scenes.
      const vl = visionLanguageModel(setup, 'tiny clip');
      const r = await evaluateRetrieval(vl, val!, { batchSize: 5, groupImages: 'sample', communicator: ranks });
      out['retrieval-by-sample'] = { ...r.metrics };
      // Two classes (by index parity), so that 13 samples leave every class a validation sample.
      const twoClasses = (d: Dataset): Dataset => ({ ...d, classNames: ['even', 'odd'], get: async (i) => ({ ...await d.get(i), label: i % 2 }) });
      const probe = await evaluateLinearProbe(imageEmbeddingSource(vl), twoClasses(trainDataset), twoClasses(val!), { batchSize: 4, limit: 13, communicator: ranks, weightDecays: [1e-3, 1e-1] });
      const features = await extractFeatures(val!, imageEmbeddingSource(vl), { batchSize: 4, communicator: ranks });
      out.features = Object.fromEntries(features.features.entries());
      out['linear-probe'] = { train: probe.trainAccuracy, val: probe.valAccuracy, test: probe.testAccuracy!, weightDecay: probe.weightDecay, ...Object.fromEntries(probe.classifier.weights.slice(0, 4).entries()) };
    }
  }
  return out;
}

/** The files evaluations wrote under `dir`: the details of the classifier and CLIP, the MAE's picture. */
function writtenFiles(dir: string): string[] {
  const files = ['clip', 'classifier'].map((n) => evalDetailsFile(configFor(n, path.join(dir, n), ''), 1));
  files.push(reconstructionPicture(configFor('mae', path.join(dir, 'mae'), ''), 1));
  return files.filter((f) => fs.existsSync(f)).map((f) => path.relative(dir, f));
}

async function main(): Promise<void> {
  const ranks = joinWorld();
  if (!ranks) throw new Error('eval_shard_worker: not started as one of several ranks');
  const root = process.env.GLIMPSE_EVAL_SHARD_DIR!;
  const corpus = process.env.GLIMPSE_EVAL_SHARD_CORPUS!;
  const dir = path.join(root, `rank${ranks.rank}`);
  const shared = await evaluateAll(ranks, dir, corpus);
  const result: Record<string, unknown> = { rank: ranks.rank, worldSize: ranks.worldSize, shared, files: writtenFiles(dir) };
  if (ranks.rank === 0) {
    const singleDir = path.join(root, 'single');
    result.single = await evaluateAll(null, singleDir, corpus);
    result.singleFiles = writtenFiles(singleDir);
    // The details rank 0 wrote are those of one process (the same predictions, the same examples).
    for (const n of ['clip', 'classifier']) {
      const [a, b] = [dir, singleDir].map((d) => JSON.parse(fs.readFileSync(evalDetailsFile(configFor(n, path.join(d, n), ''), 1), 'utf8')) as unknown);
      assert.deepEqual(a, b, `${n}: the evaluation details of 2 ranks and of one process`);
    }
  }
  ranks.close();
  // A file per rank: two ranks' long lines on one stdout could interleave.
  fs.writeFileSync(path.join(root, `result-rank${ranks.rank}.json`), JSON.stringify(result));
}

if (process.env.GLIMPSE_EVAL_SHARD_WORKER === '1') await main();
