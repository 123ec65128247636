// Neural-network modules: the Module base, layers, attention, transformer blocks, initialisers.
export { Module, ModuleList, Sequential, StateDictError, paramZeros } from './module.js';
export type { Layer, ModuleOptions, StateDict, StateValue, LoadStateDictOptions, LoadStateDictResult } from './module.js';
export { Linear, LayerNorm, Embedding, Dropout, MLP, getActivation, fusedActivation } from './layers.js';
export type { LinearOptions, LayerNormOptions, EmbeddingOptions, DropoutOptions, MLPOptions, ActivationName } from './layers.js';
export { MultiHeadAttention, composedAttention } from './attention.js';
export type { MultiHeadAttentionOptions, AttentionCall, ComposedAttentionOptions } from './attention.js';
export { TransformerBlock, TransformerEncoder } from './transformer.js';
export type { TransformerBlockOptions, BlockCall, EncoderCall } from './transformer.js';
export * as init from './init.js';
