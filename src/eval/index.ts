// Evaluation: numerical parity with Hugging Face transformers; classification (zero-shot or by a
// classifier's head), retrieval and linear probes on datasets; DFN-style data filtering; MMBench; online action
// detection metrics (OadTR's mAP and mcAP).
export { runParity, evaluateFixture, formatParityReport, detectFamily, OUTPUT_TOLERANCE, GRADIENT_TOLERANCE, NOISE_FLOOR } from './parity.js';
export type { ParityCheck, ParityReport, ParityOptions } from './parity.js';
export { evaluateZeroShot, evaluateClassifier, classificationMetrics, compareClassNames } from './classification.js';
export type { ClassAccuracy, ClassificationMetrics, ClassifierEvalResult, LabelMismatch, ZeroShotEvalOptions, ZeroShotEvalResult } from './classification.js';
export {
  evaluateRetrieval, retrievalMetrics, retrievalMetricsOfEmbeddings, rankMetrics, bestRank, openClipRetrievalNames, DEFAULT_RECALL_AT,
} from './retrieval.js';
export type { RankMetrics, RetrievalMetrics, RetrievalEvalOptions, RetrievalEvalResult } from './retrieval.js';
export {
  linearProbe, evaluateLinearProbe, fitLogisticRegression, predictLogistic, logisticAccuracy, stratifiedSplit, selectRows, DEFAULT_WEIGHT_DECAYS,
} from './linear_probe.js';
export type {
  LabelledFeatures, LogisticRegression, LogisticRegressionOptions, LinearProbeOptions, LinearProbeResult, LinearProbeEvalResult,
} from './linear_probe.js';
export { compositionalAccuracy, evaluateCompositional } from './compositional.js';
export type { AttributeAccuracy, CompositionalAccuracy, CompositionalEvalResult } from './compositional.js';
export { imageEmbeddingSource, vitFeatureSource, loadFeatureSource, extractFeatures, embedSamples } from './features.js';
export type { FeatureExtractor, ImageFeatureSource, FeatureSourceOptions, DatasetPassOptions, DatasetFeatures } from './features.js';
export { filterDataset, scorePairs, topFraction } from './filter.js';
export type { FilterOptions, FilterReport, PairScores } from './filter.js';
export { frameLevelAP, readOadScores, probsLabelsSafetensors, OAD_SCORE_LAYOUTS } from './oad.js';
export type { FrameMatrix, FrameLevelAPOptions, FrameLevelAPResult, OadScores, OadScoreLayout } from './oad.js';
export * as mmbench from './mmbench/index.js';
