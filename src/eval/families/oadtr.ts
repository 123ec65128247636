// OadTR for the parity runner. Its fixtures are made by the official code, which has no
// config.json: meta.json's `config` gives what the weights' shapes do not (the camera / motion
// split, head counts, the ambiguous class); a folder OadTR.savePretrained wrote loads as it is.
import fs from 'node:fs';
import path from 'node:path';
import { CONFIG_NAME } from '../../io/hf.js';
import { OadTR, type OadTRConfigOptions } from '../../models/oadtr.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { Family, FixtureMeta } from './types.js';

/** Whether meta.json describes a fixture of the official OadTR code. */
export function isOadtrMeta(meta: FixtureMeta): boolean {
  return typeof meta.source === 'string' && /\bOadTR\b/.test(meta.source);
}

/** The config options meta.json's `config` gives (its own key names), each checked to be a number where one is needed. */
function givenConfig(meta: FixtureMeta, label: string): OadTRConfigOptions {
  const c = (meta.config ?? {}) as Record<string, unknown>;
  const int = (key: string): number | undefined => {
    const v = c[key];
    if (v === undefined) return undefined;
    if (!Number.isInteger(v) || (v as number) < 0) throw new Error(`${label}: config.${key} must be a non-negative integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const heads = int('heads');
  const decoderHeads = int('decoder_heads');
  if (heads === undefined || decoderHeads === undefined) throw new Error(`${label}: config needs heads and decoder_heads (the weights do not tell them)`);
  const pe = c.positional_encoding;
  if (pe !== undefined && pe !== 'learned' && pe !== 'fixed') throw new Error(`${label}: unknown config.positional_encoding ${JSON.stringify(pe)}`);
  const ambiguous = c.ambiguous_class === null ? null : int('ambiguous_class');
  const sizes: OadTRConfigOptions = {
    window: int('window'), cameraDim: int('camera_dim'), motionDim: int('motion_dim'), embeddingDim: int('width'),
    numLayers: int('layers'), decoderLayers: int('decoder_layers'), queryNum: int('queries'), numClasses: int('classes'),
    numHeads: heads, decoderNumHeads: decoderHeads, positionalEncodingType: pe as 'learned' | 'fixed' | undefined,
    ...(ambiguous !== undefined ? { ambiguousClass: ambiguous } : {}),
  };
  return Object.fromEntries(Object.entries(sizes).filter(([, v]) => v !== undefined)) as OadTRConfigOptions;
}

function readMeta(dir: string): FixtureMeta {
  const file = path.join(dir, 'meta.json');
  return fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) as FixtureMeta : {};
}

function input(inputs: Record<string, Tensor>, name: string): Tensor {
  const t = inputs[name];
  if (!t) throw new Error(`parity: the OadTR fixture's inputs.safetensors has no ${name} (it has ${Object.keys(inputs).join(', ')})`);
  return t;
}

export const OADTR: Family = {
  name: 'oadtr',
  matches: (t) => t === 'oadtr',
  architectures: ['OadTR'],
  load(dir, _architecture, backend) {
    const module = fs.existsSync(path.join(dir, CONFIG_NAME))
      ? OadTR.fromPretrained(dir, { backend })
      : OadTR.fromOfficialWeights(dir, givenConfig(readMeta(dir), path.join(dir, 'meta.json')), { backend });
    return {
      module,
      run(inputs) {
        const { cameraDim, motionDim } = module.config;
        const out = module.forward(cameraDim > 0 ? input(inputs, 'camera_inputs') : null, motionDim > 0 ? input(inputs, 'motion_inputs') : null);
        const outputs: Record<string, Tensor> = { enc_score: out.encoderScores, dec_score: out.decoderScores };
        if (!inputs.enc_target && !inputs.dec_target) return { outputs, loss: null };
        const l = module.loss(out, input(inputs, 'enc_target'), input(inputs, 'dec_target'));
        Object.assign(outputs, { loss: l.loss, loss_encoder: l.encoder, loss_decoder: l.decoder });
        return { outputs, loss: l.loss };
      },
      moduleKey: (name) => name,
      hfName: (key) => key,
    };
  },
};
