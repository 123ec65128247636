// Evaluation: numerical parity with Hugging Face transformers (metrics and loops come later).
export { runParity, evaluateFixture, formatParityReport, detectFamily, OUTPUT_TOLERANCE, GRADIENT_TOLERANCE, NOISE_FLOOR } from './parity.js';
export type { ParityCheck, ParityReport, ParityOptions } from './parity.js';
