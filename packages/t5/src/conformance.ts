// The conformance runners for the T5 parity fixtures (../shared/fixtures/hf-t5 and megatron-t5, format in
// ../shared/fixtures/README.md): one runner per reference class. A runner loads the case's weights,
// turns case.json's snake_case inputs and kwargs into the model's forward options, runs the forward
// (every step of a cached-decoding case, feeding the named step's past_key_values along; the greedy loop
// of a generation case), computes gradients of `loss` when `grad.*` outputs are asked for, and returns
// the requested outputs under the reference's names (`encoder_hidden_states.1`,
// `steps.2.past_key_values.0.3`, `grad.shared.weight`, `scores.4`, `sequences`).

import { fromHost, noGrad, scope, type Backend, type Tensor } from '@lm/tensor-gpu';
import { camelCase, flattenModelOutputs, parameterGradients, type ConformanceCase, type ConformanceFamily, type ConformanceOutput } from '@lm/layers/testing';
import {
  T5EncoderModel,
  T5ForConditionalGeneration,
  T5ForQuestionAnswering,
  T5ForSequenceClassification,
  T5ForTokenClassification,
  T5Model,
  type T5PreTrainedModel,
} from './modeling.js';
import { inputTensor, type Nested } from './conformance-util.js';
import { megatronConformance } from './megatron-conformance.js';
import { tokenizerClasses } from './tokenizer-conformance.js';

/** What the runner needs from a model class: the loader and an options-object forward. */
interface RunnableClass {
  fromPretrained(dir: string, options: { backend: Backend; modelOptions: Record<string, unknown> }): Promise<T5PreTrainedModel>;
}
type Forward = (options: Record<string, unknown>) => object;

const camel = camelCase;

/** The forward options of one call: inputs and kwargs camelCased, inputs as tensors. */
function forwardOptions(c: ConformanceCase, inputs: Record<string, unknown>, kwargs: Record<string, unknown>): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(inputs)) options[camel(name)] = inputTensor(name, value as Nested, c.backend);
  for (const [name, t] of c.tensorInputs) options[camel(name)] = t;
  for (const [name, value] of Object.entries(kwargs)) if (name !== 'return_dict' && name !== 'steps') options[camel(name)] = value;
  return options;
}

interface Step {
  past_key_values?: string | null;
  [input: string]: unknown;
}

/**
 * Cached decoding (`kwargs.steps`): the encoder runs once on input_ids / attention_mask; each step
 * feeds its decoder ids with the past_key_values of the step it names; `full_logits` is one uncached
 * forward over `decoder_input_ids_all`.
 */
function runSteps(model: T5PreTrainedModel, c: ConformanceCase, steps: Step[], all: Map<string, Tensor>): void {
  if (!(model instanceof T5ForConditionalGeneration) && !(model instanceof T5Model)) throw new Error(`conformance: ${c.spec.class} has no decoder to run steps on`);
  const inputs = c.spec.inputs ?? {};
  const encoderInputs: Record<string, unknown> = {};
  for (const name of ['input_ids', 'attention_mask', 'inputs_embeds']) if (name in inputs) encoderInputs[name] = inputs[name];
  const encoderOptions = forwardOptions(c, encoderInputs, {});
  const encoderOutputs = model.encoder.forward(encoderOptions);
  all.set('encoder_last_hidden_state', encoderOutputs.lastHiddenState);
  const pasts = new Map<string, unknown>();
  steps.forEach((step, i) => {
    const { past_key_values: pastName, ...stepInputs } = step;
    const tensorInputs = Object.fromEntries(Object.entries(stepInputs).filter(([, v]) => Array.isArray(v)));
    const kwargs = Object.fromEntries(Object.entries(stepInputs).filter(([, v]) => !Array.isArray(v)));
    const options: Record<string, unknown> = { ...forwardOptions(c, tensorInputs, kwargs), encoderOutputs, attentionMask: encoderOptions.attentionMask };
    if (pastName) {
      if (!pasts.has(pastName)) throw new Error(`conformance: step ${i} names past_key_values '${pastName}', which no earlier step produced`);
      options.pastKeyValues = pasts.get(pastName);
    }
    const outputs = (model as unknown as { forward: Forward }).forward(options) as { pastKeyValues?: unknown };
    pasts.set(`steps.${i}.past_key_values`, outputs.pastKeyValues ?? null);
    flattenModelOutputs(outputs, `steps.${i}`, all);
  });
  if ('decoder_input_ids_all' in inputs) {
    const decoderInputIds = inputTensor('decoder_input_ids', inputs.decoder_input_ids_all as Nested, c.backend);
    const full = (model as unknown as { forward: Forward }).forward({ encoderOutputs, attentionMask: encoderOptions.attentionMask, decoderInputIds, useCache: false }) as { logits?: Tensor; lastHiddenState?: Tensor };
    const value = full.logits ?? full.lastHiddenState;
    if (value) all.set(full.logits ? 'full_logits' : 'full_last_hidden_state', value);
  }
}

