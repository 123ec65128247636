// Numerical parity with Hugging Face transformers on a fixture folder:
//
//   config.json, model.safetensors   the checkpoint, as save_pretrained wrote it
//   inputs.safetensors               forward arguments by HF name (pixel_values, labels, ...)
//   outputs.safetensors              reference outputs; meta.json lists their names and shapes
//   grads.safetensors                (optional) d loss / d parameter, by HF parameter name
//   meta.json                        {class, inputs, outputs, loss_fn, ...}
//
// The model family comes from config.json (architectures, model_type). A fixture of the official
// OadTR code has no config.json: its meta.json (source naming OadTR, and a `config` with the sizes
// the weights do not tell) marks it, and its model.safetensors holds the official state dict.
// Outputs must match within
// 1e-4 absolute; each gradient within 1e-3 of the largest |reference gradient| of its tensor.
import fs from 'node:fs';
import path from 'node:path';
import type { Backend } from '../tensor/backend.js';
import { getBackend, defaultBackend } from '../tensor/device.js';
import { type Tensor, tensor } from '../tensor/tensor.js';
import { type HFConfig, readHFConfig } from '../io/hf.js';
import { type HostTensor, SafetensorsFile } from '../io/safetensors.js';
import { FAMILIES, type FixtureMeta, type FixtureModel, isOadtrMeta } from './families/index.js';

export const OUTPUT_TOLERANCE = 1e-4;
export const GRADIENT_TOLERANCE = 1e-3;
/** The least gradient tolerance, relative to the model's largest reference gradient (see runParity). */
export const NOISE_FLOOR = 1e-6;

export interface ParityCheck {
  /** The output name, or the parameter's HF name as the gradients file has it. */
  name: string;
  kind: 'output' | 'gradient';
  shape: number[];
  /** Largest |ours - reference| (Infinity where shapes differ or a value is missing or NaN). */
  maxAbsErr: number;
  /**
   * Outputs: the absolute tolerance. Gradients: the relative tolerance times the tensor's largest
   * |reference|, but at least NOISE_FLOOR times the largest |reference| of any gradient.
   */
  tolerance: number;
  ok: boolean;
  note?: string;
}

export interface ParityReport {
  dir: string;
  family: string;
  architecture: string;
  backend: string;
  /** The scalar whose gradients were compared, when there was one. */
  loss: number | null;
  checks: ParityCheck[];
  ok: boolean;
}

export interface ParityOptions {
  /** Backend (or its name) to run on; default the default backend. */
  backend?: Backend | string;
  /** Absolute tolerance of outputs; default 1e-4. */
  outputTolerance?: number;
  /** Gradient tolerance relative to each tensor's largest |reference gradient|; default 1e-3. */
  gradientTolerance?: number;
}


/** The family and architecture of a fixture's config, or a 'not supported yet' error. */
export function detectFamily(config: HFConfig, metaClass?: string): { family: string; architecture: string } {
  const archs = Array.isArray(config.architectures) ? config.architectures.filter((a): a is string => typeof a === 'string') : [];
  const architecture = archs[0] ?? metaClass ?? '(no architectures in config.json)';
  const modelType = typeof config.model_type === 'string' ? config.model_type : '(no model_type)';
  const supported = FAMILIES.map((f) => `${f.name} (${f.architectures.join(', ')})`).join('; ');
  const family = FAMILIES.find((f) => f.matches(modelType));
  if (!family || !family.architectures.includes(architecture)) {
    throw new Error(`parity: ${architecture} (model_type '${modelType}') is not supported yet; supported: ${supported}`);
  }
  return { family: family.name, architecture };
}

/** What a fixture folder holds (the file comment has the details), for the errors of folders that are not one. */
const FIXTURE_LAYOUT = 'a parity fixture folder holds a checkpoint as HF save_pretrained writes it (config.json, model.safetensors), '
  + "the forward's inputs (inputs.safetensors), HF's outputs on them (outputs.safetensors), and optionally the loss's "
  + 'gradients (grads.safetensors) and meta.json; an OadTR fixture has the official state dict in model.safetensors '
  + 'and, instead of config.json, a meta.json whose source names OadTR';
