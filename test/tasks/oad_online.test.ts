// Streaming OadTR inference: push-by-push, the batch mode and the model's own forward on
// zero-padded windows agree; each push is one forward of one window; `glimpse detect` prints them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { detectCommand, detectLine, type DetectLine } from '../../src/cli/detect.js';
import { cutWindow } from '../../src/data/oad_streams.js';
import { writeSafetensors } from '../../src/io/safetensors.js';
import type { OnlineActionDetector, OnlineDetectorOutput } from '../../src/models/family.js';
import { OadTR, OadTRConfig, type OadTRConfigOptions } from '../../src/models/oadtr.js';
import { noGrad } from '../../src/tensor/autograd.js';
import { getBackend } from '../../src/tensor/device.js';
import { Generator } from '../../src/tensor/random.js';
import { type Tensor, tensor } from '../../src/tensor/tensor.js';
import { OnlineDetector, type OnlineDetection } from '../../src/tasks/oad.js';
import { writeFeatureStreams } from '../../src/tasks/oad_streams.js';
import { OadSyntheticStreams } from '../../src/data/oad_synthetic.js';
import { assertClose, rng, tempDirs } from '../helpers.js';

const tmp = tempDirs('oad-online');
const reference = getBackend('reference');

const small: OadTRConfigOptions = {
  window: 6, cameraDim: 5, motionDim: 3, embeddingDim: 16, numHeads: 2, hiddenDim: 24, numLayers: 2,
  decoderLayers: 2, decoderEmbeddingDimOut: 20, decoderNumHeads: 2, queryNum: 3, numClasses: 4,
};

function model(opts: OadTRConfigOptions = {}, backend = reference): OadTR {
  return new OadTR(new OadTRConfig({ ...small, ...opts }), { generator: new Generator(7), backend });
}

function video(length: number, dims: { cameraDim: number; motionDim: number }, seed = 1): { camera: Float32Array; motion: Float32Array } {
  const r = rng(seed);
  return {
    camera: Float32Array.from({ length: length * dims.cameraDim }, () => r() * 2 - 1),
    motion: Float32Array.from({ length: length * dims.motionDim }, () => r() * 2 - 1),
  };
}

function pushAll(d: OnlineDetector, v: { camera: Float32Array; motion: Float32Array }, length: number): OnlineDetection[] {
  const out: OnlineDetection[] = [];
  for (let t = 0; t < length; t++) {
    out.push(d.push(v.camera.subarray(t * d.cameraDim, (t + 1) * d.cameraDim), v.motion.subarray(t * d.motionDim, (t + 1) * d.motionDim)));
  }
  return out;
}

