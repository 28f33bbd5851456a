// The conformance runners for the chatglm parity fixtures (../shared/fixtures/chatglm, format in
// ../shared/fixtures/README.md and the family's CASES.md): one runner per reference class. A runner
// loads the case's weights, turns case.json's snake_case inputs and kwargs into forward options, runs
// the forward (or, for `max_new_tokens` cases, greedy generation driven the way transformers'
// generate() drives the reference: prepare_inputs_for_generation, forward, argmax,
// _update_model_kwargs_for_generation), computes gradients of `loss` when `grad.*` outputs are asked
// for, and returns the outputs under the reference's names (`hidden_states.1`, `past_key_values.0.1`,
// `steps.3.logits`, `grad.transformer.prefix_encoder.embedding.weight`).

import { join } from 'node:path';
import { openCheckpoint } from '@lm/dist-ckpt';
import { withoutInit } from '@lm/layers';
import { fromHost, noGrad, scope, Tensor, tensor, type Backend } from '@lm/tensor-gpu';
import { flattenModelOutputs, parameterGradients, type ConformanceCase, type ConformanceFamily, type HostOutput } from '@lm/layers/testing';
import { ChatGLMConfig } from './config.js';
import { ChatGLMForConditionalGeneration, ChatGLMModel, type ChatGLMPreTrainedModel } from './modeling.js';
import { greedySearch } from './generation.js';
import { QuantizedLinear, quantizeWeight } from './quantization.js';
import { tokenizerClasses } from './tokenizer-conformance.js';

interface RunnableClass {
  new (config: ChatGLMConfig, options: { backend: Backend }): ChatGLMPreTrainedModel;
  fromPretrained(dir: string, options: { backend: Backend; modelOptions: Record<string, unknown> }): Promise<ChatGLMPreTrainedModel>;
}

/**
 * The case's model: from its folder, or, when case.json names a `weights` file (the published
 * `pytorch_model.bin` of a quantized checkpoint), from that file alone.
 */
async function loadModel(ModelClass: RunnableClass, c: ConformanceCase): Promise<ChatGLMPreTrainedModel> {
  const modelOptions = Object.fromEntries(Object.entries(c.spec.init_kwargs ?? {}).map(([k, v]) => [camel(k), v]));
  const weights = c.spec.weights;
  if (typeof weights !== 'string') return ModelClass.fromPretrained(c.dir, { backend: c.backend, modelOptions });
  const config = ChatGLMConfig.fromJSON(c.config);
  const model = withoutInit(() => new ModelClass(config, { ...modelOptions, backend: c.backend }));
  const ckpt = await openCheckpoint(join(c.dir, weights));
  try {
    await model.loadWeights(ckpt, { strict: true, prefix: 'transformer' });
  } catch (e) {
    model.dispose();
    throw e;
  } finally {
    await ckpt.close();
  }
  return model.eval();
}
type Forward = (options: Record<string, unknown>) => object;

const camel = (s: string) => s.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase());

type Nested = number | boolean | Nested[];

/** A case.json input as a tensor: bool masks stay bool (true = masked), everything else is int32. */
function inputTensor(value: Nested, backend: Backend): Tensor {
  const flat = (v: Nested): (number | boolean)[] => (Array.isArray(v) ? v.flatMap(flat) : [v]);
  const isBool = flat(value).some((x) => typeof x === 'boolean');
  const toNumbers = (v: Nested): Nested => (Array.isArray(v) ? v.map(toNumbers) : Number(v));
  return tensor(toNumbers(value), { dtype: isBool ? 'bool' : 'int32', backend });
}

function forwardOptions(c: ConformanceCase, inputs: Record<string, unknown>, kwargs: Record<string, unknown>): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(inputs)) options[camel(name)] = inputTensor(value as Nested, c.backend);
  for (const [name, t] of c.tensorInputs) options[camel(name)] = t;
  for (const [name, value] of Object.entries(kwargs)) if (name !== 'return_dict') options[camel(name)] = value;
  return options;
}

