// Training configs: files, overrides, defaults, and errors that name the key.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import YAML from 'yaml';
import {
  applyOverride, ConfigError, configToYAML, describeConfig, loadConfig, parseOverrideArgs, resolveConfig,
} from '../../src/train/config.js';
import { tempDirs } from '../helpers.js';

const newDir = tempDirs('config');
const minimal = () => ({ model: 'test-clip', steps: 10, data: { train: 'scenes:train' } });

function rejects(raw: unknown, key: string, pattern: RegExp): void {
  assert.throws(() => resolveConfig(raw), (e: unknown) => {
    assert.ok(e instanceof ConfigError, String(e));
    assert.equal(e.key, key, e.message);
    assert.match(e.message, pattern);
    return true;
  });
}

test('a minimal config gets every default', () => {
  const c = resolveConfig(minimal());
  assert.deepEqual(c.model, { name: 'test-clip', weights: null, custom: null });
  assert.equal(c.task, 'clip');
  assert.equal(c.optim.lr, 5e-4);
  assert.deepEqual(c.optim.betas, [0.9, 0.98]);
  assert.equal(c.optim.schedule, 'cosine');
  assert.equal(c.data.val, null);
  assert.deepEqual(c.data.augment, { random_resized_crop: null, crop_ratio: [3 / 4, 4 / 3], pad_crop: 0, horizontal_flip: false });
  assert.equal(c.checkpoint.keep, 2);
  assert.equal(c.epochs, null);
});

test('unknown keys are errors naming the key, with the nearest known one', () => {
  rejects({ ...minimal(), batchsize: 4 }, 'batchsize', /unknown key; did you mean 'batch_size'\?/);
  rejects({ ...minimal(), optim: { learning_rate: 1 } }, 'optim.learning_rate', /unknown key.*known here: lr, /);
  rejects({ ...minimal(), optim: { wieght_decay: 0.1 } }, 'optim.wieght_decay', /did you mean 'weight_decay'/);
  rejects({ ...minimal(), data: { train: 'x', augment: { hflip: true } } }, 'data.augment.hflip', /unknown key/);
  rejects({ model: { custom: { famly: 'clip' } }, steps: 1, data: { train: 'x' } }, 'model.custom.famly', /did you mean 'family'/);
});

test('wrong types and values name the key and what was expected', () => {
  rejects({ ...minimal(), optim: { lr: 'fast' } }, 'optim.lr', /expected a number, got string "fast"/);
  rejects({ ...minimal(), batch_size: 2.5 }, 'batch_size', /expected an integer, got 2.5/);
  rejects({ ...minimal(), batch_size: 0 }, 'batch_size', /must be >= 1, got 0/);
  rejects({ ...minimal(), task: 'clpi' }, 'task', /expected one of clip, siglip, catlip, ce, mae, mlm, oad, got string "clpi"; did you mean 'clip'/);
  rejects({ ...minimal(), optim: { betas: [0.9] } }, 'optim.betas', /two numbers/);
  rejects({ ...minimal(), patch_dropout: 1 }, 'patch_dropout', /must be < 1/);
  rejects({ ...minimal(), lock_image: 'yes' }, 'lock_image', /true or false/);
  rejects({ ...minimal(), eval: { templates: ['a photo'] } }, 'eval.templates', /no \{\}/);
  rejects({ ...minimal(), data: 'scenes' }, 'data', /expected a mapping/);
});

test('whole-config rules: model, data, length, accumulation, LiT', () => {
  rejects({ steps: 1, data: { train: 'x' } }, 'model', /is required/);
  rejects({ model: 'test-clip', steps: 1 }, 'data.train', /is required/);
  rejects({ model: 'test-clip', data: { train: 'x' } }, 'steps', /exactly one of steps, epochs and time_budget_s/);
  rejects({ ...minimal(), epochs: 2 }, 'steps', /exactly one/);
  rejects({ ...minimal(), time_budget_s: 60 }, 'steps', /exactly one/);
  rejects({ ...minimal(), steps: null, time_budget_s: 0 }, 'time_budget_s', /must be > 0/);
  rejects({ ...minimal(), batch_size: 10, optim: { grad_accum: 4 } }, 'optim.grad_accum', /multiple of grad_accum 4/);
  rejects({ ...minimal(), unlock_last_blocks: 1 }, 'unlock_last_blocks', /lock_image: true/);
  rejects({ ...minimal(), model: { name: 'test-clip', custom: { family: 'clip' } } }, 'model', /not both/);
  rejects({ ...minimal(), task: 'clip', model: { custom: { family: 'vit' } } }, 'model.custom.family', /the clip task trains clip, not vit/);
});

