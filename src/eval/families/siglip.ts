// SigLIP (SiglipModel) for the parity runner.
import type { Tensor } from '../../tensor/tensor.js';
import { SiglipModel, siglipKeyFromHF, siglipKeyToHF } from '../../models/siglip.js';
import { type Family, pixelsOf } from './types.js';

export const SIGLIP: Family = {
  name: 'siglip',
  matches: (t) => t === 'siglip',
  architectures: ['SiglipModel'],
  load(dir, _architecture, backend) {
    const module = SiglipModel.fromPretrained(dir, { backend });
    const native = module.config.visionConfig.imageSize;
    return {
      module,
      run(inputs, meta) {
        if (meta.loss_fn !== undefined && !/sigmoid/i.test(meta.loss_fn)) {
          throw new Error(`parity: loss_fn '${meta.loss_fn}' is not supported for SiglipModel (supported: the pairwise sigmoid loss)`);
        }
        const ids = inputs.input_ids;
        if (!ids) throw new Error('parity: inputs.safetensors has no input_ids');
        const pixels = pixelsOf(inputs);
        const interpolatePosEncoding = meta.interpolate_pos_encoding === true || pixels.shape[2] !== native || pixels.shape[3] !== native;
        // The loss needs paired batches; a fixture with unpaired ones compares outputs only.
        const paired = ids.shape[0] === pixels.shape[0];
        const out = module.forward(ids, pixels, {
          attentionMask: inputs.attention_mask ?? null, interpolatePosEncoding, returnLoss: paired, outputHiddenStates: true,
        });
        const outputs: Record<string, Tensor> = {
          logits_per_image: out.logitsPerImage,
          logits_per_text: out.logitsPerText,
          text_embeds: out.textEmbeds,
          image_embeds: out.imageEmbeds,
          text_last_hidden_state: out.textOutput.lastHiddenState,
          text_pooler_output: out.textOutput.poolerOutput!,
          vision_last_hidden_state: out.visionOutput.lastHiddenState,
          vision_pooler_output: out.visionOutput.poolerOutput!,
        };
        if (out.loss) outputs.loss = out.loss;
        out.textOutput.hiddenStates!.forEach((h, i) => { outputs[`hidden_states.text.${i}`] = h; });
        out.visionOutput.hiddenStates!.forEach((h, i) => { outputs[`hidden_states.vision.${i}`] = h; });
        return { outputs, loss: out.loss };
      },
      moduleKey: siglipKeyFromHF,
      hfName: siglipKeyToHF,
    };
  },
};
