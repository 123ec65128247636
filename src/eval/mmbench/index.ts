// MMBench evaluation with CircularEval, agreeing with VLMEvalKit on the same inputs.
export { readMMBench, resolveImageRow, rowImage, sniffImageType, OPTION_LABELS } from './data.js';
export type { McqRow, MMBenchData, ReadOptions, RowImage } from './data.js';
export { pandasColumnText, pythonFloatRepr, PANDAS_NA_VALUES } from '../../data/table.js';
export { circularOffset, abnormalReason, rotateRow, expandCircular, detectOffset, circularGroups } from './circular.js';
export type { CircularExpansion, CircularGroup, CircularSet } from './circular.js';
export { inferOption, inferText, inferAnswer, judgePrompt, optionListing, extractAnswer, seededPick, REFUSALS, API_FAILURE } from './extract.js';
export type { Extraction, ExtractionSource, Judge } from './extract.js';
export { ChatClient, ChatError, AnswerCache, chatJudge, parseReply, JUDGE_ALIASES } from './client.js';
export type { ChatClientOptions, ChatMessage, ChatContent } from './client.js';
export { scoreMMBench, accuracy, mapPool } from './score.js';
export type { ScoreOptions, QuestionResult, Accuracy, MMBenchScore } from './score.js';
export { mmbenchPrompt, endpointPredictor, dualEncoderPredictor, blipItmPredictor, readPredictions } from './models.js';
export type { McqPredictor, EndpointPredictorOptions, ScorerOptions } from './models.js';
export { accTable, formatTable, writeReports, MMBENCH_ABBREVIATIONS } from './report.js';
export type { MMBenchSummary } from './report.js';
export { runMMBench, writeCircularTSV, formatMMBenchTSV } from './run.js';
export type { MMBenchRunOptions, MMBenchRun } from './run.js';
