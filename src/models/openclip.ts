// open_clip's own checkpoint layout (open_clip_config.json + open_clip_model.safetensors) loaded
// into, and saved from, the same CLIPModel that HF checkpoints load into.
//
// The two layouts hold the same numbers, arranged differently:
//   open_clip                                   CLIPModel (HF names)
//   [text.]token_embedding.weight               text_model.embeddings.token_embedding.weight
//   [text.]positional_embedding                 text_model.embeddings.position_embedding.weight
//   [text.]transformer.resblocks.N.attn.in_proj_{weight,bias}   q/k/v_proj, packed along the first axis
//   ...resblocks.N.{ln_1, ln_2, attn.out_proj, mlp.c_fc, mlp.c_proj}   layer_norm1, layer_norm2, out_proj, fc1, fc2
//   [text.]ln_final                             text_model.final_layer_norm
//   [text.]text_projection [width, embed]       text_projection.weight [embed, width] (transposed)
//   visual.{class_embedding, positional_embedding, conv1, ln_pre, ln_post}   vision_model.embeddings.*, pre_layrnorm, post_layernorm
//   visual.proj [width, embed]                  visual_projection.weight (transposed)
//   logit_scale                                 logit_scale
// ([text.] is CustomTextCLIP's prefix.) Only the plain ViT + causal-transformer CLIP is supported;
// configs using open_clip's other towers or options are refused by name.
import fs from 'node:fs';
import path from 'node:path';
import { ConfigReader, type HFConfig } from '../io/hf.js';
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from '../io/safetensors.js';
import { type StateDict, StateDictError } from '../nn/module.js';
import { concat } from '../tensor/ops/indexing.js';
import type { Tensor } from '../tensor/tensor.js';
import { CLIPConfig, CLIPModel, type CLIPOptions } from './clip.js';

export const OPEN_CLIP_CONFIG_NAME = 'open_clip_config.json';
export const OPEN_CLIP_WEIGHTS_NAME = 'open_clip_model.safetensors';

/** open_clip's LayerNorm default (norm_kwargs may override it). */
const OPEN_CLIP_LN_EPS = 1e-5;

function object(v: unknown, what: string, label: string): HFConfig {
  if (v === undefined || v === null) return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw new Error(`${label}: ${what} must be an object`);
  return v as HFConfig;
}

/**
 * Options that change the architecture away from plain CLIP, with the value that keeps it plain.
 * (vision_cfg.patch_dropout is training-only and not read: pass CLIPModel.forward's patchDropout option.)
 */
const VISION_PLAIN: Record<string, unknown> = {
  ls_init_value: null, attentional_pool: false, no_ln_pre: false, pos_embed_type: 'learnable', final_ln_after_pool: false,
  pool_type: 'tok', timm_model_name: null, proj_bias: false, input_patchnorm: false,
};
const TEXT_PLAIN: Record<string, unknown> = {
  ls_init_value: null, hf_model_name: null, embed_cls: false, no_causal_mask: false, final_ln_after_pool: false,
  proj_bias: false, proj_type: 'linear',
};

function refuseUnsupported(cfg: HFConfig, plain: Record<string, unknown>, where: string, label: string): void {
  for (const [k, ok] of Object.entries(plain)) {
    const v = cfg[k];
    if (v === undefined || v === null || v === ok) continue;
    throw new Error(`${label}: ${where}.${k} = ${JSON.stringify(v)} is not supported (only open_clip's plain ViT CLIP loads into CLIPModel)`);
  }
}

/**
 * A CLIPConfig from open_clip's model config (the file's `model_cfg`, or the file itself when it
 * has none). Text pooling 'argmax' becomes HF's legacy eos_token_id 2, which pools the largest id.
 */
