// The model families the parity runner knows, one file each.
import type { Family } from './types.js';
import { VIT } from './vit.js';

export const FAMILIES: readonly Family[] = [VIT];
export type { Family, FixtureModel, FixtureMeta } from './types.js';
