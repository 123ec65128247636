// BLIP (BlipForImageTextRetrieval, BlipForConditionalGeneration) for the parity runner.
import type { Tensor } from '../../tensor/tensor.js';
import { BlipForConditionalGeneration, BlipForImageTextRetrieval, blipKeyFromHF, blipKeyToHF } from '../../models/blip.js';
import { type Family, type FixtureMeta, pixelsOf } from './types.js';

/** The retrieval fixture's scalar: exercises both heads at once. */
export const BLIP_ITM_LOSS = 'sum(logsumexp(itm_logits,-1)) + sum(itc_similarity)';

function idsOf(inputs: Record<string, Tensor>): Tensor {
  const ids = inputs.input_ids;
  if (!ids) throw new Error('parity: inputs.safetensors has no input_ids');
  return ids;
}

/** How many tokens the fixture's generate added: meta.generate's max_new_tokens, else generated_ids' length - 1. */
function maxNewTokensOf(meta: FixtureMeta): number | null {
  const m = typeof meta.generate === 'string' ? /max_new_tokens\s*=\s*(\d+)/.exec(meta.generate) : null;
  if (m) return Number(m[1]);
  const shape = meta.outputs?.generated_ids;
  return shape && shape.length === 2 ? shape[1]! - 1 : null;
}

export const BLIP: Family = {
  name: 'blip',
  matches: (t) => t === 'blip',
  architectures: ['BlipForImageTextRetrieval', 'BlipForConditionalGeneration'],
  load(dir, architecture, backend) {
    const module = architecture === 'BlipForImageTextRetrieval'
      ? BlipForImageTextRetrieval.fromPretrained(dir, { backend })
      : BlipForConditionalGeneration.fromPretrained(dir, { backend });
    const native = module.config.visionConfig.imageSize;
    return {
      module,
      run(inputs, meta) {
        const pixels = pixelsOf(inputs);
        const interpolatePosEncoding = meta.interpolate_pos_encoding === true || pixels.shape[2] !== native || pixels.shape[3] !== native;
        const attentionMask = inputs.attention_mask ?? null;
        const outputs: Record<string, Tensor> = {};
        if (module.kind === 'image-text-matcher') {
          if (meta.loss_fn !== undefined && !meta.loss_fn.startsWith(BLIP_ITM_LOSS)) {
            throw new Error(`parity: loss_fn '${meta.loss_fn}' is not supported for ${architecture} (supported: ${BLIP_ITM_LOSS})`);
          }
          const vision = module.visionModel.forward(pixels, { interpolatePosEncoding, outputHiddenStates: true });
          const itm = module.itm(idsOf(inputs), vision.lastHiddenState, attentionMask).logits;
          const itc = module.itc(idsOf(inputs), vision.lastHiddenState, attentionMask).similarity;
          outputs.itm_logits = itm;
          outputs.itc_similarity = itc;
          outputs.last_hidden_state = vision.lastHiddenState;
          const loss = itm.logsumexp(-1).sum().add(itc.sum());
          return { outputs, loss };
        }
        const out = module.forward(pixels, idsOf(inputs), { attentionMask, labels: inputs.labels ?? null, interpolatePosEncoding });
        outputs.logits = out.logits;
        if (out.loss) outputs.loss = out.loss;
        outputs.last_hidden_state = out.vision.lastHiddenState;
        const wantIds = meta.outputs ? 'generated_ids' in meta.outputs : true;
        const maxNewTokens = maxNewTokensOf(meta);
        if (wantIds && maxNewTokens !== null) outputs.generated_ids = module.generate(pixels, { maxNewTokens, interpolatePosEncoding });
        return { outputs, loss: out.loss };
      },
      moduleKey: (name) => blipKeyFromHF(name) ?? name,
      hfName: blipKeyToHF,
    };
  },
};
