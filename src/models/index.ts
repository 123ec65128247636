// Model families with Hugging Face parity, one file each.
export {
  VIT, ViTConfig, ViTModel, ViTForImageClassification, ViTEmbeddings, ViTPatchEmbeddings, ViTPooler, vitKeyToHF, vitKeyFromHF,
} from './vit.js';
export type {
  ViTConfigOptions, ViTOptions, ViTForwardOptions, ViTModelOutput, ViTClassificationOutput, PatchFeatureOptions, ProblemType,
} from './vit.js';
export { interpolateBicubic, bicubicMatrix } from './interpolate.js';
export {
  SIGLIP, SiglipConfig, SiglipTextConfig, SiglipVisionConfig, SiglipModel, SiglipVisionTransformer, SiglipTextTransformer,
  siglipKeyToHF, siglipKeyFromHF,
} from './siglip.js';
export type { SiglipOptions, SiglipForwardOptions, SiglipVisionForwardOptions, SiglipOutput, SiglipTowerOutput } from './siglip.js';
export {
  BERT, BertConfig, BertModel, BertForMaskedLM, BertEncoder, BertLayer, bertKeyToHF, bertKeyFromHF,
} from './bert.js';
export type { BertConfigOptions, BertOptions, BertForwardOptions, BertModelOutput, BertMaskedLMOutput, BertLayerOptions } from './bert.js';
export {
  CLIP, CLIPConfig, CLIPTextConfig, CLIPVisionConfig, CLIPModel, CLIPTextTransformer, CLIPVisionTransformer, l2Normalize,
  clipKeyFromHF,
} from './clip.js';
export type {
  CLIPConfigOptions, CLIPTextConfigOptions, CLIPVisionConfigOptions, CLIPOptions, CLIPForwardOptions, CLIPVisionForwardOptions, CLIPTextForwardOptions, CLIPOutput, CLIPTowerOutput,
} from './clip.js';
export { loadOpenClip, saveOpenClip, clipConfigFromOpenClip } from './openclip.js';
export type { OpenClipLoadOptions } from './openclip.js';
export {
  VIT_MAE, ViTMAEConfig, ViTMAEModel, ViTMAEForPreTraining, randomMasking, sincosPositionTable, vitMaeKeyToHF, vitMaeKeyFromHF,
  maeEncoderConfig, maeEncoderState, vitModelFromMAE, vitClassifierFromMAE,
} from './vit_mae.js';
export type {
  ViTMAEConfigOptions, ViTMAEOptions, ViTMAEForwardOptions, ViTMAEModelOutput, ViTMAEPreTrainingOutput, MAEEncoderSource, MAEClassifierOptions,
} from './vit_mae.js';
export {
  BLIP, BlipConfig, BlipTextConfig, BlipVisionConfig, BlipForImageTextRetrieval, BlipForConditionalGeneration, BlipVisionModel,
  BlipTextModel, BlipTextLMHeadModel, blipKeyFromHF, blipKeyToHF,
} from './blip.js';
export type {
  BlipConfigOptions, BlipTextConfigOptions, BlipVisionConfigOptions, BlipOptions, BlipGenerateOptions, BlipRetrievalOutput,
  BlipCaptionOutput, BlipVisionOutput, BlipTextOutput, BlipLMOutput,
} from './blip.js';
export { OADTR, OadTR, OadTRConfig, inferOadTRConfig } from './oadtr.js';
export type { OadTRConfigOptions, OadTROptions, PositionalEncodingType } from './oadtr.js';
export {
  models, losses, registerModel, registerModelFamily, modelFamily, modelFromConfig, listModels, getModelEntry, createModel, registerLoss, getLoss, listLosses,
} from './registry.js';
export type { ModelEntry, CreateModelOptions, LossEntry } from './registry.js';
/** The field kinds a family's config table is written in (int, num, pair, sub, ...) and configClass. */
export * as configTable from './config_table.js';
export { architectureOf } from './family.js';
export type {
  Model, ModelKind, ModelBase, ModelClass, ModelFamily, ModelSizes, DualEncoder, ImageEncoder, ImageClassifier, MaskedImageModel,
  MaskedLanguageModel, OtherModel, ImageTowerLayout, ImageEncodeOptions, OnlineActionDetector, OnlineDetectorOutput, OnlineDetectorLoss,
} from './family.js';
export { BUILTIN_MODELS, byteTokenizer } from './configs.js';
export type { BuiltinModel } from './configs.js';