export function clipConfigFromOpenClip(raw: HFConfig, label = OPEN_CLIP_CONFIG_NAME): CLIPConfig {
  const cfg = raw.model_cfg !== undefined ? object(raw.model_cfg, 'model_cfg', label) : raw;
  const top = new ConfigReader(cfg, `${label}: model_cfg`);
  const vcfg = object(cfg.vision_cfg, 'vision_cfg', label);
  const tcfg = object(cfg.text_cfg, 'text_cfg', label);
  if (cfg.init_logit_bias !== undefined && cfg.init_logit_bias !== null) {
    throw new Error(`${label}: init_logit_bias is set (a SigLIP-style logit bias), which CLIPModel does not have`);
  }
  if (Array.isArray(vcfg.layers)) throw new Error(`${label}: vision_cfg.layers is a list (a ModifiedResNet tower), which is not supported`);
  refuseUnsupported(vcfg, VISION_PLAIN, 'vision_cfg', label);
  refuseUnsupported(tcfg, TEXT_PLAIN, 'text_cfg', label);
  const v = new ConfigReader(vcfg, `${label}: vision_cfg`);
  const t = new ConfigReader(tcfg, `${label}: text_cfg`);
  const embedDim = top.int('embed_dim');
  const act = top.bool('quick_gelu', false) ? 'quick_gelu' : 'gelu';
  const vWidth = v.int('width', 768);
  const tWidth = t.int('width', 512);
  const imageSize = v.pair('image_size', 224);
  const patchSize = v.pair('patch_size', 16);
  if (imageSize[0] !== imageSize[1] || patchSize[0] !== patchSize[1]) {
    throw new Error(`${label}: vision_cfg image_size and patch_size must be square for CLIPModel`);
  }
  const mlp = (r: ConfigReader, width: number) => {
    const hidden = Math.floor(width * r.number('mlp_ratio', 4));
    if (hidden < 1) throw new Error(`${r.label}: mlp_ratio must give a positive MLP width`);
    return hidden;
  };
  const eps = (c: HFConfig, where: string) => {
    const n = object(c.norm_kwargs, `${where}.norm_kwargs`, label);
    return new ConfigReader(n, `${label}: ${where}.norm_kwargs`).number('eps', OPEN_CLIP_LN_EPS);
  };
  const headWidth = v.int('head_width', 64);
  if (vWidth % headWidth !== 0) throw new Error(`${label}: vision_cfg.width ${vWidth} is not a multiple of head_width ${headWidth}`);
  const pool = t.string('pool_type', 'argmax');
  if (pool !== 'argmax' && pool !== 'eos') throw new Error(`${label}: text_cfg.pool_type '${pool}' is not supported (argmax or eos)`);
  // HF reads eos_token_id 2 as "pool the largest id", so an EOS of id 2 has no HF spelling; and
  // open_clip's default eos_id is not spelled out in every version, so it must be given.
  const eosId = pool === 'eos' ? t.int('eos_id') : 2;
  if (pool === 'eos' && eosId === 2) throw new Error(`${label}: text_cfg eos pooling with eos_id 2 is not supported (HF reads eos_token_id 2 as argmax pooling)`);
  return new CLIPConfig({
    projectionDim: embedDim,
    textConfig: {
      vocabSize: t.int('vocab_size', 49408),
      hiddenSize: tWidth,
      intermediateSize: mlp(t, tWidth),
      numHiddenLayers: t.int('layers', 12, true),
      numAttentionHeads: t.int('heads', 8),
      maxPositionEmbeddings: t.int('context_length', 77),
      hiddenAct: act,
      layerNormEps: eps(tcfg, 'text_cfg'),
      padTokenId: t.number('pad_id', 0),
      eosTokenId: eosId,
      projectionDim: embedDim,
    },
    visionConfig: {
      hiddenSize: vWidth,
      intermediateSize: mlp(v, vWidth),
      numHiddenLayers: v.int('layers', 12, true),
      numAttentionHeads: vWidth / headWidth,
      imageSize: imageSize[0],
      patchSize: patchSize[0],
      hiddenAct: act,
      layerNormEps: eps(vcfg, 'vision_cfg'),
      projectionDim: embedDim,
    },
  });
}

/** open_clip's model_cfg for a CLIPConfig (the inverse of clipConfigFromOpenClip). */
export function openClipModelConfig(config: CLIPConfig): HFConfig {
  const tc = config.textConfig;
  const vc = config.visionConfig;
  if (tc.hiddenAct !== vc.hiddenAct || (tc.hiddenAct !== 'quick_gelu' && tc.hiddenAct !== 'gelu')) {
    throw new Error(`openClipModelConfig: open_clip needs both towers on quick_gelu or both on gelu, got ${tc.hiddenAct} and ${vc.hiddenAct}`);
  }
  const norm = (eps: number) => (eps === OPEN_CLIP_LN_EPS ? {} : { norm_kwargs: { eps } });
  return {
    embed_dim: config.projectionDim,
    quick_gelu: tc.hiddenAct === 'quick_gelu',
    vision_cfg: {
      image_size: vc.imageSize,
      layers: vc.numHiddenLayers,
      width: vc.hiddenSize,
      head_width: vc.hiddenSize / vc.numAttentionHeads,
      mlp_ratio: vc.intermediateSize / vc.hiddenSize,
      patch_size: vc.patchSize,
      ...norm(vc.layerNormEps),
    },
    text_cfg: {
      context_length: tc.maxPositionEmbeddings,
      vocab_size: tc.vocabSize,
      width: tc.hiddenSize,
      heads: tc.numAttentionHeads,
      layers: tc.numHiddenLayers,
      mlp_ratio: tc.intermediateSize / tc.hiddenSize,
      ...(tc.legacyPooling ? {} : { pool_type: 'eos', eos_id: tc.eosTokenId }),
      ...norm(tc.layerNormEps),
    },
  };
}

