// Streaming OadTR inference: per-chunk latency of OnlineDetector.push (p50/p99 over every chunk of
// a video) and the throughput of the batch mode (detectVideo, chunks/s), for each window length, on
// a short and a long video: with a ring buffer of the last T chunks a chunk costs one window's
// forward whatever the video's length, so the long/short ratios should stay near 1.
//   npm run bench -- oad [--windows 16,64,256] [--lengths 500,4000] [--batch 16] [--width 1024]
//     [--hidden 1024] [--ffn 1024] [--layers 3] [--decoder-layers 5] [--queries 8] [--classes 22]
//     [--camera-dim 2048] [--motion-dim 1024]
// The defaults are the official THUMOS'14 model (OadTRConfig's defaults) with random weights and
// random features; every chunk of both videos is pushed and timed, which at the official width
// takes tens of minutes on two cores (--width 256 --hidden 256 --ffn 256, or shorter --lengths,
// for a quicker run). Both modes' outputs are checked against each other on the first chunks.
import { OadTR, OadTRConfig } from '../src/models/oadtr.js';
import { OnlineDetector } from '../src/tasks/oad.js';
import { Generator } from '../src/tensor/random.js';
import { checkPositiveInts, flag, textFlag } from './lib/timing.js';

const list = (args: string[], name: string, dflt: string): number[] => textFlag(args, name, dflt).split(',').map(Number);

function features(length: number, dim: number, seed: number): Float32Array {
  const g = new Generator(seed);
  return Float32Array.from({ length: length * dim }, () => g.uniform() * 2 - 1);
}

const percentile = (sorted: readonly number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;
const ms = (s: number): number => +(s * 1e3).toFixed(3);

export async function run(args: string[]): Promise<unknown> {
  const windows = list(args, '--windows', '16,64,256');
  const lengths = list(args, '--lengths', '500,4000');
  const batch = flag(args, '--batch', 16);
  const defaults = new OadTRConfig();
  const sizes = {
    embeddingDim: flag(args, '--width', defaults.embeddingDim),
    hiddenDim: flag(args, '--hidden', defaults.hiddenDim),
    decoderEmbeddingDimOut: flag(args, '--ffn', defaults.decoderEmbeddingDimOut),
    numLayers: flag(args, '--layers', defaults.numLayers),
    decoderLayers: flag(args, '--decoder-layers', defaults.decoderLayers),
    queryNum: flag(args, '--queries', defaults.queryNum),
    numClasses: flag(args, '--classes', defaults.numClasses),
    cameraDim: flag(args, '--camera-dim', defaults.cameraDim),
    motionDim: flag(args, '--motion-dim', defaults.motionDim),
  };
  checkPositiveInts('oad', { batch, ...sizes, ...Object.fromEntries(windows.map((w, i) => [`window ${i}`, w])), ...Object.fromEntries(lengths.map((l, i) => [`length ${i}`, l])) });
  if (lengths.length !== 2 || lengths[0]! >= lengths[1]!) throw new Error(`bench oad: --lengths must be a short and a longer video length, got ${lengths.join(',')}`);
  const { cameraDim: Dc, motionDim: Dm } = sizes;
  const videos = lengths.map((L, i) => ({ length: L, camera: features(L, Dc, 10 + i), motion: features(L, Dm, 20 + i) }));

  const results = [];
  for (const window of windows) {
    const model = new OadTR(new OadTRConfig({ ...sizes, window }), { generator: new Generator(window) });
    const detector = new OnlineDetector(model);
    // Warm-up: the first calls pay for compilation and allocation, which neither length should.
    const warm = Math.min(videos[0]!.length, 2 * batch);
    for (let t = 0; t < Math.min(warm, 4); t++) detector.push(videos[0]!.camera.subarray(t * Dc, (t + 1) * Dc), videos[0]!.motion.subarray(t * Dm, (t + 1) * Dm));
    detector.detectVideo(videos[0]!.camera.subarray(0, warm * Dc), videos[0]!.motion.subarray(0, warm * Dm), { batchSize: batch });
    const perLength = [];
    for (const v of videos) {
      detector.reset();
      const times: number[] = [];
      let first: Float32Array | null = null;
      for (let t = 0; t < v.length; t++) {
        const t0 = process.hrtime.bigint();
        const d = detector.push(v.camera.subarray(t * Dc, (t + 1) * Dc), v.motion.subarray(t * Dm, (t + 1) * Dm));
        times.push(Number(process.hrtime.bigint() - t0) / 1e9);
        if (t === 0) first = d.probs;
      }
      const t0 = process.hrtime.bigint();
      const batched = detector.detectVideo(v.camera, v.motion, { batchSize: batch });
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const diff = Math.max(...Array.from(first!, (p, c) => Math.abs(p - batched[0]!.probs[c]!)));
      if (!(diff < 1e-4)) throw new Error(`bench oad: window ${window}: push and detectVideo disagree at chunk 0 by ${diff}`);
      times.sort((a, b) => a - b);
      perLength.push({
        chunks: v.length,
        stream: { p50Ms: ms(percentile(times, 0.5)), p99Ms: ms(percentile(times, 0.99)), meanMs: ms(times.reduce((a, b) => a + b, 0) / times.length) },
        batch: { seconds: +seconds.toFixed(3), chunksPerSecond: +(v.length / seconds).toFixed(2) },
      });
    }
    const [short, long] = perLength as [typeof perLength[0], typeof perLength[0]];
    results.push({
      window,
      short, long,
      longOverShort: {
        streamP50: +(long.stream.p50Ms / short.stream.p50Ms).toFixed(3),
        batchSecondsPerChunk: +(short.batch.chunksPerSecond / long.batch.chunksPerSecond).toFixed(3),
      },
    });
  }
  return {
    bench: 'oad',
    model: `OadTR, random weights: width ${sizes.embeddingDim}, encoder ${sizes.numLayers} x (hidden ${sizes.hiddenDim}), decoder ${sizes.decoderLayers} x (d_ff ${sizes.decoderEmbeddingDimOut}), ${sizes.queryNum} queries, ${sizes.numClasses} classes, features ${Dc} + ${Dm}`,
    batchSize: batch,
    note: 'stream: OnlineDetector.push latency over every chunk of the video; batch: detectVideo over the whole video; longOverShort near 1 means per-chunk cost does not grow with the video',
    results,
    anchor: null,
    anchorReason: 'no official OadTR implementation on this machine to time (the per-chunk cost is compared with itself across video lengths instead)',
  };
}
