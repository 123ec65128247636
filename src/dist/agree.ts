// Checking at the start of a job that every rank runs the same thing. Ranks that differ (another
// config, another model, another build of the code) would issue different collectives, or the
// same ones on tensors of other sizes, and hang or compute nonsense; here they fail at once with
// what differs, before any gradient is exchanged.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Communicator } from './communicator.js';
import { allGatherJSON } from './gather_json.js';

let fingerprint: string | undefined;

/**
 * A hash of the library code this process runs (every .js file of the compiled src/, by path and
 * content): two ranks with equal fingerprints run the same Glimpse.
 */
export function codeFingerprint(): string {
  if (fingerprint !== undefined) return fingerprint;
  const root = dirname(dirname(fileURLToPath(import.meta.url)));
  const hash = createHash('sha256');
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.js')) hash.update(relative(root, p)).update('\0').update(readFileSync(p)).update('\0');
    }
  };
  walk(root);
  fingerprint = hash.digest('hex').slice(0, 16);
  return fingerprint;
}

/** A value flattened to dotted keys, for reporting where two values differ. */
function flatten(value: unknown, prefix: string, out: Map<string, string>): Map<string, string> {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const entries = Object.entries(value as Record<string, unknown>);
    if (entries.length === 0) out.set(prefix, '{}');
    for (const [k, v] of entries) flatten(v, prefix ? `${prefix}.${k}` : k, out);
  } else {
    out.set(prefix, JSON.stringify(value) ?? 'undefined');
  }
  return out;
}

/** The first few keys at which two values differ, with both sides. */
function differences(mine: unknown, theirs: unknown, name: string, rank: number): string[] {
  const a = flatten(mine, name, new Map());
  const b = flatten(theirs, name, new Map());
  const keys = [...new Set([...a.keys(), ...b.keys()])].filter((k) => a.get(k) !== b.get(k));
  const shown = keys.slice(0, 5).map((k) => `${k}: ${a.get(k) ?? '(absent)'} on rank 0, ${b.get(k) ?? '(absent)'} on rank ${rank}`);
  return keys.length > shown.length ? [...shown, `... and ${keys.length - shown.length} more`] : shown;
}

/**
 * Throws on every rank, naming the ranks and what differs, unless every rank passed equal
 * `values` (compared by their JSON, key by key). A collective: every rank must call it.
 */
export async function checkSameOnEveryRank(comm: Communicator, values: Record<string, unknown>): Promise<void> {
  if (comm.worldSize === 1) return;
  const decoded = await allGatherJSON(comm, values);
  const reference = decoded[0]!;
  const problems: string[] = [];
  decoded.forEach((other, rank) => {
    if (rank === 0) return;
    for (const name of Object.keys({ ...reference, ...other })) {
      if (JSON.stringify(reference[name]) === JSON.stringify(other[name])) continue;
      problems.push(`rank ${rank}'s ${name} differs from rank 0's: ${differences(reference[name], other[name], name, rank).join('; ')}`);
    }
  });
  if (problems.length > 0) {
    throw new Error(`distributed: the ranks of this job do not run the same thing, so they would not train together:\n  ${problems.join('\n  ')}`);
  }
}