/**
 * A generation case: `max_new_tokens` steps from `decoder_start_token_id`, greedy (argmax) or with the
 * case's decoding options; `sequences` (start token included) and `scores.<t>` (the step's scores).
 */
async function runGeneration(model: T5ForConditionalGeneration, c: ConformanceCase): Promise<Map<string, ConformanceOutput>> {
  const inputs = c.spec.inputs ?? {};
  const kwargs = c.spec.kwargs ?? {};
  const inputIds = inputTensor('input_ids', inputs.input_ids as Nested, c.backend);
  const attentionMask = 'attention_mask' in inputs ? inputTensor('attention_mask', inputs.attention_mask as Nested, c.backend) : null;
  const stopAtEos = kwargs.stop_at_eos !== false;
  const options: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(kwargs)) {
    if (['greedy', 'use_cache', 'stop_at_eos', 'return_dict_in_generate', 'output_scores'].includes(name)) continue;
    options[camel(name)] = value;
  }
  if (kwargs.greedy === true) options.doSample = false;
  try {
    const out = await model.generate(inputIds, { ...options, attentionMask, outputScores: true, ...(stopAtEos ? {} : { eosTokenId: [] }) });
    const result = new Map<string, ConformanceOutput>();
    const rows = out.sequences;
    result.set('sequences', { shape: [rows.length, rows[0].length], data: rows.flat() });
    const vocab = model.config.vocabSize;
    (out.scores ?? []).forEach((s, t) => result.set(`scores.${t}`, fromHost(s, [s.length / vocab, vocab], 'float32', c.backend)));
    return result;
  } finally {
    inputIds.dispose();
    attentionMask?.dispose();
  }
}

async function runCase(ModelClass: RunnableClass, c: ConformanceCase): Promise<Map<string, ConformanceOutput>> {
  const modelOptions = Object.fromEntries(Object.entries(c.spec.init_kwargs ?? {}).map(([k, v]) => [camel(k), v]));
  const model = await ModelClass.fromPretrained(c.dir, { backend: c.backend, modelOptions });
  try {
    model.eval();
    const requested = new Set(c.spec.outputs);
    const kwargs = c.spec.kwargs ?? {};
    if ('max_new_tokens' in kwargs) {
      if (!(model instanceof T5ForConditionalGeneration)) throw new Error(`conformance: ${c.spec.class} cannot generate`);
      const generated = await runGeneration(model, c);
      return new Map([...generated].filter(([name]) => requested.has(name)));
    }
    const wantGrads = c.spec.outputs.some((o) => o.startsWith('grad.'));
    const forward = (model as unknown as { forward: Forward }).forward.bind(model);
    const run = (): Map<string, Tensor> => {
      const all = new Map<string, Tensor>();
      if (Array.isArray(kwargs.steps)) runSteps(model, c, kwargs.steps as Step[], all);
      else {
        const outputs = forward(forwardOptions(c, c.spec.inputs ?? {}, kwargs)) as { loss?: Tensor };
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

/** A model runner: its outputs alone (no JSON expectations). */
type ModelRunner = (c: ConformanceCase) => Promise<Map<string, ConformanceOutput>>;

function runnerFor(ModelClass: RunnableClass): ModelRunner {
  return (c) => runCase(ModelClass, c);
}

/** The runners of the Hugging Face classes and Megatron-core's T5Model. */
export const modelRunners: Record<string, ModelRunner> = {
    T5Model: runnerFor(T5Model),
    T5ForConditionalGeneration: runnerFor(T5ForConditionalGeneration),
    T5EncoderModel: runnerFor(T5EncoderModel),
    T5ForSequenceClassification: runnerFor(T5ForSequenceClassification),
    T5ForTokenClassification: runnerFor(T5ForTokenClassification),
    T5ForQuestionAnswering: runnerFor(T5ForQuestionAnswering),
  ...megatronConformance,
};

/** The t5 family for the conformance runner: the models and T5Tokenizer. */
export const conformance: ConformanceFamily = { family: 't5', classes: { ...modelRunners, ...tokenizerClasses } };

