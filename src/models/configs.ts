// The zoo's built-in model names and their configs, as config.json fields (HF's layout).
//
// CLIP sizes are written as open_clip writes them (embed_dim, vision_cfg, text_cfg) and converted
// with clipConfigFromOpenClip, so ViT-B-32 here is open_clip's ViT-B-32. The plain names are
// OpenAI's checkpoints, which use QuickGELU (open_clip's *-quickgelu variants, HF's
// openai/clip-*); the other families' configs are their reference checkpoints' config.json.
import type { HFConfig } from '../io/hf.js';
import { byteSymbols, clipTokenizer } from '../data/tokenizers/clip.js';
import { TextTokenizer } from '../data/tokenizers/tokenizer.js';
import { clipConfigFromOpenClip } from './openclip.js';

/** A built-in model name (registered as a ModelEntry by the registry). */
export interface BuiltinModel {
  name: string;
  aliases: string[];
  description: string;
  config: HFConfig;
  pretrained?: string;
  tokenizer?: () => TextTokenizer;
}

const SOT = '<|startoftext|>';
const EOT = '<|endoftext|>';

/**
 * A byte-level tokenizer for the tiny test models: the 256 bytes (id = byte value), then
 * <|startoftext|> (256) and <|endoftext|> (257), which wraps every text. The end token has the
 * largest id, so CLIP's legacy argmax pooling finds it. Padding with 0 to `contextLength`.
 */
export function byteTokenizer(contextLength: number): TextTokenizer {
  const { byByte } = byteSymbols();
  const vocab: Record<string, number> = {};
  byByte.forEach((s, b) => (vocab[s] = b));
  vocab[SOT] = 256;
  vocab[EOT] = 257;
  const added = (id: number, content: string) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  const special = (content: string, id: number) => ({ id: content, ids: [id], tokens: [content] });
  const tokenizerJson = {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [added(256, SOT), added(257, EOT)],
    normalizer: { type: 'Lowercase' },
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: SOT, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: EOT, type_id: 0 } }],
      pair: [{ SpecialToken: { id: SOT, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { SpecialToken: { id: EOT, type_id: 0 } },
        { Sequence: { id: 'B', type_id: 1 } }, { SpecialToken: { id: EOT, type_id: 1 } }],
      special_tokens: { [SOT]: special(SOT, 256), [EOT]: special(EOT, 257) },
    },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: [] },
  };
  return new TextTokenizer({ tokenizerJson, tokenizerConfig: {} },
    { contextLength, padId: 0, padding: 'max_length', truncation: true, cleanup: 'none', cleanUpSpaces: false }, 'byte tokenizer');
}

const openClip = (cfg: HFConfig): HFConfig => clipConfigFromOpenClip(cfg, 'built-in config').toHF(['CLIPModel']);

const OPENAI_TEXT = { context_length: 77, vocab_size: 49408, width: 512, heads: 8, layers: 12 };

function tinyCached(contextLength: number): () => TextTokenizer {
  let t: TextTokenizer | undefined;
  return () => (t ??= byteTokenizer(contextLength));
}