async function runCase(ModelClass: RunnableClass, c: ConformanceCase): Promise<Map<string, Tensor | HostOutput>> {
  const model = await loadModel(ModelClass, c);
  try {
    model.eval();
    const requested = new Set(c.spec.outputs);
    const kwargs = c.spec.kwargs ?? {};

    if (typeof kwargs.max_new_tokens === 'number') {
      if (!(model instanceof ChatGLMForConditionalGeneration)) throw new Error(`conformance: ${c.spec.class} cannot generate`);
      const { max_new_tokens: maxNewTokens, steps: _steps, ...rest } = kwargs;
      const options = forwardOptions(c, c.spec.inputs ?? {}, rest);
      const result = await greedySearch(model, {
        inputIds: options.inputIds as Tensor,
        attentionMask: (options.attentionMask as Tensor | undefined) ?? null,
        positionIds: (options.positionIds as Tensor | undefined) ?? null,
        maxNewTokens: maxNewTokens as number,
        keepStepLogits: true,
      });
      const all = new Map<string, Tensor | HostOutput>();
      result.stepLogits!.forEach((t, i) => all.set(`steps.${i}.logits`, t));
      const flat = new Map<string, Tensor>();
      flattenModelOutputs({ pastKeyValues: result.pastKeyValues }, '', flat);
      for (const [k, v] of flat) all.set(k, v);
      const rows = result.sequences.length;
      all.set('sequences', { shape: [rows, result.sequences[0].length], data: result.sequences.flat() });
      all.set('generated_ids', { shape: [rows, result.generated[0].length], data: result.generated.flat() });
      for (const [name, v] of all) if (!requested.has(name) && v instanceof Tensor) v.dispose();
      return new Map([...all].filter(([name]) => requested.has(name)));
    }

    const wantGrads = c.spec.outputs.some((o) => o.startsWith('grad.'));
    const forward = (model as unknown as { forward: Forward }).forward.bind(model);
    const run = (): Map<string, Tensor> => {
      const all = new Map<string, Tensor>();
      const outputs = forward(forwardOptions(c, c.spec.inputs ?? {}, kwargs)) as { loss?: Tensor };
      flattenModelOutputs(outputs, '', all);
      if (wantGrads) {
        if (!outputs.loss) throw new Error('conformance: grad.* outputs were requested but the model returned no loss');
        outputs.loss.backward();
        parameterGradients(model, c.spec.outputs, all);
      }
      return new Map([...all].filter(([name]) => requested.has(name)));
    };
    return scope(() => (wantGrads ? run() : noGrad(run)));
  } finally {
    model.dispose();
  }
}

type ModelRunner = (c: ConformanceCase) => Promise<Map<string, Tensor | HostOutput>>;

/**
 * THUDM's QuantizedLinear built from the case's float Linear (model.safetensors `weight`, `bias`) with
 * init_kwargs as the reference's quantize() passes them (dtype float32: the CPU rule; float16: the GPU
 * rule), then: weight_scale, quantized_values (q before packing), weight (as stored), the CPU
 * extraction dequantized_weight, and forward(input).
 */
async function runQuantizedLinear(c: ConformanceCase): Promise<Map<string, Tensor | HostOutput>> {
  const k = c.spec.init_kwargs ?? {};
  const bits = Number(k.weight_bit_width);
  if (bits !== 4 && bits !== 8) throw new Error(`conformance: QuantizedLinear weight_bit_width must be 4 or 8, got ${String(k.weight_bit_width)}`);
  const [inFeatures, outFeatures] = [Number(k.in_features), Number(k.out_features)];
  const rounding = k.dtype === 'float16' || k.dtype === 'half' ? 'gpu' : 'cpu';
  const ckpt = await openCheckpoint(join(c.dir, typeof c.spec.weights === 'string' ? c.spec.weights : 'model.safetensors'));
  let weight: Float32Array;
  let bias: Float32Array | null = null;
  try {
    weight = (await ckpt.readTensor(k.weight_tensor === undefined ? 'weight' : String(k.weight_tensor), { as: 'float32' })).data;
    if (k.bias !== false && ckpt.has('bias')) bias = (await ckpt.readTensor('bias', { as: 'float32' })).data;
  } finally {
    await ckpt.close();
  }
  const q = quantizeWeight(weight, outFeatures, inFeatures, bits, rounding);
  const layer = QuantizedLinear.fromFloat(weight, bias, bits, inFeatures, outFeatures, { backend: c.backend, rounding });
  try {
    const out = new Map<string, Tensor | HostOutput>();
    const stored = await layer.storedWeight();
    out.set('weight', { shape: stored.shape, data: stored.data });
    out.set('quantized_values', { shape: [outFeatures, inFeatures], data: q.values });
    out.set('weight_scale', fromHost(Float32Array.from(await layer.weight_scale.data()), [outFeatures], 'float32', c.backend));
    out.set('dequantized_weight', layer.dequantizedWeight());
    const input = c.tensorInputs.get('input');
    if (input) out.set('output', noGrad(() => layer.forward(input)));
    return new Map([...out].filter(([name, v]) => {
      const keep = c.spec.outputs.includes(name);
      if (!keep && v instanceof Tensor) v.dispose();
      return keep;
    }));
  } finally {
    layer.dispose();
  }
}

function runnerFor(ModelClass: RunnableClass): ModelRunner {
  return (c) => runCase(ModelClass, c);
}

/** The chatglm family for the conformance runner. */
export const conformance: ConformanceFamily = {
  family: 'chatglm',
  classes: {
    ChatGLMModel: runnerFor(ChatGLMModel),
    ChatGLMForConditionalGeneration: runnerFor(ChatGLMForConditionalGeneration),
    QuantizedLinear: runQuantizedLinear,
    ...tokenizerClasses,
  },
};

