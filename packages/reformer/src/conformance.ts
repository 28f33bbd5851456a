// The conformance runners for the reformer parity fixtures (../shared/fixtures/reformer, format in
// ../shared/fixtures/README.md and that folder's CASES.md): one runner per reference class. A runner loads
// the case's weights, injects the LSH rotations the reference drew (`rotations.<layer>`, or
// `steps.<k>.rotations.<layer>` per decoding step), turns case.json's snake_case inputs and kwargs into
// forward options, runs the forward (every step of a cached-decoding case, feeding the greedy token and
// `past_buckets_states` along), computes gradients of `loss` through the reversible backward when
// `grad.*` outputs are asked for (in training mode, as the reference requires), and returns the
// requested outputs under the reference's names.

import { noGrad, scope, Tensor, type Backend } from '@lm/tensor-gpu';
import { camelCase, caseInputTensor, flattenModelOutputs, parameterGradients, type ConformanceCase, type ConformanceFamily, type ConformanceOutput, type NestedNumbers } from '@lm/layers/testing';
import {
  ReformerForMaskedLM,
  ReformerForQuestionAnswering,
  ReformerForSequenceClassification,
  ReformerModel,
  ReformerModelWithLMHead,
  type ReformerPreTrainedModel,
} from './modeling.js';

interface RunnableClass {
  fromPretrained(dir: string, options: { backend: Backend }): Promise<ReformerPreTrainedModel>;
}
type Forward = (options: Record<string, unknown>) => Record<string, unknown>;

/** Kwargs that are not forward options. */
const NOT_OPTIONS = new Set(['return_dict', 'steps', 'past_buckets_states']);

function forwardOptions(c: ConformanceCase, inputs: Record<string, unknown>, kwargs: Record<string, unknown>): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(inputs)) options[camelCase(name)] = caseInputTensor(value as NestedNumbers, c.backend);
  for (const [name, value] of Object.entries(kwargs)) if (!NOT_OPTIONS.has(name) && !(name in inputs)) options[camelCase(name)] = value;
  if (c.spec.class === 'ReformerForSequenceClassification' && options.labels instanceof Tensor) {
    // Regression and multi-label targets are floats the JSON cannot tell from integers: the config decides.
    const config = c.config as { problem_type?: string | null; num_labels?: number };
    const labels = options.labels;
    const float = config.problem_type === 'regression' || config.problem_type === 'multi_label_classification' || (!config.problem_type && (labels.rank > 1 || config.num_labels === 1));
    if (float) options.labels = labels.toFloat();
  }
  return options;
}

/** Injects `<prefix>rotations.<layer>` for every LSH hashing call; a missing draw is an error naming it. */
function injectRotations(model: ReformerPreTrainedModel, c: ConformanceCase, prefix: () => string): void {
  model.setRotationSource((layer) => {
    const key = `${prefix()}rotations.${layer}`;
    const t = c.tensorInputs.get(key);
    if (!t) throw new Error(`conformance: layer ${layer} hashed, but the case has no injected rotations '${key}'`);
    return t;
  });
}

interface Step {
  input_ids?: NestedNumbers;
  use_cache?: boolean;
  past_buckets_states?: string;
  [k: string]: unknown;
}

