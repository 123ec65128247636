// Model families with Hugging Face parity, one file each.
export {
  ViTConfig, ViTModel, ViTForImageClassification, ViTEmbeddings, ViTPatchEmbeddings, ViTPooler, vitKeyToHF, vitKeyFromHF,
} from './vit.js';
export type {
  ViTConfigOptions, ViTOptions, ViTForwardOptions, ViTModelOutput, ViTClassificationOutput, PatchFeatureOptions, ProblemType,
} from './vit.js';
export { interpolateBicubic, bicubicMatrix } from './interpolate.js';
