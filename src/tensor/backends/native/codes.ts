// Numeric codes the wrappers pass to the native kernels: dtypes and op ids. Their C++ side is
// native/codes.h, which exports each table's names in code order as addon.codes; codeMismatch
// compares these tables with those when the addon loads (loadAddon), so a table edited on one
// side only, or an addon built from other sources, fails at load with the difference named
// instead of running the wrong op.
import type { ActivationOp, BinaryOp, ReduceOp, UnaryOp } from '../../backend.js';
import type { DType } from '../../dtype.js';

export const DTYPE_CODE: Record<DType, number> = { float32: 0, float64: 1, int32: 2, int64: 3, uint8: 4, bool: 5 };
export const UNARY_CODE: Record<UnaryOp, number> = {
  neg: 0, abs: 1, sign: 2, exp: 3, log: 4, sqrt: 5, rsqrt: 6, reciprocal: 7, square: 8, sin: 9, cos: 10,
  tanh: 11, sigmoid: 12, softplus: 13, erf: 14, relu: 15, gelu_erf: 16, gelu_tanh: 17, quick_gelu: 18,
};
/** Activations of unaryGrad and of the fused kernels, where -1 is none. */
export const ACTIVATION_CODE: Record<ActivationOp, number> = {
  relu: 0, gelu_erf: 1, gelu_tanh: 2, quick_gelu: 3, sigmoid: 4, tanh: 5, erf: 6, softplus: 7,
};
export const BINARY_CODE: Record<BinaryOp, number> = {
  add: 0, sub: 1, mul: 2, div: 3, pow: 4, maximum: 5, minimum: 6,
  eq: 7, ne: 8, lt: 9, le: 10, gt: 11, ge: 12, and: 13, or: 14,
};
export const REDUCE_CODE: Record<ReduceOp, number> = { sum: 0, max: 1, min: 2, argmax: 3, argmin: 4 };

/** Each table under its key on addon.codes. */
const TABLES: Record<string, Record<string, number>> = {
  dtype: DTYPE_CODE, unary: UNARY_CODE, activation: ACTIVATION_CODE, binary: BINARY_CODE, reduce: REDUCE_CODE,
};

/**
 * How the addon's code tables (addon.codes: for each key, the names in code order) differ from
 * these, or null when every table matches name for name and code for code.
 */
export function codeMismatch(codes: unknown): string | null {
  const native = (codes ?? {}) as Record<string, unknown>;
  for (const [key, table] of Object.entries(TABLES)) {
    const names = native[key];
    if (!Array.isArray(names)) return `the addon has no '${key}' code table`;
    for (let code = 0; code < names.length; code++) {
      const name = String(names[code]);
      if (!Object.hasOwn(table, name)) return `${key} code ${code} is '${name}' in the addon, which TypeScript does not have`;
      if (table[name] !== code) return `${key} '${name}' is code ${code} in the addon but ${table[name]} in TypeScript`;
    }
    for (const [name, code] of Object.entries(table)) {
      if (!names.includes(name)) return `${key} '${name}' (code ${code} in TypeScript) is missing from the addon`;
    }
  }
  for (const key of Object.keys(native)) {
    if (!Object.hasOwn(TABLES, key)) return `the addon has a '${key}' code table that TypeScript does not have`;
  }
  return null;
}