export const BUILTIN_MODELS: readonly BuiltinModel[] = [
  {
    name: 'ViT-B-32',
    aliases: ['ViT-B-32-quickgelu', 'openai/clip-vit-base-patch32', 'ViT-B/32'],
    description: "OpenAI's CLIP ViT-B/32 (224 px, patch 32, QuickGELU)",
    config: openClip({ embed_dim: 512, quick_gelu: true, vision_cfg: { image_size: 224, layers: 12, width: 768, patch_size: 32 }, text_cfg: OPENAI_TEXT }),
    pretrained: 'openai/clip-vit-base-patch32',
    tokenizer: clipTokenizer,
  },
  {
    name: 'ViT-B-16',
    aliases: ['ViT-B-16-quickgelu', 'openai/clip-vit-base-patch16', 'ViT-B/16'],
    description: "OpenAI's CLIP ViT-B/16 (224 px, patch 16, QuickGELU)",
    config: openClip({ embed_dim: 512, quick_gelu: true, vision_cfg: { image_size: 224, layers: 12, width: 768, patch_size: 16 }, text_cfg: OPENAI_TEXT }),
    pretrained: 'openai/clip-vit-base-patch16',
    tokenizer: clipTokenizer,
  },
  {
    name: 'ViT-L-14',
    aliases: ['ViT-L-14-quickgelu', 'openai/clip-vit-large-patch14', 'ViT-L/14'],
    description: "OpenAI's CLIP ViT-L/14 (224 px, patch 14, QuickGELU)",
    config: openClip({
      embed_dim: 768, quick_gelu: true,
      vision_cfg: { image_size: 224, layers: 24, width: 1024, patch_size: 14 },
      text_cfg: { ...OPENAI_TEXT, width: 768, heads: 12 },
    }),
    pretrained: 'openai/clip-vit-large-patch14',
    tokenizer: clipTokenizer,
  },
  {
    name: 'ViT-B-16-SigLIP',
    aliases: ['google/siglip-base-patch16-224', 'siglip-base-patch16-224'],
    description: "Google's SigLIP ViT-B/16 (224 px, WebLI); its SentencePiece tokenizer comes from the weights folder",
    config: {
      architectures: ['SiglipModel'],
      model_type: 'siglip',
      text_config: {
        vocab_size: 32000, hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12,
        max_position_embeddings: 64, hidden_act: 'gelu_pytorch_tanh', layer_norm_eps: 1e-6,
      },
      vision_config: {
        hidden_size: 768, intermediate_size: 3072, num_hidden_layers: 12, num_attention_heads: 12, num_channels: 3,
        image_size: 224, patch_size: 16, hidden_act: 'gelu_pytorch_tanh', layer_norm_eps: 1e-6,
      },
    },
    pretrained: 'google/siglip-base-patch16-224',
  },
  {
    name: 'BLIP-base',
    aliases: ['BLIP-base-caption', 'Salesforce/blip-image-captioning-base'],
    description: 'BLIP ViT-B/16 image captioning (384 px)',
    config: blipBase('BlipForConditionalGeneration'),
    pretrained: 'Salesforce/blip-image-captioning-base',
  },
  {
    name: 'BLIP-base-retrieval',
    aliases: ['BLIP-base-itm', 'Salesforce/blip-itm-base-coco'],
    description: 'BLIP ViT-B/16 image-text retrieval (ITM and ITC heads, 384 px, COCO)',
    config: blipBase('BlipForImageTextRetrieval'),
    pretrained: 'Salesforce/blip-itm-base-coco',
  },
  {
    name: 'ViT-MAE-base',
    aliases: ['facebook/vit-mae-base', 'mae-base'],
    description: 'MAE ViT-B/16 pre-training (encoder + 8-layer decoder, mask ratio 0.75)',
    config: {
      architectures: ['ViTMAEForPreTraining'],
      model_type: 'vit_mae',
      hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072, hidden_act: 'gelu',
      hidden_dropout_prob: 0, attention_probs_dropout_prob: 0, initializer_range: 0.02, layer_norm_eps: 1e-12,
      image_size: 224, patch_size: 16, num_channels: 3, qkv_bias: true,
      decoder_num_attention_heads: 16, decoder_hidden_size: 512, decoder_num_hidden_layers: 8, decoder_intermediate_size: 2048,
      mask_ratio: 0.75, norm_pix_loss: false,
    },
    pretrained: 'facebook/vit-mae-base',
  },
  {
    name: 'BERT-base',
    aliases: ['bert-base-uncased'],
    description: 'BERT base, uncased, with its masked-language-model head',
    config: {
      architectures: ['BertForMaskedLM'],
      model_type: 'bert',
      vocab_size: 30522, hidden_size: 768, num_hidden_layers: 12, num_attention_heads: 12, intermediate_size: 3072, hidden_act: 'gelu',
      hidden_dropout_prob: 0.1, attention_probs_dropout_prob: 0.1, max_position_embeddings: 512, type_vocab_size: 2,
      initializer_range: 0.02, layer_norm_eps: 1e-12, pad_token_id: 0,
    },
    pretrained: 'google-bert/bert-base-uncased',
  },
  // Tiny configs for tests and quick experiments, with the byte tokenizer.
  {
    name: 'tiny-clip',
    aliases: [],
    description: 'the tiny CLIP of the anchors (64 px, patch 8, width 256, 4 layers; text context 32, vocab 1000; 6.7 M parameters)',
    config: openClip({
      embed_dim: 128,
      vision_cfg: { image_size: 64, patch_size: 8, width: 256, layers: 4, head_width: 64, mlp_ratio: 4 },
      text_cfg: { context_length: 32, vocab_size: 1000, width: 256, heads: 4, layers: 4, mlp_ratio: 4 },
    }),
    tokenizer: tinyCached(32),
  },
  {
    name: 'test-clip',
    aliases: [],
    description: 'a very small CLIP for unit tests (32 px, patch 8, width 32, 2 layers; text context 16, vocab 300)',
    config: openClip({
      embed_dim: 16,
      vision_cfg: { image_size: 32, patch_size: 8, width: 32, layers: 2, head_width: 16 },
      text_cfg: { context_length: 16, vocab_size: 300, width: 32, heads: 2, layers: 2 },
    }),
    tokenizer: tinyCached(16),
  },
  {
    name: 'test-siglip',
    aliases: [],
    description: 'a very small SigLIP for unit tests (32 px, patch 8, width 32, 2 layers; text context 16, vocab 300)',
    config: {
      architectures: ['SiglipModel'],
      model_type: 'siglip',
      text_config: {
        vocab_size: 300, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 2,
        max_position_embeddings: 16, pad_token_id: 0, bos_token_id: 256, eos_token_id: 257,
      },
      vision_config: { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 2, image_size: 32, patch_size: 8 },
    },
    tokenizer: tinyCached(16),
  },
  {
    name: 'test-bert',
    aliases: [],
    description: 'a very small BERT with its MLM head for unit tests (width 32, 2 layers, vocab 300)',
    config: {
      architectures: ['BertForMaskedLM'],
      model_type: 'bert',
      vocab_size: 300, hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, max_position_embeddings: 64,
    },
  },
  {
    name: 'test-vit',
    aliases: [],
    description: 'a very small ViT for unit tests (32 px, patch 8, width 32, 2 layers)',
    config: {
      architectures: ['ViTModel'],
      model_type: 'vit',
      hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, image_size: 32, patch_size: 8,
    },
  },
  {
    name: 'test-vit-mae',
    aliases: [],
    description: 'a very small ViT-MAE for unit tests (32 px, patch 8, width 32, 2 layers; decoder width 16, 1 layer)',
    config: {
      architectures: ['ViTMAEForPreTraining'],
      model_type: 'vit_mae',
      hidden_size: 32, num_hidden_layers: 2, num_attention_heads: 2, intermediate_size: 64, image_size: 32, patch_size: 8,
      decoder_hidden_size: 16, decoder_num_hidden_layers: 1, decoder_num_attention_heads: 2, decoder_intermediate_size: 32, mask_ratio: 0.75,
    },
  },
  {
    name: 'test-blip',
    aliases: [],
    description: 'a very small BLIP captioner for unit tests (32 px, patch 8, width 32, 2 layers; text vocab 300)',
    config: {
      architectures: ['BlipForConditionalGeneration'],
      model_type: 'blip',
      projection_dim: 16,
      image_text_hidden_size: 16,
      text_config: {
        vocab_size: 300, hidden_size: 32, encoder_hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 2,
        max_position_embeddings: 32, bos_token_id: 256, eos_token_id: 257, sep_token_id: 257, pad_token_id: 0, is_decoder: true,
      },
      vision_config: { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 2, image_size: 32, patch_size: 8 },
    },
  },
];

