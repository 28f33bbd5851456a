// The conformance runners for the megatron-t5 parity fixtures: Megatron-core's T5Model (logits from the
// label-less call, lm_loss from the call with lm_labels, the masked-mean `loss` and its gradients, or the
// encoder output with output_encoder_hidden_only) and the module functions t5_extended_attention_mask and
// t5_position_ids. Masks arrive as nested bool lists ([b, 1, sq, sk], true = masked out).

import { noGrad, scope, type Tensor } from '@lm/tensor-gpu';
import { camelCase, flattenModelOutputs, parameterGradients, type ConformanceCase, type ConformanceOutput } from '@lm/layers/testing';
import { inputTensor, type Nested } from './conformance-util.js';
import { MegatronT5Model, t5ExtendedAttentionMask, t5PositionIds, type MegatronT5Inputs } from './megatron-modeling.js';

const PREFIX = 'megatron.core.models.T5.t5_model.';


const camel = camelCase;

/** The T5Model call's tensor inputs (case.json and inputs.safetensors), camelCased; loss_mask apart. */
function modelInputs(c: ConformanceCase): { inputs: MegatronT5Inputs; lossMask: Tensor | null } {
  const inputs: Record<string, unknown> = {};
  let lossMask: Tensor | null = null;
  for (const [name, value] of Object.entries(c.spec.inputs ?? {})) {
    const t = inputTensor(name, value as Nested, c.backend);
    if (name === 'loss_mask') lossMask = t.toFloat();
    else inputs[camel(name)] = t;
  }
  for (const [name, t] of c.tensorInputs) inputs[camel(name)] = t;
  if (c.spec.kwargs?.output_encoder_hidden_only === true) inputs.outputEncoderHiddenOnly = true;
  return { inputs: inputs as MegatronT5Inputs, lossMask };
}

async function runT5Model(c: ConformanceCase): Promise<Map<string, ConformanceOutput>> {
  const model = await MegatronT5Model.fromPretrained(c.dir, { backend: c.backend });
  try {
    model.eval();
    const requested = new Set(c.spec.outputs);
    const wantGrads = c.spec.outputs.some((o) => o.startsWith('grad.'));
    const run = (): Map<string, Tensor> => {
      const all = new Map<string, Tensor>();
      const { inputs, lossMask } = modelInputs(c);
      if (inputs.outputEncoderHiddenOnly) {
        flattenModelOutputs(model.forward(inputs), '', all);
      } else {
        // logits: the same call without labels; lm_loss: with them.
        if (requested.has('logits')) flattenModelOutputs(model.forward({ ...inputs, lmLabels: null }), '', all);
        if (inputs.lmLabels) {
          const { lmLoss } = model.forward(inputs);
          all.set('lm_loss', lmLoss!);
          if (lossMask) {
            const loss = MegatronT5Model.maskedLoss(lmLoss!, lossMask);
            all.set('loss', loss);
            if (wantGrads) {
              loss.backward();
              parameterGradients(model, c.spec.outputs, all);
            }
          } else if (wantGrads) throw new Error('conformance: grad.* outputs need loss_mask to form the loss');
        }
      }
      return new Map([...all].filter(([name]) => requested.has(name)));
    };
    return scope(() => (wantGrads ? run() : noGrad(run)));
  } finally {
    model.dispose();
  }
}

/** t5_extended_attention_mask on `kwargs.attention_mask_list` (input names, null for None entries). */
async function runExtendedAttentionMask(c: ConformanceCase): Promise<Map<string, ConformanceOutput>> {
  const inputs = c.spec.inputs ?? {};
  const list = (c.spec.kwargs?.attention_mask_list as (string | null)[] | undefined) ?? [];
  const masks = list.map((name) => (name === null ? null : inputTensor(name, inputs[name] as Nested, c.backend).ne(0)));
  const out = new Map<string, ConformanceOutput>();
  t5ExtendedAttentionMask(masks).forEach((m, i) => {
    if (m) out.set(`output.${i}`, m);
  });
  return out;
}

async function runPositionIds(c: ConformanceCase): Promise<Map<string, ConformanceOutput>> {
  const tokenIds = inputTensor('token_ids', (c.spec.inputs ?? {}).token_ids as Nested, c.backend);
  const positionIds = t5PositionIds(tokenIds);
  tokenIds.dispose();
  return new Map([['position_ids', positionIds]]);
}

/** The Megatron classes of the t5 family, under the fixtures' fully qualified names. */
export const megatronConformance = {
  [`${PREFIX}T5Model`]: runT5Model,
  [`${PREFIX}t5_extended_attention_mask`]: runExtendedAttentionMask,
  [`${PREFIX}t5_position_ids`]: runPositionIds,
};
