// ViT (ViTForImageClassification, ViTModel) for the parity runner.
import type { Tensor } from '../../tensor/tensor.js';
import { ViTForImageClassification, ViTModel, vitKeyFromHF, vitKeyToHF } from '../../models/vit.js';
import { type Family, pixelsOf } from './types.js';

export const VIT: Family = {
  name: 'vit',
  matches: (t) => t === 'vit',
  architectures: ['ViTForImageClassification', 'ViTModel'],
  load(dir, architecture, backend) {
    const classifier = architecture === 'ViTForImageClassification';
    const module = classifier ? ViTForImageClassification.fromPretrained(dir, { backend }) : ViTModel.fromPretrained(dir, { backend });
    const native = module.config.imageSize;
    return {
      module,
      run(inputs, meta) {
        const pixels = pixelsOf(inputs);
        const interpolatePosEncoding = meta.interpolate_pos_encoding === true ||
          pixels.shape[2] !== native[0] || pixels.shape[3] !== native[1];
        const outputs: Record<string, Tensor> = {};
        if (module.kind === 'image-classifier') {
          const out = module.forward(pixels, { labels: inputs.labels ?? null, interpolatePosEncoding, outputHiddenStates: true });
          outputs.logits = out.logits;
          if (out.loss) outputs.loss = out.loss;
          // The classifier's HF output has no last_hidden_state: fixtures take hidden_states[-1],
          // which is before the final layer norm.
          outputs.last_hidden_state = out.hiddenStates!.at(-1)!;
          out.hiddenStates!.forEach((h, i) => { outputs[`hidden_states.${i}`] = h; });
          return { outputs, loss: out.loss };
        }
        const out = module.forward(pixels, { interpolatePosEncoding, outputHiddenStates: true });
        outputs.last_hidden_state = out.lastHiddenState;
        if (out.poolerOutput) outputs.pooler_output = out.poolerOutput;
        out.hiddenStates!.forEach((h, i) => { outputs[`hidden_states.${i}`] = h; });
        return { outputs, loss: null };
      },
      moduleKey: (name) => (classifier || !name.startsWith('vit.') ? vitKeyFromHF(name) : vitKeyFromHF(name.slice(4))),
      hfName: vitKeyToHF,
    };
  },
};

