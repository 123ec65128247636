// CLIP (CLIPModel) for the parity runner.
import type { Tensor } from '../../tensor/tensor.js';
import { CLIPModel, clipKeyFromHF } from '../../models/clip.js';
import { type Family, pixelsOf } from './types.js';

export const CLIP: Family = {
  name: 'clip',
  matches: (t) => t === 'clip',
  architectures: ['CLIPModel'],
  load(dir, _architecture, backend) {
    const module = CLIPModel.fromPretrained(dir, { backend });
    const size = module.config.visionConfig.imageSize;
    return {
      module,
      run(inputs, meta) {
        const pixels = pixelsOf(inputs);
        const ids = inputs.input_ids;
        if (!ids) throw new Error('parity: inputs.safetensors has no input_ids');
        const interpolatePosEncoding = meta.interpolate_pos_encoding === true || pixels.shape[2] !== size || pixels.shape[3] !== size;
        if (meta.loss_fn !== undefined && !/symmetric cross-entropy/.test(meta.loss_fn)) {
          throw new Error(`parity: loss_fn '${meta.loss_fn}' is not supported for CLIPModel (supported: CLIP symmetric cross-entropy)`);
        }
        const out = module.forward(ids, pixels, inputs.attention_mask ?? null,
          { returnLoss: ids.shape[0] === pixels.shape[0], interpolatePosEncoding, outputHiddenStates: true });
        const outputs: Record<string, Tensor> = {
          logits_per_image: out.logitsPerImage,
          logits_per_text: out.logitsPerText,
          text_embeds: out.textEmbeds,
          image_embeds: out.imageEmbeds,
          text_last_hidden_state: out.textModelOutput.lastHiddenState,
          vision_last_hidden_state: out.visionModelOutput.lastHiddenState,
          // transformers 5 names the projected, unnormalised features the towers' pooler_output.
          text_pooler_output: out.textFeatures,
          vision_pooler_output: out.imageFeatures,
          text_model_pooler_output: out.textModelOutput.poolerOutput,
          vision_model_pooler_output: out.visionModelOutput.poolerOutput,
        };
        if (out.loss) outputs.loss = out.loss;
        out.textModelOutput.hiddenStates!.forEach((h, i) => { outputs[`text_hidden_states.${i}`] = h; });
        out.visionModelOutput.hiddenStates!.forEach((h, i) => { outputs[`vision_hidden_states.${i}`] = h; });
        return { outputs, loss: out.loss };
      },
      moduleKey: (name) => clipKeyFromHF(name) ?? name,
      hfName: (key) => key,
    };
  },
};
