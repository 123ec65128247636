// Tasks on top of the models: embeddings, zero-shot classification, captions and matching scores.
export * from './zeroshot.js';
export * from './caption.js';
export * from './mae.js';
