// Data: datasets (shards, listings, folders, Fashion-MNIST, procedural scenes), the loader that
// batches them, image preprocessing to pixel tensors, and tokenizers from texts to ids.
export {
  decodeImage, resizeImage, centerCrop, shortestEdgeSize, parsePreprocessorConfig, familyOfModelType, ImageProcessor, FAMILY_DEFAULTS,
} from './image.js';
export type {
  RgbImage, ImageInput, DecodeOptions, Resample, ImageFamily, ResizeTarget, ImageProcessorConfig, PreprocessOptions, PixelValues,
} from './image.js';
export * from './tokenizers/index.js';
export type { ClassCompositions, Dataset, DatasetSpec, Sample, SampleImage } from './dataset.js';
export { DataLoader } from './loader.js';
export type { AugmentOptions, LoaderOptions, LoaderPosition, Batch } from './loader.js';
export { datasetEntries } from './sources.js';
export { Registry, datasets, registerDataset, listDatasets, openDataset } from './registry.js';
export type { RegistryKind, RegistryEntry, DatasetEntry } from './registry.js';
export type { OpenDatasetOptions, DatasetSource } from './sources.js';
export { WebDataset, writeWebDataset, expandBraces, expandShardList } from './webdataset.js';
export type { WebDatasetRecord, WriteWebDatasetOptions, WebDatasetOptions } from './webdataset.js';
export { CsvDataset } from './csv.js';
export { parseDelimited } from './table.js';
export type { DelimitedTable } from './table.js';
export type { CsvOptions } from './csv.js';
export { ImageFolder } from './folder.js';
export type { ImageFolderOptions } from './folder.js';
export { FashionMnist, FASHION_MNIST_CLASSES, FASHION_MNIST_DIR } from './fashion_mnist.js';
export type { FashionMnistOptions, FashionMnistSplit } from './fashion_mnist.js';
export {
  ScenesDataset, renderScene, relationBetween, SCENE_COLOURS, SCENE_SHAPES, SCENE_HELD_OUT, SCENE_CLASS_NAMES,
} from './scenes.js';
export type { Scene, SceneObject, SceneOptions, SceneSplit, Relation, ShapeSize } from './scenes.js';
export { randomResizedCrop, randomResizedCropBox, padRandomCrop, flipHorizontal, cropImage } from './augment.js';
export type { CropBox, PadMode } from './augment.js';
export type { CaptionTemplates } from './common.js';
export { CaptionVocab, captionWords, STOP_WORDS } from './caption_vocab.js';
export { openTextCorpus, readDebianDescriptions, splitPlainText, DEBIAN_DESCRIPTIONS_DIR } from './text.js';
export type { TextCorpus, TextSplit, OpenTextCorpusOptions, DebianDescription } from './text.js';
export { packSequences, maskTokens, TokenBatchLoader, maskedEvalBatches, IGNORE_INDEX } from './mlm.js';
export type { PackOptions, MaskingOptions, MaskedTokens, TokenBatch, TokenLoaderOptions, EvalBatchOptions, EvalBatches } from './mlm.js';
export type { CaptionVocabOptions, CaptionVocabJson } from './caption_vocab.js';
export {
  FEATURE_STREAMS_FORMAT, OadWindowSampler, checkFeatureStream, checkFeatureStreamInfo, cutWindow, labelArgmax, splitVideos, stackWindows,
} from './oad_streams.js';
export type { FeatureStream, FeatureStreamInfo, FeatureStreamSet, LabelRows, OadBatch, OadWindow, OadWindowOptions } from './oad_streams.js';
export { OadSyntheticStreams } from './oad_synthetic.js';
export type { OadSyntheticOptions, SyntheticAction, SyntheticStream } from './oad_synthetic.js';
export { OAD_BENCHMARKS } from './oad_benchmarks.js';
export type { OadBenchmark } from './oad_benchmarks.js';
export { openRegisteredStreams } from './registry.js';
export type { FeatureStreamSplit, OpenStreamsOptions } from './registry.js';
