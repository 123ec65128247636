// Neural-network modules: the Module base, layers, attention, transformer blocks, initialisers.
export { Module, ModuleList, Sequential, StateDictError, paramZeros } from './module.js';
export type { Layer, ModuleOptions, StateDict, StateValue, LoadStateDictOptions, LoadStateDictResult } from './module.js';
export { Linear, LayerNorm, Embedding, Dropout, MLP, getActivation, fusedActivation, patchDropout } from './layers.js';
export type { LinearOptions, LayerNormOptions, EmbeddingOptions, DropoutOptions, MLPOptions, ActivationName, PatchDropoutOptions } from './layers.js';
export { MultiHeadAttention, composedAttention, attend, KeyValueCache, DecoderCache } from './attention.js';
export type { MultiHeadAttentionOptions, AttentionCall, ComposedAttentionOptions, LayerCache, CausalMask } from './attention.js';
export { TransformerBlock, TransformerEncoder } from './transformer.js';
export type { TransformerBlockOptions, BlockCall, EncoderCall, PooledRows } from './transformer.js';
export * as init from './init.js';
export {
  clipLoss, siglipLoss, clipContrastiveLoss, siglipSigmoidLoss, contrastiveLogits, infoNceLoss, sigmoidLossSum, clampLogitScale, classificationLoss, catlipLoss, softLabelCrossEntropy, LOSSES, LOGIT_SCALE_MAX, SIGLIP_INIT,
} from './losses.js';
export type { SigmoidLossOptions, SigmoidSumOptions, ClassificationLossOptions, MultiLabelLossOptions, SoftLabelLossOptions, LossTableEntry } from './losses.js';