test('overrides: --set key=value and dotted flags, values read as YAML', () => {
  assert.deepEqual(parseOverrideArgs(['--set', 'optim.lr=1e-3', '--optim.betas', '[0.9, 0.95]', '--seed=4', '--set=out=a=b']),
    [['optim.lr', '1e-3'], ['optim.betas', '[0.9, 0.95]'], ['seed', '4'], ['out', 'a=b']]);
  assert.throws(() => parseOverrideArgs(['--optim.lr']), /needs a value/);
  assert.throws(() => parseOverrideArgs(['stray']), /unexpected argument "stray"/);
  assert.throws(() => parseOverrideArgs(['--set', 'novalue']), /key=value/);
  const raw: Record<string, unknown> = minimal();
  applyOverride(raw, 'optim.lr', '1e-3');
  applyOverride(raw, 'optim.betas', '[0.9, 0.95]');
  applyOverride(raw, 'lock_image', 'true');
  applyOverride(raw, 'model.weights', 'some/dir');
  applyOverride(raw, 'data.val', 'null');
  const c = resolveConfig(raw);
  assert.equal(c.optim.lr, 1e-3);
  assert.deepEqual(c.optim.betas, [0.9, 0.95]);
  assert.equal(c.lock_image, true);
  assert.deepEqual(c.model, { name: 'test-clip', weights: 'some/dir', custom: null });
  assert.throws(() => applyOverride({ steps: 3 }, 'steps.x', '1'), /steps: is number 3, so steps.x cannot be set/);
  assert.throws(() => loadConfig(null, { overrides: [['model', 'test-clip'], ['steps', '2'], ['data.train', 'x'], ['optim.lrr', '1']] }),
    /optim.lrr: unknown key; did you mean 'lr'/);
});

test('files: YAML and JSON, overrides on top, and the saved YAML reads back to the same config', () => {
  const dir = newDir();
  fs.mkdirSync(dir, { recursive: true });
  const yamlFile = path.join(dir, 'a.yaml');
  fs.writeFileSync(yamlFile, 'model: test-clip\nsteps: 5\ndata:\n  train: scenes:train\noptim:\n  lr: 0.01\n');
  const c = loadConfig(yamlFile, { overrides: [['optim.lr', '0.02'], ['out', 'runs/x']] });
  assert.equal(c.optim.lr, 0.02);
  assert.equal(c.out, 'runs/x');
  assert.deepEqual(resolveConfig(YAML.parse(configToYAML(c))), c);
  // A length from the command line replaces the file's, whichever key either uses.
  const byTime = loadConfig(yamlFile, { overrides: [['time_budget_s', '90']] });
  assert.deepEqual([byTime.steps, byTime.epochs, byTime.time_budget_s], [null, null, 90]);
  assert.equal(loadConfig(yamlFile, { overrides: [['epochs', '2'], ['steps', '7']] }).steps, 7);
  const jsonFile = path.join(dir, 'a.json');
  fs.writeFileSync(jsonFile, JSON.stringify({ ...minimal(), task: 'siglip', model: 'test-siglip' }));
  assert.equal(loadConfig(jsonFile).task, 'siglip');
  const bad = path.join(dir, 'bad.yaml');
  fs.writeFileSync(bad, 'model: [unclosed\n');
  assert.throws(() => loadConfig(bad), /bad\.yaml/);
  assert.throws(() => loadConfig(path.join(dir, 'missing.yaml')), /missing\.yaml does not exist/);
});

test('the example configs in configs/ are valid', () => {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
  const dir = [path.join(root, 'configs'), path.join(process.cwd(), 'configs')].find((d) => fs.existsSync(d));
  assert.ok(dir, 'configs/ not found');
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  assert.ok(files.length >= 6, files.join(', '));
  for (const f of files) assert.doesNotThrow(() => loadConfig(path.join(dir, f)), f);
});

test('describeConfig lists every key with its default', () => {
  const lines = describeConfig();
  assert.ok(lines.some((l) => l.startsWith('optim.lr: ') && l.includes('(default 0.0005)')));
  assert.ok(lines.some((l) => l.startsWith('task [clip|siglip|catlip|ce|mae|mlm|oad]: ')));
});

test('validation options merge over the training options key by key', async () => {
  const { isStreamSplit, isTextCorpus, mergeOptions, openDatasets } = await import('../../src/train/data.js');
  assert.deepEqual(mergeOptions({ scenes: { size: 32, seed: 1 }, workers: 2 }, { scenes: { length: 8 } }),
    { scenes: { size: 32, seed: 1, length: 8 }, workers: 2 });
  assert.deepEqual(mergeOptions({ a: [1, 2] }, { a: [3] }), { a: [3] });
  const config = resolveConfig({
    model: 'test-clip', task: 'clip', steps: 1,
    data: { train: 'scenes:train', val: 'scenes:test', options: { scenes: { size: 32 } }, val_options: { scenes: { length: 8 } } },
  });
  const { trainDataset, val } = await openDatasets(config);
  const size = async (ds: typeof trainDataset) => {
    assert.ok(!isTextCorpus(ds) && !isStreamSplit(ds));
    const s = await ds.get(0);
    return s.image.kind === 'pixels' ? s.image.image.width : -1;
  };
  assert.ok(val && !isTextCorpus(val) && !isStreamSplit(val));
  assert.equal(val.length, 8);
  assert.equal(await size(val!), 32);
  assert.equal(await size(trainDataset), 32);
});