const softmax = (row: ArrayLike<number>): number[] => {
  const m = Math.max(...Array.from(row));
  const e = Array.from(row, (v) => Math.exp(v - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / s);
};

const flat = (ds: readonly OnlineDetection[]): number[] => ds.flatMap((d) => [...d.probs, ...d.anticipation.flatMap((a) => [...a])]);

test('push equals the model forward on the zero-padded window, chunk by chunk', () => {
  const m = model();
  const d = new OnlineDetector(m);
  const T = 14;
  const v = video(T, small as { cameraDim: number; motionDim: number });
  const pushed = pushAll(d, v, T);
  const stream = { name: 'v', length: T, ...v, labels: new Float32Array(0) };
  for (const end of [0, 3, 5, 6, 13]) {
    // The window cut as the 'every-chunk' cover cuts it, run through the model directly.
    const w = cutWindow(stream, end, 6, 0, { cameraDim: 5, motionDim: 3, classes: 0 });
    const out = noGrad(() => m.forward(tensor(w.camera, { shape: [1, 6, 5], backend: reference }), tensor(w.motion, { shape: [1, 6, 3], backend: reference })));
    const p = pushed[end]!;
    assert.equal(p.chunk, end);
    assertClose(p.probs, softmax(out.encoderScores.data() as Float32Array), 1e-6, 1e-7, `probs at chunk ${end}`);
    const dec = out.decoderScores.data() as Float32Array;
    assert.equal(p.anticipation.length, 3);
    p.anticipation.forEach((a, q) => assertClose(a, softmax(dec.subarray(q * 4, (q + 1) * 4)), 1e-6, 1e-7, `anticipation ${q} at chunk ${end}`));
  }
  // Before the window fills, zero padding matters: a window that starts with the video differs
  // from one that sees earlier chunks, so an unpadded or mis-ordered ring would show here.
  assert.notDeepEqual([...pushed[2]!.probs], [...pushed[9]!.probs]);
});

test('detectVideo equals push bitwise, for every batch size, on the reference backend', () => {
  const m = model();
  const T = 17;
  const v = video(T, small as { cameraDim: number; motionDim: number }, 3);
  const pushed = pushAll(new OnlineDetector(m), v, T);
  for (const batchSize of [1, 4, 17, 32]) {
    const batched = new OnlineDetector(m).detectVideo(v.camera, v.motion, { batchSize });
    assert.deepEqual(batched.map((b) => b.chunk), pushed.map((p) => p.chunk));
    assert.deepEqual(flat(batched), flat(pushed), `batchSize ${batchSize}`);
  }
  // Tensors in, same answer out.
  const fromTensors = new OnlineDetector(m).detectVideo(tensor(v.camera, { shape: [T, 5] }), tensor(v.motion, { shape: [T, 3] }), { batchSize: 5 });
  assert.deepEqual(flat(fromTensors), flat(pushed));
});

test('on the native backend a batch of one equals push bitwise and larger batches agree closely', () => {
  const m = model({}, getBackend('native'));
  const T = 12;
  const v = video(T, small as { cameraDim: number; motionDim: number }, 4);
  const pushed = pushAll(new OnlineDetector(m), v, T);
  const d = new OnlineDetector(m);
  assert.deepEqual(flat(d.detectVideo(v.camera, v.motion, { batchSize: 1 })), flat(pushed));
  assertClose(flat(d.detectVideo(v.camera, v.motion, { batchSize: 8 })), flat(pushed), 1e-5, 1e-6, 'batch 8 vs push');
});

/** An online action detector that counts its forwards and the windows they get. */
class CountingDetector {
  readonly kind = 'online-action-detector' as const;
  readonly calls: number[][] = [];
  constructor(readonly inner: OadTR) {}
  forward(camera: Tensor | null, motion: Tensor | null): OnlineDetectorOutput {
    this.calls.push([...camera!.shape]);
    return this.inner.forward(camera, motion);
  }
  get window(): number { return this.inner.window; }
  get numClasses(): number { return this.inner.numClasses; }
  get queries(): number { return this.inner.queries; }
  get cameraDim(): number { return this.inner.cameraDim; }
  get motionDim(): number { return this.inner.motionDim; }
  parameters(): Tensor[] { return this.inner.parameters(); }
  eval(): this { this.inner.eval(); return this; }
}

test('each push is one forward of one window, however long the stream has run', () => {
  const counting = new CountingDetector(model());
  const d = new OnlineDetector(counting as unknown as OnlineActionDetector);
  const v = video(40, small as { cameraDim: number; motionDim: number }, 5);
  pushAll(d, v, 40);
  assert.equal(counting.calls.length, 40);
  for (const shape of counting.calls) assert.deepEqual(shape, [1, 6, 5]);
  // The batch mode: ceil(40 / 16) forwards of at most 16 windows of the same size.
  counting.calls.length = 0;
  d.detectVideo(v.camera, v.motion, { batchSize: 16 });
  assert.deepEqual(counting.calls, [[16, 6, 5], [16, 6, 5], [8, 6, 5]]);
});

test('reset starts a new video; detectVideo leaves the stream alone', () => {
  const m = model();
  const d = new OnlineDetector(m);
  const a = video(9, small as { cameraDim: number; motionDim: number }, 6);
  const b = video(5, small as { cameraDim: number; motionDim: number }, 7);
  pushAll(d, a, 9);
  assert.equal(d.chunks, 9);
  d.detectVideo(b.camera, b.motion);
  assert.equal(d.chunks, 9);
  d.reset();
  assert.equal(d.chunks, 0);
  const afterReset = pushAll(d, b, 5);
  const fresh = pushAll(new OnlineDetector(m), b, 5);
  assert.deepEqual(flat(afterReset), flat(fresh));
  assert.equal(afterReset[0]!.chunk, 0);
});

test('a model with one stream takes null for the other', () => {
  const m = model({ motionDim: 0 });
  const d = new OnlineDetector(m);
  const v = video(8, { cameraDim: 5, motionDim: 0 }, 8);
  const pushed: OnlineDetection[] = [];
  for (let t = 0; t < 8; t++) pushed.push(d.push(v.camera.subarray(t * 5, (t + 1) * 5), null));
  assert.deepEqual(flat(new OnlineDetector(m).detectVideo(v.camera, null, { batchSize: 3 })), flat(pushed));
  assert.throws(() => d.push(new Float32Array(5), new Float32Array(2)), /no motion stream/);
});

test('errors name the problem', () => {
  const d = new OnlineDetector(model());
  assert.throws(() => d.push(new Float32Array(4), new Float32Array(3)), /camera features must have the model's camera width 5, got 4/);
  assert.throws(() => d.push(new Float32Array(5), null), /motion features \[3\] are required/);
  assert.throws(() => d.push(tensor(new Float32Array(10), { shape: [2, 5] }), new Float32Array(3)), /one chunk's \[5\], got a tensor \[2,5\]/);
  assert.equal(d.chunks, 0, 'a refused chunk is not counted');
  assert.throws(() => d.detectVideo(new Float32Array(10), new Float32Array(9)), /camera and motion features have 2 and 3 chunks/);
  assert.throws(() => d.detectVideo(new Float32Array(7), new Float32Array(3)), /7 camera values are not a whole number/);
  assert.throws(() => d.detectVideo(new Float32Array(5), new Float32Array(3), { batchSize: 0 }), /batchSize must be a positive integer/);
  assert.throws(() => new OnlineDetector({ kind: 'image-encoder' } as unknown as OnlineActionDetector), /needs an online action detector/);
});

// ---------------------------------------------------------------------------------------------
// glimpse detect

const cli = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));

test('glimpse detect prints the detector\'s output as JSON lines, live or batched', async () => {
  const dir = tmp();
  const m = model({ cameraDim: 32, motionDim: 16, numClasses: 6 }, getBackend('native'));
  const modelDir = path.join(dir, 'model');
  m.savePretrained(modelDir);
  // A single video's file, and the same video in a stream set with class names.
  const synth = new OadSyntheticStreams({ videos: 1, testVideos: 1, length: 20, seed: 3 });
  const [clip] = await synth.videos('test');
  const file = path.join(dir, 'clip.safetensors');
  writeSafetensors(file, { camera: { shape: [20, 32], data: clip!.camera }, motion: { shape: [20, 16], data: clip!.motion } });
  const streams = path.join(dir, 'streams');
  await writeFeatureStreams(streams, synth);

  const loaded = OadTR.fromPretrained(modelDir);
  const expected = pushAll(new OnlineDetector(loaded), clip!, 20).map((d) => detectLine(d, synth.classNames, 3));
  const run = async (opts: Partial<Parameters<typeof detectCommand>[0]>): Promise<DetectLine[]> => {
    const lines: string[] = [];
    const n = await detectCommand({ model: modelDir, features: file, ...opts }, (l) => lines.push(l));
    assert.equal(n, lines.length);
    return lines.map((l) => JSON.parse(l) as DetectLine);
  };
  const fromFolder = await run({ features: streams, video: clip!.name });
  assert.deepEqual(fromFolder, expected);
  assert.equal(fromFolder[0]!.top.length, 3);
  assert.equal(fromFolder[0]!.anticipation.length, 3);
  assert.ok(fromFolder[0]!.top.every((t) => synth.classNames.includes(t.label)));
  // Without the set's names, a file's classes are numbered.
  const fromFile = await run({});
  assert.deepEqual(fromFile.map((l) => l.top.map((t) => t.p)), expected.map((l) => l.top.map((t) => t.p)));
  assert.match(fromFile[0]!.top[0]!.label, /^class \d$/);
  // --batch with batches of one is the same computation, chunk by chunk.
  assert.deepEqual(await run({ features: streams, video: clip!.name, batch: true, batchSize: 1 }), expected);

  // The command line: the same lines, and errors in words.
  const r = spawnSync(process.execPath, [cli, 'detect', '--model', modelDir, '--features', streams, '--video', clip!.name], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(r.stdout.trim().split('\n').map((l) => JSON.parse(l)), expected);
  const noVideo = spawnSync(process.execPath, [cli, 'detect', '--model', modelDir, '--features', streams], { encoding: 'utf8' });
  assert.notEqual(noVideo.status, 0);
  assert.match(noVideo.stderr, /is a set of videos; name one with --video/);
  await assert.rejects(run({ features: streams, video: 'nope' }), /has no video 'nope'/);
  const narrow = path.join(dir, 'narrow.safetensors');
  writeSafetensors(narrow, { camera: { shape: [4, 31], data: new Float32Array(4 * 31) }, motion: { shape: [4, 16], data: new Float32Array(64) } });
  await assert.rejects(run({ features: narrow }), /'camera' has shape \[4, 31\], but the model reads camera features \[T, 32\]/);
  await assert.rejects(run({ video: 'x' }), /one video's file; --video names a video of a stream set/);
});
