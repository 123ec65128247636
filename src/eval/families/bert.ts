// BERT (BertForMaskedLM, BertModel) for the parity runner.
import type { Tensor } from '../../tensor/tensor.js';
import { BertForMaskedLM, BertModel, bertKeyFromHF, bertKeyToHF } from '../../models/bert.js';
import type { Family } from './types.js';

function idsOf(inputs: Record<string, Tensor>): Tensor {
  const ids = inputs.input_ids;
  if (!ids) throw new Error('parity: inputs.safetensors has no input_ids');
  return ids;
}

export const BERT: Family = {
  name: 'bert',
  matches: (t) => t === 'bert',
  architectures: ['BertForMaskedLM', 'BertModel'],
  load(dir, architecture, backend) {
    const mlm = architecture === 'BertForMaskedLM';
    const module = mlm ? BertForMaskedLM.fromPretrained(dir, { backend }) : BertModel.fromPretrained(dir, { backend });
    return {
      module,
      run(inputs, meta) {
        if (mlm && meta.loss_fn !== undefined && meta.loss_fn !== 'masked-LM cross-entropy') {
          throw new Error(`parity: loss_fn '${meta.loss_fn}' is not supported for BertForMaskedLM (supported: masked-LM cross-entropy)`);
        }
        const opts = {
          attentionMask: inputs.attention_mask ?? null,
          tokenTypeIds: inputs.token_type_ids ?? null,
          outputHiddenStates: true,
        };
        const outputs: Record<string, Tensor> = {};
        if (module.kind === 'masked-lm') {
          const out = module.forward(idsOf(inputs), { ...opts, labels: inputs.labels ?? null });
          outputs.logits = out.logits;
          if (out.loss) outputs.loss = out.loss;
          // BertForMaskedLM's HF output has no last_hidden_state: fixtures take hidden_states[-1].
          outputs.last_hidden_state = out.hiddenStates!.at(-1)!;
          out.hiddenStates!.forEach((h, i) => { outputs[`hidden_states.${i}`] = h; });
          return { outputs, loss: out.loss };
        }
        const out = module.forward(idsOf(inputs), opts);
        outputs.last_hidden_state = out.lastHiddenState;
        if (out.poolerOutput) outputs.pooler_output = out.poolerOutput;
        out.hiddenStates!.forEach((h, i) => { outputs[`hidden_states.${i}`] = h; });
        return { outputs, loss: null };
      },
      // Gradients of a BertModel keyed as a headed model's (bert.*) map onto the bare encoder.
      moduleKey: (name) => bertKeyFromHF(!mlm && name.startsWith('bert.') ? name.slice(5) : name),
      hfName: bertKeyToHF,
    };
  },
};
