// The conformance runners for the megatron-bert parity fixtures (../shared/fixtures/megatron-bert, format
// in ../shared/fixtures/README.md): one runner per reference class. A runner loads the case's weights,
// turns case.json's snake_case inputs and kwargs into the model's forward options, runs the forward
// (every step of a multi-step case, feeding `past_key_values: "previous"` along), computes gradients of
// `loss` when `grad.*` outputs are asked for, and returns the requested outputs under the reference's
// names (`hidden_states.1`, `step2.past_key_values.0.1`, `grad.bert.embeddings.word_embeddings.weight`).

import { noGrad, scope, Tensor, type Backend } from '@lm/tensor-gpu';
import { camelCase, caseInputTensor, flattenModelOutputs, parameterGradients, type ConformanceCase, type ConformanceFamily, type NestedNumbers } from '@lm/layers/testing';
import type { MegatronBertConfig } from './config.js';
import {
  MegatronBertForCausalLM,
  MegatronBertForMaskedLM,
  MegatronBertForMultipleChoice,
  MegatronBertForNextSentencePrediction,
  MegatronBertForPreTraining,
  MegatronBertForQuestionAnswering,
  MegatronBertForSequenceClassification,
  MegatronBertForTokenClassification,
  MegatronBertModel,
  type MegatronBertPreTrainedModel,
} from './modeling.js';

/** What the runner needs from a model class: the loader and an options-object forward. */
interface RunnableClass {
  fromPretrained(dir: string, options: { backend: Backend; modelOptions: Record<string, unknown> }): Promise<MegatronBertPreTrainedModel>;
}
type Forward = (options: Record<string, unknown>) => object;

const camel = camelCase;

/** Inputs that are float even when every value in case.json happens to be an integer. */
const FLOAT_INPUTS = new Set(['head_mask', 'inputs_embeds', 'encoder_hidden_states']);

/** A case.json input as a tensor: int32 ids, masks, labels and positions; float32 for float inputs. */
function inputTensor(name: string, value: NestedNumbers, backend: Backend): Tensor {
  return caseInputTensor(value, backend, { float: FLOAT_INPUTS.has(name) });
}

/**
 * Sequence-classification labels the reference would have held as floats: regression (numLabels 1 or
 * problem_type "regression") and multi-label targets ([batch, numLabels], or problem_type
 * "multi_label_classification"). JSON cannot tell 1.0 from 1, so the shape and config decide.
 */
function classificationLabels(labels: Tensor, config: MegatronBertConfig): Tensor {
  if (labels.dtype !== 'int32') return labels;
  const problem = config.problemType;
  const float = problem === 'regression' || problem === 'multi_label_classification' || (problem === null && (config.numLabels === 1 || labels.rank > 1));
  return float ? labels.toFloat() : labels;
}

/** The forward options of one call: inputs (case.json and inputs.safetensors) and kwargs, camelCased. */
function forwardOptions(c: ConformanceCase, config: MegatronBertConfig, inputs: Record<string, unknown>, kwargs: Record<string, unknown>, tensorInputs: ReadonlyMap<string, Tensor>): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(inputs)) options[camel(name)] = inputTensor(name, value as NestedNumbers, c.backend);
  for (const [name, t] of tensorInputs) options[camel(name)] = t;
  for (const [name, value] of Object.entries(kwargs)) if (name !== 'return_dict' && name !== 'steps') options[camel(name)] = value;
  if (c.spec.class === 'MegatronBertForSequenceClassification' && options.labels instanceof Tensor) {
    options.labels = classificationLabels(options.labels, config);
  }
  return options;
}

async function runCase(ModelClass: RunnableClass, c: ConformanceCase): Promise<Map<string, Tensor>> {
  const modelOptions = Object.fromEntries(Object.entries(c.spec.init_kwargs ?? {}).map(([k, v]) => [camel(k), v]));
  const model = await ModelClass.fromPretrained(c.dir, { backend: c.backend, modelOptions });
  try {
    model.eval();
    const config = model.config;
    const requested = new Set(c.spec.outputs);
    const wantGrads = c.spec.outputs.some((o) => o.startsWith('grad.'));
    const forward = (model as unknown as { forward: Forward }).forward.bind(model);
    const kwargs = c.spec.kwargs ?? {};
    const steps = kwargs.steps as { inputs?: Record<string, unknown>; kwargs?: Record<string, unknown>; past_key_values?: string }[] | undefined;

    const run = (): Map<string, Tensor> => {
      const all = new Map<string, Tensor>();
      if (steps) {
        let previous: unknown = null;
        steps.forEach((step, i) => {
          // Tensor inputs of the case (e.g. encoder_hidden_states) go to every step; a step's own inputs win.
          const shared = new Map([...c.tensorInputs].filter(([name]) => !(name in (step.inputs ?? {}))));
          const options = forwardOptions(c, config, step.inputs ?? {}, step.kwargs ?? {}, shared);
          if (step.past_key_values === 'previous') options.pastKeyValues = previous;
          const outputs = forward(options) as { pastKeyValues?: unknown };
          previous = outputs.pastKeyValues ?? null;
          flattenModelOutputs(outputs, `step${i}`, all);
        });
      } else {
        const outputs = forward(forwardOptions(c, config, c.spec.inputs ?? {}, kwargs, c.tensorInputs)) as { loss?: Tensor };
        flattenModelOutputs(outputs, '', all);
        if (wantGrads) {
          if (!outputs.loss) throw new Error('conformance: grad.* outputs were requested but the model returned no loss');
          outputs.loss.backward();
          parameterGradients(model, c.spec.outputs, all);
        }
      }
      return new Map([...all].filter(([name]) => requested.has(name)));
    };
    return scope(() => (wantGrads ? run() : noGrad(run)));
  } finally {
    model.dispose();
  }
}

/** A model runner: its outputs alone (no JSON expectations), as a Map of tensors. */
type ModelRunner = (c: ConformanceCase) => Promise<Map<string, Tensor>>;

function runnerFor(ModelClass: RunnableClass): ModelRunner {
  return (c) => runCase(ModelClass, c);
}

/** The megatron-bert family for the conformance runner: every reference class in the fixtures. */
export const conformance: { family: string; classes: Record<string, ModelRunner> } = {
  family: 'megatron-bert',
  classes: {
    MegatronBertModel: runnerFor(MegatronBertModel),
    MegatronBertForPreTraining: runnerFor(MegatronBertForPreTraining),
    MegatronBertForCausalLM: runnerFor(MegatronBertForCausalLM),
    MegatronBertForMaskedLM: runnerFor(MegatronBertForMaskedLM),
    MegatronBertForNextSentencePrediction: runnerFor(MegatronBertForNextSentencePrediction),
    MegatronBertForSequenceClassification: runnerFor(MegatronBertForSequenceClassification),
    MegatronBertForMultipleChoice: runnerFor(MegatronBertForMultipleChoice),
    MegatronBertForTokenClassification: runnerFor(MegatronBertForTokenClassification),
    MegatronBertForQuestionAnswering: runnerFor(MegatronBertForQuestionAnswering),
  },
};

// A family of model runners is a ConformanceFamily (a Map of tensors is a valid result).
conformance satisfies ConformanceFamily;