function blipBase(architecture: string): HFConfig {
  return {
    architectures: [architecture],
    model_type: 'blip',
    projection_dim: 512,
    image_text_hidden_size: 256,
    logit_scale_init_value: 2.6592,
    initializer_factor: 1,
    initializer_range: 0.02,
    label_smoothing: 0,
    text_config: {
      model_type: 'blip_text_model',
      vocab_size: 30524, hidden_size: 768, encoder_hidden_size: 768, intermediate_size: 3072, projection_dim: 768,
      num_hidden_layers: 12, num_attention_heads: 12, max_position_embeddings: 512, hidden_act: 'gelu', layer_norm_eps: 1e-12,
      hidden_dropout_prob: 0, attention_probs_dropout_prob: 0, initializer_range: 0.02,
      bos_token_id: 30522, eos_token_id: 2, pad_token_id: 0, sep_token_id: 102, is_decoder: true, use_cache: true,
    },
    vision_config: {
      model_type: 'blip_vision_model',
      hidden_size: 768, intermediate_size: 3072, projection_dim: 512, num_hidden_layers: 12, num_attention_heads: 12,
      image_size: 384, patch_size: 16, hidden_act: 'gelu', layer_norm_eps: 1e-5, attention_dropout: 0, initializer_range: 0.02,
    },
  };
}
