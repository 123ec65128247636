// Glimpse's public API: everything a user imports comes from here.
export * from './tensor/index.js';
export * from './nn/index.js';
export * from './optim/index.js';
export * as io from './io/index.js';
export * as dist from './dist/index.js';
export * from './data/index.js';
export * from './models/index.js';
export * from './eval/index.js';
export * from './train/index.js';
export {
  loadVisionLanguageModel, embedImages, embedTexts, buildZeroShotClassifier, zeroShotClassify, fillTemplate, tokenize, rows, DEFAULT_TEMPLATES,
} from './tasks/index.js';
export type {
  VisionLanguageModel, LoadVisionLanguageOptions, EmbedOptions, ZeroShotOptions, ZeroShotResult, LabelScore,
} from './tasks/index.js';
export { readZeroShotConfig, writeZeroShotConfig, ZEROSHOT_CONFIG_FILE } from './tasks/index.js';
export type { ZeroShotConfig } from './tasks/index.js';
export { maeReconstruction, writeReconstructionGrid } from './tasks/index.js';
export { FeatureStreamFolder, openFeatureStreams, openStreams, writeFeatureStreams, FEATURE_STREAMS_INDEX } from './tasks/index.js';
export { OnlineDetector } from './tasks/index.js';
export type { OnlineDetection, DetectVideoOptions } from './tasks/index.js';
export type { MAEReconstruction, MAEReconstructionOptions, ReconstructionGridOptions } from './tasks/index.js';
export { caption, captionIds, decodeCaptionIds, generateCaptionIds, itmScore, loadBlipModel } from './tasks/index.js';
export type { BlipTaskModel, CaptionOptions, GenerationOptions, ItmScores, LoadBlipOptions } from './tasks/index.js';
export { loadImageClassifier, classifyImages, pipeline, PIPELINE_TASKS } from './tasks/index.js';
export type {
  ImageClassifierTask, ClassifyImagesOptions, ImageClassificationResult,
  Pipeline, PipelineTask, PipelineTypes, PipelineOptions, PipelineModel, PipelineImages, LoadedModel, GeneratedText, FeaturePooling,
  ZeroShotImageClassificationPipeline, ImageClassificationPipeline, ImageToTextPipeline, FeatureExtractionPipeline, ImageFeatureExtractionPipeline,
  ZeroShotImageClassificationOptions, ImageClassificationOptions, ImageToTextOptions, FeatureExtractionOptions, ImageFeatureExtractionOptions,
} from './tasks/index.js';
