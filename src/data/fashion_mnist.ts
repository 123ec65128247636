// Fashion-MNIST from its idx files (gzip-compressed or not), by default where Debian's
// dataset-fashion-mnist package installs them (scripts/install-datasets.sh): 60000 training and
// 10000 test images, 28x28 grey, given as RGB pixels with the grey value in all three channels.
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import type { Dataset, DatasetSpec, Sample } from './dataset.js';
import { type CaptionTemplates, checkSampleIndex, checkTemplates, templateCaption } from './common.js';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** The class names, as torchvision's FashionMNIST.classes gives them. */
export const FASHION_MNIST_CLASSES: readonly string[] = [
  'T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot',
];

export type FashionMnistSplit = 'train' | 'test';

export interface FashionMnistOptions {
  /** The folder of the idx files (default /usr/share/datasets/fashion-mnist). */
  root?: string;
  captions?: CaptionTemplates;
}

/** Reads an idx file (`name` or `name.gz`) and checks its magic number and dimensions. */
function readIdx(root: string, name: string, dims: number[]): Uint8Array {
  const candidates = [path.join(root, name), path.join(root, `${name}.gz`)];
  const file = candidates.find((f) => fs.existsSync(f));
  if (!file) {
    throw new Error(`fashion-mnist: ${candidates[0]}(.gz) not found; install Debian's dataset-fashion-mnist (scripts/install-datasets.sh) or pass root`);
  }
  let bytes: Uint8Array = fs.readFileSync(file);
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = zlib.gunzipSync(bytes);
    } catch (e) {
      throw new Error(`fashion-mnist: cannot decompress ${file}: ${(e as Error).message}`, { cause: e });
    }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const ndim = dims.length;
  if (bytes.length < 4 + 4 * ndim || view.getUint32(0) !== 0x0800 + ndim) {
    throw new Error(`fashion-mnist: ${file} is not an idx file of unsigned bytes with ${ndim} dimension(s)`);
  }
  for (let d = 0; d < ndim; d++) {
    const got = view.getUint32(4 + 4 * d);
    if (got !== dims[d]) throw new Error(`fashion-mnist: ${file} has size ${got} in dimension ${d}, expected ${dims[d]}`);
  }
  const header = 4 + 4 * ndim;
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.length !== header + count) throw new Error(`fashion-mnist: ${file} holds ${bytes.length - header} bytes of data, expected ${count}`);
  return bytes.subarray(header);
}

export class FashionMnist implements Dataset {
  readonly name: string;
  readonly length: number;
  readonly classNames = FASHION_MNIST_CLASSES;
  readonly spec: DatasetSpec;

  private constructor(readonly split: FashionMnistSplit, private readonly images: Uint8Array, private readonly labels: Uint8Array, private readonly captions: CaptionTemplates | undefined, root: string) {
    this.name = `fashion-mnist(${split})`;
    this.length = labels.length;
    this.spec = { source: `fashion-mnist:${split}`, options: { root, ...(captions ? { captions } : {}) } };
  }

  static open(split: FashionMnistSplit = 'train', opts: FashionMnistOptions = {}): FashionMnist {
    if (split !== 'train' && split !== 'test') throw new Error(`fashion-mnist: unknown split '${split}' (train, test)`);
    checkTemplates(opts.captions, 'fashion-mnist');
    const root = opts.root ?? FASHION_MNIST_DIR;
    const prefix = split === 'train' ? 'train' : 't10k';
    const n = split === 'train' ? 60000 : 10000;
    const images = readIdx(root, `${prefix}-images-idx3-ubyte`, [n, 28, 28]);
    const labels = readIdx(root, `${prefix}-labels-idx1-ubyte`, [n]);
    const bad = labels.findIndex((l) => l >= FASHION_MNIST_CLASSES.length);
    if (bad >= 0) throw new Error(`fashion-mnist: label ${labels[bad]} of image ${bad} in ${root} is not a class index (0..9)`);
    return new FashionMnist(split, images, labels, opts.captions, root);
  }

  async get(index: number): Promise<Sample> {
    checkSampleIndex(this, index);
    const grey = this.images.subarray(index * 784, (index + 1) * 784);
    const data = new Uint8Array(784 * 3);
    for (let p = 0; p < 784; p++) data[3 * p] = data[3 * p + 1] = data[3 * p + 2] = grey[p]!;
    const label = this.labels[index]!;
    const caption = this.captions ? templateCaption(this.captions, FASHION_MNIST_CLASSES[label]!, index) : undefined;
    return { key: `fashion-mnist/${this.split}/${index}`, image: { kind: 'pixels', image: { width: 28, height: 28, data } }, label, caption };
  }
}
