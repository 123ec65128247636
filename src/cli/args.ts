// Parsers of command-line option values shared by the commands: each names the option in its error.
import YAML from 'yaml';

export const positiveInt = (what: string) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${what} must be a positive integer, got '${v}'`);
  return n;
};

export const number = (what: string) => (v: string): number => {
  const x = Number(v);
  if (v.trim() === '' || !Number.isFinite(x)) throw new Error(`${what} must be a number, got '${v}'`);
  return x;
};

export const fraction = (what: string) => (v: string): number => {
  const x = Number(v);
  if (!(x > 0 && x < 1)) throw new Error(`${what} must be a number in (0, 1), got '${v}'`);
  return x;
};

/** A mapping written as YAML or JSON (`{scenes: {length: 512, corruptCaptions: 0.3}}`): a dataset's options. */
export const mapping = (what: string) => (v: string): Record<string, unknown> => {
  let parsed: unknown;
  try {
    parsed = YAML.parse(v);
  } catch (e) {
    throw new Error(`${what}: not YAML or JSON: ${(e as Error).message}`, { cause: e });
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error(`${what} must be a mapping such as '{scenes: {length: 512}}', got '${v}'`);
  return parsed as Record<string, unknown>;
};