type Packing = 'same' | 'qkv' | 'transpose';

/** One open_clip tensor and the module tensors it holds. */
export interface OpenClipEntry {
  key: string;
  parts: readonly string[];
  packing: Packing;
}

const BLOCK: readonly (readonly [string, string])[] = [
  ['ln_1.weight', 'layer_norm1.weight'], ['ln_1.bias', 'layer_norm1.bias'],
  ['attn.out_proj.weight', 'self_attn.out_proj.weight'], ['attn.out_proj.bias', 'self_attn.out_proj.bias'],
  ['ln_2.weight', 'layer_norm2.weight'], ['ln_2.bias', 'layer_norm2.bias'],
  ['mlp.c_fc.weight', 'mlp.fc1.weight'], ['mlp.c_fc.bias', 'mlp.fc1.bias'],
  ['mlp.c_proj.weight', 'mlp.fc2.weight'], ['mlp.c_proj.bias', 'mlp.fc2.bias'],
];

function blocks(from: string, to: string, n: number): OpenClipEntry[] {
  const out: OpenClipEntry[] = [];
  for (let i = 0; i < n; i++) {
    const a = `${from}transformer.resblocks.${i}.`;
    const b = `${to}encoder.layers.${i}.self_attn.`;
    for (const w of ['weight', 'bias']) {
      out.push({ key: `${a}attn.in_proj_${w}`, parts: ['q', 'k', 'v'].map((x) => `${b}${x}_proj.${w}`), packing: 'qkv' });
    }
    for (const [o, m] of BLOCK) out.push({ key: a + o, parts: [`${to}encoder.layers.${i}.${m}`], packing: 'same' });
  }
  return out;
}

/** Every open_clip tensor of a model with this config; `customText` for CustomTextCLIP's `text.` prefix. */
export function openClipLayout(config: CLIPConfig, customText = false): OpenClipEntry[] {
  const t = customText ? 'text.' : '';
  const same = (key: string, part: string): OpenClipEntry => ({ key, parts: [part], packing: 'same' });
  return [
    same(`${t}token_embedding.weight`, 'text_model.embeddings.token_embedding.weight'),
    same(`${t}positional_embedding`, 'text_model.embeddings.position_embedding.weight'),
    ...blocks(t, 'text_model.', config.textConfig.numHiddenLayers),
    same(`${t}ln_final.weight`, 'text_model.final_layer_norm.weight'),
    same(`${t}ln_final.bias`, 'text_model.final_layer_norm.bias'),
    { key: `${t}text_projection`, parts: ['text_projection.weight'], packing: 'transpose' },
    same('visual.class_embedding', 'vision_model.embeddings.class_embedding'),
    same('visual.positional_embedding', 'vision_model.embeddings.position_embedding.weight'),
    same('visual.conv1.weight', 'vision_model.embeddings.patch_embedding.weight'),
    same('visual.ln_pre.weight', 'vision_model.pre_layrnorm.weight'),
    same('visual.ln_pre.bias', 'vision_model.pre_layrnorm.bias'),
    ...blocks('visual.', 'vision_model.', config.visionConfig.numHiddenLayers),
    same('visual.ln_post.weight', 'vision_model.post_layernorm.weight'),
    same('visual.ln_post.bias', 'vision_model.post_layernorm.bias'),
    { key: 'visual.proj', parts: ['visual_projection.weight'], packing: 'transpose' },
    same('logit_scale', 'logit_scale'),
  ];
}

/** The open_clip shape of an entry, from the module's shapes. */
function packedShape(e: OpenClipEntry, shapeOf: (k: string) => readonly number[]): number[] {
  const s = shapeOf(e.parts[0]!);
  if (e.packing === 'qkv') return [s[0]! * 3, ...s.slice(1)];
  if (e.packing === 'transpose') return [s[1]!, s[0]!];
  return [...s];
}

/**
 * Tensors in open_clip's layout from module-keyed ones (`get` gives the tensor of a module key, or
 * null): the weights for saving, or the gradients to compare with open_clip's. Entries with a
 * missing part are left out.
 */
export function toOpenClipTensors(config: CLIPConfig, get: (moduleKey: string) => Tensor | null, customText = false): Record<string, Tensor> {
  const out: Record<string, Tensor> = {};
  for (const e of openClipLayout(config, customText)) {
    const parts = e.parts.map(get);
    if (parts.some((p) => p === null)) continue;
    const ts = parts as Tensor[];
    out[e.key] = e.packing === 'qkv' ? concat(ts, 0) : e.packing === 'transpose' ? ts[0]!.transpose(0, 1).contiguous() : ts[0]!;
  }
  return out;
}

