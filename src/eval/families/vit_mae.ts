// ViT-MAE (ViTMAEForPreTraining, ViTMAEModel) for the parity runner. Fixtures pass `noise`, which
// makes the masking deterministic; `mask` and `ids_restore` are outputs like any other.
import type { Tensor } from '../../tensor/tensor.js';
import { ViTMAEForPreTraining, ViTMAEModel, vitMaeKeyFromHF, vitMaeKeyToHF } from '../../models/vit_mae.js';
import { type Family, pixelsOf } from './types.js';

export const VIT_MAE: Family = {
  name: 'vit_mae',
  matches: (t) => t === 'vit_mae',
  architectures: ['ViTMAEForPreTraining', 'ViTMAEModel'],
  load(dir, architecture, backend) {
    const pretraining = architecture === 'ViTMAEForPreTraining';
    const module = pretraining ? ViTMAEForPreTraining.fromPretrained(dir, { backend }) : ViTMAEModel.fromPretrained(dir, { backend });
    return {
      module,
      run(inputs) {
        const pixels = pixelsOf(inputs);
        const noise = inputs.noise ?? null;
        if (!noise) throw new Error('parity: ViT-MAE fixtures need a noise input (the masking is random otherwise)');
        const outputs: Record<string, Tensor> = {};
        if (module.kind === 'masked-image-model') {
          const out = module.forward(pixels, { noise, outputHiddenStates: true });
          Object.assign(outputs, { logits: out.logits, mask: out.mask, ids_restore: out.idsRestore, loss: out.loss });
          out.hiddenStates!.forEach((h, i) => { outputs[`hidden_states.${i}`] = h; });
          return { outputs, loss: out.loss };
        }
        const out = module.forward(pixels, { noise, outputHiddenStates: true });
        Object.assign(outputs, { last_hidden_state: out.lastHiddenState, mask: out.mask, ids_restore: out.idsRestore });
        out.hiddenStates!.forEach((h, i) => { outputs[`hidden_states.${i}`] = h; });
        return { outputs, loss: null };
      },
      moduleKey: (name) => (pretraining || !name.startsWith('vit.') ? vitMaeKeyFromHF(name) : vitMaeKeyFromHF(name.slice(4))),
      hfName: vitMaeKeyToHF,
    };
  },
};
