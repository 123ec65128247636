// What turns a list of dataset indices into one batch of pixel values: read, decode, augment,
// normalise. The same code runs on the loader's main thread (workers: 0) and in its worker
// threads, so a batch does not depend on where it was made.
import type { Sample } from './dataset.js';
import type { AugmentOptions } from './loader.js';
import { type ImageFamily, type ImageProcessorConfig, type RgbImage, ImageProcessor, decodeImage } from './image.js';
import { flipHorizontal, padRandomCrop, randomResizedCrop } from './augment.js';
import { Generator } from '../tensor/random.js';
import { SEED_STREAMS, errorMessage, mixSeed } from './common.js';

/** Everything a batch depends on besides its indices, as plain data a worker can receive. */
export interface PipelineConfig {
  readonly processor: { readonly family: ImageFamily; readonly config: ImageProcessorConfig };
  readonly augment?: AugmentOptions;
  readonly seed: number;
  readonly datasetName: string;
  readonly datasetLength: number;
}

export interface BatchJob {
  readonly id: number;
  readonly epoch: number;
  readonly indices: readonly number[];
}

/** A sample that could not be used, and why. */
export interface SampleFailure {
  readonly key: string;
  readonly message: string;
}

export interface BatchResult {
  readonly id: number;
  /** [B, 3, H, W] normalised. */
  readonly pixels: Float32Array;
  readonly captions: (string | undefined)[];
  readonly labels: (number | undefined)[];
  readonly keys: string[];
  readonly clean: (boolean | undefined)[];
  /** In slot order, then attempt order, so warnings come out the same however slots interleave. */
  readonly failures: SampleFailure[];
}

/** Consecutive unreadable samples after which a batch gives up: the data is broken, not noisy. */
const MAX_CONSECUTIVE_FAILURES = 1000;
/** Slots of a batch read and decoded at once (file reads and sharp's decoding are asynchronous). */
const SLOT_CONCURRENCY = 4;

export class BatchBuilder {
  private readonly processor: ImageProcessor;
  /** The same processor without resize and crop: turns an already-sized image into floats. */
  private readonly normaliser: ImageProcessor;
  readonly height: number;
  readonly width: number;

  constructor(private readonly config: PipelineConfig, private readonly read: (index: number) => Promise<Sample>) {
    const { family, config: pc } = config.processor;
    this.processor = new ImageProcessor(family, pc);
    this.normaliser = new ImageProcessor(family, { ...pc, doResize: false, doCenterCrop: false });
    const size = this.processor.outputSize;
    if (!size) throw new Error('DataLoader: the processor resizes the shortest edge without a centre crop, so images come out in different sizes; a batch needs one size');
    this.height = size.height;
    this.width = size.width;
  }

  /** The image of one sample at the batch's size, augmented with g's numbers. */
  private async image(sample: Sample, g: Generator | null): Promise<RgbImage> {
    let img: RgbImage;
    if (sample.image.kind === 'encoded') {
      img = await decodeImage(sample.image.bytes, { name: sample.image.name });
    } else {
      img = sample.image.image;
      if (!(img.width > 0 && img.height > 0 && img.data.length === img.width * img.height * 3)) {
        throw new Error(`sample ${sample.key}: pixels hold ${img.data.length} bytes for ${img.width}x${img.height} RGB`);
      }
    }
    const a = this.config.augment;
    const c = this.processor.config;
    if (a?.randomResizedCrop && g) {
      const { scale, ratio } = a.randomResizedCrop;
      img = randomResizedCrop(g, img, this.width, this.height, c.resample, scale, ratio);
    } else {
      img = this.processor.transform(img);
    }
    if (a?.padCrop && g) img = padRandomCrop(g, img, a.padCrop, a.padMode);
    if (a?.horizontalFlip && g && g.uniform() < 0.5) img = flipHorizontal(img);
    if (img.width !== this.width || img.height !== this.height) {
      throw new Error(`sample ${sample.key}: came out ${img.width}x${img.height}, expected ${this.width}x${this.height}`);
    }
    return img;
  }

  /**
   * Builds the batch of `job`. A sample that cannot be read or decoded is replaced by the next
   * index (wrapping around), deterministically; its failure is reported, not thrown.
   */
  async build(job: BatchJob): Promise<BatchResult> {
    const { seed, augment, datasetLength: n, datasetName } = this.config;
    const b = job.indices.length;
    const per = 3 * this.height * this.width;
    const pixels = new Float32Array(b * per);
    const captions: (string | undefined)[] = new Array(b);
    const labels: (number | undefined)[] = new Array(b);
    const keys: string[] = new Array(b);
    const clean: (boolean | undefined)[] = new Array(b);
    const failures: SampleFailure[][] = Array.from({ length: b }, () => []);
    const augmenting = augment !== undefined && (augment.randomResizedCrop !== undefined || !!augment.padCrop || !!augment.horizontalFlip);
    const fill = async (slot: number): Promise<void> => {
      let index = job.indices[slot]!;
      for (let tries = 0; ; tries++) {
        let sample: Sample | undefined;
        try {
          sample = await this.read(index);
          const g = augmenting ? new Generator(mixSeed(SEED_STREAMS.augment, seed, job.epoch, index)) : null;
          const img = await this.image(sample, g);
          pixels.set(this.normaliser.pixelValues(img).data, slot * per);
          captions[slot] = sample.caption;
          labels[slot] = sample.label;
          keys[slot] = sample.key;
          clean[slot] = sample.clean;
          return;
        } catch (e) {
          failures[slot]!.push({ key: sample?.key ?? `${datasetName}#${index}`, message: errorMessage(e) });
          if (tries + 1 >= Math.min(MAX_CONSECUTIVE_FAILURES, n)) {
            throw new Error(`DataLoader: ${tries + 1} samples in a row from index ${job.indices[slot]} of ${datasetName} could not be used (last: ${errorMessage(e)})`, { cause: e });
          }
          index = (index + 1) % n;
        }
      }
    };
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < b) await fill(next++);
    };
    await Promise.all(Array.from({ length: Math.min(SLOT_CONCURRENCY, b) }, worker));
    return { id: job.id, pixels, captions, labels, keys, clean, failures: failures.flat() };
  }
}
