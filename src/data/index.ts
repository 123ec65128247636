// Data preparation: images to pixel tensors, texts to token ids.
export {
  decodeImage, resizeImage, centerCrop, shortestEdgeSize, parsePreprocessorConfig, familyOfModelType, ImageProcessor, FAMILY_DEFAULTS,
} from './image.js';
export type {
  RgbImage, ImageInput, DecodeOptions, Resample, ImageFamily, ResizeTarget, ImageProcessorConfig, PreprocessOptions, PixelValues,
} from './image.js';
export * from './tokenizers/index.js';