/** Splits / transposes one open_clip host tensor into its module tensors. */
function unpack(e: OpenClipEntry, shape: readonly number[], data: Float32Array | Float64Array): StateDict {
  if (e.packing === 'same') return { [e.parts[0]!]: { shape, data } };
  if (e.packing === 'transpose') {
    const [r, c] = shape as [number, number];
    const out = new (data.constructor as Float32ArrayConstructor)(r * c);
    for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = data[i * c + j]!;
    return { [e.parts[0]!]: { shape: [c, r], data: out } };
  }
  const rows = shape[0]! / 3;
  const partShape = [rows, ...shape.slice(1)];
  const n = data.length / 3;
  return Object.fromEntries(e.parts.map((k, i) => [k, { shape: partShape, data: data.slice(i * n, (i + 1) * n) }]));
}

export interface OpenClipLoadOptions extends CLIPOptions {
  /** Missing and unexpected keys are an error (default true); mis-shaped ones always are. */
  strict?: boolean;
}

/**
 * Loads an open_clip folder (open_clip_config.json and open_clip_model.safetensors) into a
 * CLIPModel, in eval mode. Errors name open_clip's keys.
 */
export function loadOpenClip(dir: string, opts: OpenClipLoadOptions = {}): CLIPModel {
  const cfgFile = path.join(dir, OPEN_CLIP_CONFIG_NAME);
  const weightsFile = path.join(dir, OPEN_CLIP_WEIGHTS_NAME);
  if (!fs.existsSync(cfgFile)) throw new Error(`${cfgFile}: missing (an open_clip folder needs ${OPEN_CLIP_CONFIG_NAME})`);
  if (!fs.existsSync(weightsFile)) throw new Error(`${weightsFile}: missing (only the safetensors weights of open_clip are read)`);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
  } catch (e) {
    throw new Error(`${cfgFile}: not valid JSON: ${(e as Error).message}`, { cause: e });
  }
  const config = clipConfigFromOpenClip(object(raw, 'the file', cfgFile), cfgFile);
  const strict = opts.strict ?? true;
  const model = new CLIPModel(config, { ...opts, initWeights: opts.initWeights ?? !strict });
  const file = SafetensorsFile.open(weightsFile);
  try {
    const customText = file.names.some((n) => n.startsWith('text.'));
    const layout = openClipLayout(config, customText);
    const own = model.stateDict();
    const known = new Set(layout.map((e) => e.key));
    const unexpected = file.names.filter((n) => !known.has(n));
    const missing: string[] = [];
    const mismatched: string[] = [];
    for (const e of layout) {
      if (!file.has(e.key)) {
        missing.push(e.key);
        continue;
      }
      const want = packedShape(e, (k) => own[k]!.shape);
      const got = file.info(e.key).shape;
      if (got.length !== want.length || got.some((d, i) => d !== want[i])) mismatched.push(`${e.key}: checkpoint [${got}] vs model [${want}]`);
    }
    if (mismatched.length || (strict && (missing.length || unexpected.length))) {
      const err = new StateDictError(missing, unexpected, mismatched);
      err.message = `${weightsFile}: ${err.message.replace(/^loadStateDict: the state dict/, 'the checkpoint')}`;
      throw err;
    }
    const dict: StateDict = {};
    for (const e of layout) {
      if (!file.has(e.key)) continue;
      const h = file.read(e.key);
      if (!(h.data instanceof Float32Array || h.data instanceof Float64Array)) throw new Error(`${weightsFile}: ${e.key} is not a float tensor`);
      Object.assign(dict, unpack(e, h.shape, h.data));
    }
    model.loadStateDict(dict, { strict: false });
  } finally {
    file.close();
  }
  return model.eval();
}

/** Writes the model as an open_clip folder: open_clip_config.json ({model_cfg}) and the weights. */
export function saveOpenClip(model: CLIPModel, dir: string): string[] {
  const modelCfg = openClipModelConfig(model.config);
  const own = model.stateDict();
  const host: Record<string, TensorToWrite> = {};
  for (const [k, t] of Object.entries(toOpenClipTensors(model.config, (key) => own[key] ?? null))) {
    host[k] = { shape: t.shape, data: t.data() };
  }
  fs.mkdirSync(dir, { recursive: true });
  writeSafetensors(path.join(dir, OPEN_CLIP_WEIGHTS_NAME), host, { format: 'pt' });
  fs.writeFileSync(path.join(dir, OPEN_CLIP_CONFIG_NAME), `${JSON.stringify({ model_cfg: modelCfg }, null, 2)}\n`);
  return [OPEN_CLIP_CONFIG_NAME, OPEN_CLIP_WEIGHTS_NAME];
}