/** The files every fixture folder has. */
const FIXTURE_FILES = ['config.json', 'inputs.safetensors', 'outputs.safetensors'];

/**
 * Checks that `dir` is a fixture folder holding `needed`; the error names what it lacks and any
 * sub-folders that are fixtures.
 */
function checkFixtureDir(dir: string, needed = FIXTURE_FILES): void {
  if (!fs.existsSync(dir)) throw new Error(`parity: ${dir} does not exist; ${FIXTURE_LAYOUT}`);
  if (!fs.statSync(dir).isDirectory()) throw new Error(`parity: ${dir} is not a folder; ${FIXTURE_LAYOUT}`);
  if (isOfficialOadtr(dir)) needed = needed.map((f) => (f === 'config.json' ? 'model.safetensors' : f));
  const lacking = needed.filter((f) => !fs.existsSync(path.join(dir, f)));
  if (lacking.length === 0) return;
  const isFixture = (d: string) => isOfficialOadtr(d) || FIXTURE_FILES.every((f) => fs.existsSync(path.join(d, f)));
  const inside = fs.readdirSync(dir).filter((f) => fs.statSync(path.join(dir, f)).isDirectory() && isFixture(path.join(dir, f))).sort();
  const hint = inside.length ? `. Its sub-folders ${inside.join(', ')} are fixtures` : '';
  throw new Error(`parity: ${dir} is not a parity fixture folder (it lacks ${lacking.join(', ')}); ${FIXTURE_LAYOUT}${hint}`);
}

/** A fixture of the official OadTR code: no config.json, and a meta.json that says so. */
function isOfficialOadtr(dir: string): boolean {
  if (fs.existsSync(path.join(dir, 'config.json')) || !fs.existsSync(path.join(dir, 'meta.json'))) return false;
  try {
    return isOadtrMeta(readMeta(dir));
  } catch {
    return false;
  }
}

