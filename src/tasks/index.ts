// Tasks on top of the models: embeddings, zero-shot and supervised image classification, captions,
// matching scores, and pipeline(), transformers.js's entry point over them.
export * from './zeroshot.js';
export * from './caption.js';
export * from './mae.js';
export * from './image_features.js';
export * from './image_classification.js';
export * from './pipeline.js';
export * from './oad_streams.js';
export * from './oad.js';
