// What the tasks and evaluations share about ViT-style image encoders (ViT, its classifier,
// ViT-MAE's encoder): the image processor their pixels go through, and their token states pooled
// into one vector per image.
import fs from 'node:fs';
import path from 'node:path';
import { ImageProcessor } from '../data/image.js';
import type { Tensor } from '../tensor/tensor.js';

/** How token states [B, 1 + patches, D] become one vector per image: the final CLS token, or the mean of the patch tokens. */
export type ImageTokenPooling = 'cls' | 'mean';

/**
 * The image processor of a ViT-style model: its folder's preprocessor_config.json, else ViT's
 * defaults at the model's image size.
 */
export function imageEncoderProcessor(imageSize: readonly [number, number], folder: string | undefined): ImageProcessor {
  if (folder !== undefined && fs.existsSync(path.join(folder, 'preprocessor_config.json'))) return ImageProcessor.fromPretrained(folder, 'vit');
  const [height, width] = imageSize;
  return new ImageProcessor('vit', { size: { height, width }, cropSize: { height, width } });
}

/** Token states [B, 1 + patches, D] pooled to [B, D]: row 0 ('cls') or the mean of the other rows ('mean'). */
export function poolImageTokens(states: Tensor, pooling: ImageTokenPooling): Tensor {
  return pooling === 'cls' ? states.select(1, 0) : states.slice(1, 1).mean(1);
}