function readMeta(dir: string): FixtureMeta {
  const file = path.join(dir, 'meta.json');
  if (!fs.existsSync(file)) return {};
  try {
    const m = JSON.parse(fs.readFileSync(file, 'utf8')) as unknown;
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new Error('must be a JSON object');
    return m as FixtureMeta;
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`, { cause: e });
  }
}

function readTensors(file: string, required: boolean): Map<string, HostTensor> | null {
  if (!fs.existsSync(file)) {
    if (required) throw new Error(`${file}: missing`);
    return null;
  }
  const f = SafetensorsFile.open(file);
  try {
    return new Map(f.names.map((n) => [n, f.read(n)]));
  } finally {
    f.close();
  }
}

function loadFixtureModel(dir: string, backend: Backend, meta: FixtureMeta): { model: FixtureModel; family: string; architecture: string } {
  const config: HFConfig = isOfficialOadtr(dir) ? { model_type: 'oadtr', architectures: ['OadTR'] } : readHFConfig(dir);
  const { family, architecture } = detectFamily(config, meta.class);
  const model = FAMILIES.find((f) => f.name === family)!.load(dir, architecture, backend);
  return { model, family, architecture };
}

function toTensor(h: HostTensor, backend: Backend): Tensor {
  return tensor(h.data, { dtype: h.dtype, shape: h.shape, backend });
}

const resolveBackend = (b: Backend | string | undefined): Backend => (b === undefined ? defaultBackend() : typeof b === 'string' ? getBackend(b) : b);

/**
 * Our model's outputs (by fixture name) and parameter gradients (by HF checkpoint name) on a
 * fixture's inputs: what a fixture made from this implementation would hold.
 */
export function evaluateFixture(dir: string, opts: { backend?: Backend | string } = {}): {
  outputs: Record<string, Tensor>;
  gradients: Record<string, Tensor>;
} {
  // Its outputs are what a fixture made from this implementation would hold: none are read.
  checkFixtureDir(dir, ['config.json', 'inputs.safetensors']);
  const backend = resolveBackend(opts.backend);
  const meta = readMeta(dir);
  const { model } = loadFixtureModel(dir, backend, meta);
  const inputs = readInputs(dir, backend);
  const { outputs, loss } = model.run(inputs, meta);
  const gradients: Record<string, Tensor> = {};
  if (loss) {
    loss.backward();
    for (const [k, p] of model.module.namedParameters()) if (p.grad) gradients[model.hfName(k)] = p.grad;
  }
  return { outputs, gradients };
}

function readInputs(dir: string, backend: Backend): Record<string, Tensor> {
  const inputs: Record<string, Tensor> = {};
  for (const [k, h] of readTensors(path.join(dir, 'inputs.safetensors'), true)!) inputs[k] = toTensor(h, backend);
  return inputs;
}

/** max |a - b| over same-sized arrays; NaN anywhere it is not NaN in both gives Infinity. */
function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const x = Number(a[i]);
    const y = Number(b[i]);
    if (Number.isNaN(x) || Number.isNaN(y)) {
      if (!(Number.isNaN(x) && Number.isNaN(y))) return Infinity;
      continue;
    }
    const d = Math.abs(x - y);
    if (d > m) m = d;
  }
  return m;
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(Number(a[i])));
  return m;
}

/** Shapes agree up to size-1 axes (HF fixtures store a scalar loss as [1]). */
function sameShape(a: readonly number[], b: readonly number[]): boolean {
  const x = a.filter((d) => d !== 1);
  const y = b.filter((d) => d !== 1);
  return x.length === y.length && x.every((d, i) => d === y[i]);
}

const hostNumbers = (t: Tensor): ArrayLike<number> => {
  const d = t.data();
  return d instanceof BigInt64Array ? Array.from(d, Number) : d;
};

/**
 * Runs the fixture in `dir` and compares every output listed in meta.json (or in
 * outputs.safetensors) and, when grads.safetensors is present, every parameter gradient of the
 * loss. Returns a check per tensor; `ok` is true when all pass.
 */
export function runParity(dir: string, opts: ParityOptions = {}): ParityReport {
  checkFixtureDir(dir);
  const backend = resolveBackend(opts.backend);
  const outTol = opts.outputTolerance ?? OUTPUT_TOLERANCE;
  const gradTol = opts.gradientTolerance ?? GRADIENT_TOLERANCE;
  const meta = readMeta(dir);
  const { model, family, architecture } = loadFixtureModel(dir, backend, meta);
  const refOutputs = readTensors(path.join(dir, 'outputs.safetensors'), true)!;
  const refGrads = readTensors(path.join(dir, 'grads.safetensors'), false);
  const inputs = readInputs(dir, backend);
  const { outputs, loss } = model.run(inputs, meta);

  const checks: ParityCheck[] = [];
  const names = meta.outputs ? Object.keys(meta.outputs) : [...refOutputs.keys()];
  for (const name of names) {
    const ref = refOutputs.get(name);
    const ours = outputs[name];
    const shape = ref?.shape ?? meta.outputs?.[name] ?? [];
    const fail = (note: string) => checks.push({ name, kind: 'output', shape, maxAbsErr: Infinity, tolerance: outTol, ok: false, note });
    if (!ref) fail('listed in meta.json but not in outputs.safetensors');
    else if (!ours) fail(`the ${architecture} implementation does not produce it (it gives ${Object.keys(outputs).filter((k) => !k.startsWith('hidden_states.')).join(', ')})`);
    else if (!sameShape(ref.shape, ours.shape)) fail(`shape [${ours.shape}] vs reference [${ref.shape}]`);
    else {
      const err = maxAbsDiff(hostNumbers(ours), ref.data instanceof BigInt64Array ? Array.from(ref.data, Number) : ref.data);
      checks.push({ name, kind: 'output', shape, maxAbsErr: err, tolerance: outTol, ok: err <= outTol });
    }
  }

  if (refGrads) {
    if (!loss) throw new Error(`parity: ${dir} has grads.safetensors but the forward gave no loss (are labels in inputs.safetensors?)`);
    if (meta.loss_fn !== undefined && family === 'vit' && meta.loss_fn !== 'cross-entropy') {
      throw new Error(`parity: loss_fn '${meta.loss_fn}' is not supported for ${architecture} (supported: cross-entropy)`);
    }
    model.module.zeroGrad();
    loss.backward();
    const params = new Map(model.module.namedParameters());
    const covered = new Set<string>();
    // Some gradients are zero in exact arithmetic (a key bias shifts every score of a query
    // equally, which softmax ignores); in float32 both sides hold rounding noise there, which no
    // relative tolerance can compare. So no tensor's tolerance goes below NOISE_FLOOR times the
    // largest reference gradient of the whole model.
    const floor = NOISE_FLOOR * Math.max(0, ...[...refGrads.values()].map((g) => maxAbs(g.data as Float32Array)));
    for (const [name, ref] of refGrads) {
      const key = model.moduleKey(name);
      const p = params.get(key);
      const scaled = gradTol * maxAbs(ref.data as Float32Array);
      const tol = Math.max(scaled, floor);
      const floorNote = scaled < floor ? { note: `reference is at rounding-noise level; model-wide floor ${floor.toExponential(1)}` } : {};
      if (!p) {
        checks.push({ name, kind: 'gradient', shape: ref.shape, maxAbsErr: Infinity, tolerance: tol, ok: false, note: 'no such parameter in the model' });
        continue;
      }
      covered.add(key);
      if (!sameShape(p.shape, ref.shape)) {
        checks.push({ name, kind: 'gradient', shape: ref.shape, maxAbsErr: Infinity, tolerance: tol, ok: false, note: `parameter is [${p.shape}]` });
        continue;
      }
      const ours = p.grad ? hostNumbers(p.grad) : new Float32Array(ref.data.length);
      const err = maxAbsDiff(ours, ref.data as Float32Array);
      checks.push({ name, kind: 'gradient', shape: ref.shape, maxAbsErr: err, tolerance: tol, ok: err <= tol, ...floorNote,
        ...(p.grad ? {} : { note: 'no gradient reached it' }) });
    }
    // A parameter the reference has no gradient for must get none (or zeros) here too.
    for (const [key, p] of params) {
      if (covered.has(key)) continue;
      const err = p.grad ? maxAbs(hostNumbers(p.grad)) : 0;
      checks.push({ name: model.hfName(key), kind: 'gradient', shape: [...p.shape], maxAbsErr: err, tolerance: 0, ok: err === 0, note: 'no reference gradient' });
    }
  }

  return {
    dir, family, architecture, backend: backend.name,
    loss: loss ? loss.item() : null,
    checks,
    ok: checks.length > 0 && checks.every((c) => c.ok),
  };
}

/** A table of the report, one line per check, for the command line. */
export function formatParityReport(r: ParityReport): string {
  const failed = r.checks.filter((c) => !c.ok).length;
  const head = `parity ${r.family} ${r.architecture} on ${r.backend}: ${r.checks.length - failed}/${r.checks.length} ok` +
    (r.loss !== null ? `, loss ${r.loss}` : '') + (r.ok ? '' : ` — ${failed} FAILED`);
  const width = Math.max(...r.checks.map((c) => c.name.length), 4);
  const lines = r.checks.map((c) => {
    const err = Number.isFinite(c.maxAbsErr) ? c.maxAbsErr.toExponential(2) : String(c.maxAbsErr);
    return `  ${c.ok ? 'ok  ' : 'FAIL'} ${c.kind.padEnd(8)} ${c.name.padEnd(width)} [${c.shape.join(', ')}]`.padEnd(width + 40) +
      ` max|err| ${err.padStart(9)}  tol ${c.tolerance.toExponential(2)}${c.note ? `  (${c.note})` : ''}`;
  });
  return [head, ...lines].join('\n');
}
