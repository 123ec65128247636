// Optimizers, gradient utilities and learning-rate schedules.
export { Optimizer } from './optimizer.js';
export type { BaseHyper, ParamGroup, ParamGroupSpec, ParamState, OptimizerStateDict, SavedTensor } from './optimizer.js';
export { AdamW } from './adamw.js';
export type { AdamWHyper, AdamWOptions } from './adamw.js';
export { SGD } from './sgd.js';
export type { SGDHyper, SGDOptions } from './sgd.js';
export { clipGradNorm, accumulateGradients } from './grad.js';
export type { ClipGradNormOptions } from './grad.js';
export { paramGroupsNoDecay, defaultNoDecay, paramGroupsLayerDecay, vitLayerOf } from './groups.js';
export type { NoDecayOptions, LayerDecayOptions, LayerDecayGroup } from './groups.js';
export { warmupCosineSchedule, constantSchedule, stepSchedule, cosineDecay, LRScheduler } from './schedule.js';
export type { LrSchedule, WarmupCosineOptions, LRSchedulerState } from './schedule.js';
