// The model families the parity runner knows, one file each.
import type { Family } from './types.js';
import { BERT } from './bert.js';
import { VIT } from './vit.js';
import { CLIP } from './clip.js';
import { SIGLIP } from './siglip.js';
import { VIT_MAE } from './vit_mae.js';
import { BLIP } from './blip.js';
import { OADTR } from './oadtr.js';

export const FAMILIES: readonly Family[] = [VIT, CLIP, BERT, SIGLIP, VIT_MAE, BLIP, OADTR];
export type { Family, FixtureModel, FixtureMeta } from './types.js';
export { isOadtrMeta } from './oadtr.js';
