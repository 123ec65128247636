// Training: configs, the training loop, checkpoints, progress and reports.
export { train, TrainingDivergedError, earlierRunFiles } from './trainer.js';
export type { TrainOptions, TrainResult, StopReason } from './trainer.js';
export { loadConfig, resolveConfig, applyOverride, parseOverrideArgs, describeConfig, configToYAML, ConfigError } from './config.js';
export type { TrainConfig, TaskName, ModelConfig, CustomModelConfig } from './config.js';
export { saveCheckpoint, loadCheckpoint, latestCheckpoint } from './checkpoint.js';
export type { Checkpoint, TrainerState } from './checkpoint.js';
export { renderReport, writeReport, lineChart, reportedConfig } from './report.js';
export type { ReportInput, Series, Marker, ReferenceLine, LineChartOptions } from './report.js';
export type { EvalDetails, PredictionExample } from './evaluate.js';
export { objectives, registerObjective, makeObjective } from './objectives.js';
export type { Objective, ObjectiveEntry, StepContext, TrainBatch } from './objectives.js';