async function runCase(ModelClass: RunnableClass, c: ConformanceCase): Promise<Map<string, ConformanceOutput>> {
  const model = await ModelClass.fromPretrained(c.dir, { backend: c.backend });
  try {
    const requested = new Set(c.spec.outputs);
    const wantGrads = c.spec.outputs.some((o) => o.startsWith('grad.'));
    // The reversible backward runs in training mode (the cases set every dropout to 0).
    if (wantGrads) model.train();
    else model.eval();
    const forward = (model as unknown as { forward: Forward }).forward.bind(model);
    const kwargs = c.spec.kwargs ?? {};
    const steps = kwargs.steps as Step[] | undefined;
    const all = new Map<string, ConformanceOutput>();

    if (steps) {
      // Cached decoding: step 0 is the prompt; each later step feeds the greedy token of the previous one.
      let stepIndex = 0;
      injectRotations(model, c, () => `steps.${stepIndex}.`);
      let previous: unknown = null;
      let nextIds: Tensor | null = null;
      const generated: number[][] = [];
      for (; stepIndex < steps.length; stepIndex++) {
        const step = steps[stepIndex];
        const { input_ids: ids, ...rest } = step;
        const out = scope(() =>
          noGrad(() => {
            const options = forwardOptions(c, stepIndex === 0 ? { input_ids: ids as NestedNumbers } : {}, rest);
            if (stepIndex > 0) options.inputIds = nextIds;
            if (step.past_buckets_states !== undefined && stepIndex > 0) options.pastBucketsStates = previous;
            const outputs = forward(options) as { logits: Tensor; pastBucketsStates?: unknown };
            const logits = outputs.logits;
            const last = logits.select(1, logits.shape[1] - 1).argmax(-1).reshape(-1, 1); // [batch, 1] greedy
            return { logits, past: outputs.pastBucketsStates ?? null, last };
          }),
        );
        if (previous) for (const t of cacheTensors(previous)) if (!cacheTensors(out.past).includes(t)) t.dispose();
        previous = out.past;
        all.set(`steps.${stepIndex}.logits`, out.logits);
        nextIds?.dispose();
        nextIds = out.last;
        if (stepIndex < steps.length - 1) {
          const values = Array.from(await out.last.data());
          generated.push(values);
        }
      }
      nextIds?.dispose();
      if (generated.length > 0) {
        const batch = generated[0].length;
        const data = Int32Array.from({ length: batch * generated.length }, (_, i) => generated[i % generated.length][Math.floor(i / generated.length)]);
        all.set('generated_ids', { shape: [batch, generated.length], data });
      }
      for (const [k, v] of flattenModelOutputs(previous, 'past_buckets_states')) all.set(k, v);
    } else {
      injectRotations(model, c, () => '');
      const run = (): Map<string, Tensor> => {
        const outputs = forward(forwardOptions(c, c.spec.inputs ?? {}, kwargs)) as { loss?: Tensor };
        const found = flattenModelOutputs(outputs, '');
        if (wantGrads) {
          if (!outputs.loss) throw new Error('conformance: grad.* outputs were requested but the model returned no loss');
          outputs.loss.backward();
          parameterGradients(model, c.spec.outputs, found);
        }
        return new Map([...found].filter(([name]) => requested.has(name)));
      };
      for (const [k, v] of scope(() => (wantGrads ? run() : noGrad(run)))) all.set(k, v);
    }
    for (const [k, v] of all) {
      if (!requested.has(k)) {
        if (v instanceof Tensor) v.dispose();
        all.delete(k);
      }
    }
    return all;
  } finally {
    model.dispose();
  }
}

function cacheTensors(value: unknown): Tensor[] {
  return [...flattenModelOutputs(value, 'c').values()];
}

type ModelRunner = (c: ConformanceCase) => Promise<Map<string, ConformanceOutput>>;

function runnerFor(ModelClass: RunnableClass): ModelRunner {
  return (c) => runCase(ModelClass, c);
}

/** The reformer family for the conformance runner: every reference class in the fixtures. */
export const conformance: { family: string; classes: Record<string, ModelRunner> } = {
  family: 'reformer',
  classes: {
    ReformerModel: runnerFor(ReformerModel),
    ReformerModelWithLMHead: runnerFor(ReformerModelWithLMHead),
    ReformerForMaskedLM: runnerFor(ReformerForMaskedLM),
    ReformerForSequenceClassification: runnerFor(ReformerForSequenceClassification),
    ReformerForQuestionAnswering: runnerFor(ReformerForQuestionAnswering),
  },
};

conformance satisfies ConformanceFamily;
