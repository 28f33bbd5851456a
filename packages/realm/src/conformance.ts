// The conformance runners of the realm family (../shared/fixtures; format in its README.md):
// - RealmTokenizer (../shared/fixtures/tokenizers-wordpiece, read its CASES.md): every call of the
//   BertTokenizer it extends, plus `batch_encode_candidates` for cases whose `inputs.text` holds rows
//   of candidate texts (with `inputs.text_pair` rows when given).
// - The model classes (../shared/fixtures/realm, read its CASES.md): a runner loads the case's weights,
//   turns case.json's snake_case inputs and kwargs into the forward options, runs the forward, computes
//   gradients of `loss` when `grad.*` outputs are asked for, and returns the outputs under the reference's
//   names (`reader_output.block_idx`, `retriever.concat_inputs.input_ids`, `grad.realm.embeddings.LayerNorm.weight`).
//   RealmForOpenQA's retriever is built from the case's block_records.json, vocab.txt and case.json `tokenizer`.

import type { Tensor} from '@lm/tensor-gpu';
import { noGrad, type Backend } from '@lm/tensor-gpu';
import {
  BERT_CALL_KWARGS,
  camelCase,
  caseInputTensor,
  flattenModelOutputs,
  parameterGradients,
  callOptions,
  numericOutputs,
  snakeKeys,
  TokenizerCaseError,
  wordPieceCaseRunner,
  wordPieceTokenizerForCase,
  type ConformanceCase,
  type ConformanceFamily,
  type ConformanceOutputs,
  type NestedNumbers,
} from '@lm/layers/testing';
import { RealmEmbedder, RealmForOpenQA, RealmKnowledgeAugEncoder, RealmReader, RealmScorer, type RealmPreTrainedModel } from './modeling.js';
import { RealmRetriever } from './retrieval.js';
import { RealmTokenizer, type CandidatesEncodeOptions } from './tokenizer.js';

const isRows = (v: unknown): v is string[][] => Array.isArray(v) && v.length > 0 && v.every((row) => Array.isArray(row) && row.every((s) => typeof s === 'string'));

/** `batch_encode_candidates(text, text_pair=None, **kwargs)`: padding is the method's own (max_length). */
function candidatesCase(tok: RealmTokenizer, c: ConformanceCase) {
  const inputs = c.spec.inputs ?? {};
  const textPair = inputs.text_pair;
  if (textPair !== undefined && !isRows(textPair)) throw new TokenizerCaseError('case.json inputs.text_pair: expected rows of candidate texts');
  // The method sets padding to max_length itself and pops return_tensors (the values are the same lists).
  const { padding: _forced, return_tensors: _tensors, ...kwargs } = c.spec.kwargs ?? {};
  const options = callOptions(kwargs, BERT_CALL_KWARGS, 'RealmTokenizer.batch_encode_candidates') as CandidatesEncodeOptions;
  const encoded = snakeKeys(tok.batchEncodeCandidates(inputs.text as string[][], { ...options, textPair: textPair ?? null }));
  return { outputs: numericOutputs(encoded), values: { expected_ids: encoded } };
}

/** Every other call: the BertTokenizer case runner, on a RealmTokenizer. */
const bertCalls = wordPieceCaseRunner(RealmTokenizer);

// ---- models ------------------------------------------------------------------------------------------

interface RunnableClass {
  fromPretrained(dir: string, options: { backend: Backend; modelOptions: Record<string, unknown> }): Promise<RealmPreTrainedModel>;
}
type Forward = (options: Record<string, unknown>) => object | Promise<object>;
const camel = camelCase;

/** Inputs that are float even when every value in case.json happens to be an integer. */
const FLOAT_INPUTS = new Set(['head_mask', 'inputs_embeds', 'candidate_inputs_embeds', 'relevance_score']);
/** Inputs that stay host lists (RealmForOpenQA's ragged answer ids). */
const HOST_INPUTS = new Set(['answer_ids']);

/** A case.json input as a tensor: int32 ids, masks, labels and positions (bools as 0/1); float32 for float inputs. */
function inputTensor(name: string, value: NestedNumbers, backend: Backend): Tensor {
  return caseInputTensor(value, backend, { float: FLOAT_INPUTS.has(name) });
}

/** The forward options: inputs (case.json and inputs.safetensors) and kwargs, camelCased. */
function forwardOptions(c: ConformanceCase, skipTensorInputs: ReadonlySet<string>): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  const all = { ...(c.spec.inputs ?? {}), ...(c.spec.kwargs ?? {}) };
  for (const [name, value] of Object.entries(all)) {
    if (name === 'return_dict') continue;
    const isData = Array.isArray(value) && !HOST_INPUTS.has(name);
    options[camel(name)] = isData ? inputTensor(name, value as NestedNumbers, c.backend) : value;
  }
  for (const [name, t] of c.tensorInputs) if (!skipTensorInputs.has(name)) options[camel(name)] = t;
  return options;
}

/** RealmForOpenQA's retriever for a case: block_records.json, the vocabulary, and case.json `tokenizer` options. */
function caseRetriever(c: ConformanceCase): Promise<RealmRetriever> {
  return RealmRetriever.fromPretrained(c.dir, { tokenizerConfig: (c.spec.tokenizer as Record<string, unknown> | undefined) ?? {} });
}

async function runCase(ModelClass: RunnableClass, c: ConformanceCase): Promise<ConformanceOutputs> {
  const modelOptions: Record<string, unknown> = Object.fromEntries(Object.entries(c.spec.init_kwargs ?? {}).map(([k, v]) => [camel(k), v]));
  const isOpenQA = (ModelClass as unknown) === RealmForOpenQA;
  if (isOpenQA) modelOptions.retriever = await caseRetriever(c);
  const model = await ModelClass.fromPretrained(c.dir, { backend: c.backend, modelOptions });
  try {
    model.eval();
    const wantGrads = c.spec.outputs.some((o) => o.startsWith('grad.'));
    // block_emb is a persistent buffer: the copy in inputs.safetensors replaces the loaded one.
    const blockEmb = isOpenQA ? c.tensorInputs.get('block_emb') : undefined;
    if (blockEmb) (model as RealmForOpenQA).setBlockEmb(blockEmb.clone());
    const forward = (model as unknown as { forward: Forward }).forward.bind(model);
    const options = forwardOptions(c, new Set(isOpenQA ? ['block_emb'] : []));
    const all = new Map<string, Tensor>();
    const outputs = (await (wantGrads ? forward(options) : noGrad(() => forward(options)))) as { loss?: Tensor };
    flattenModelOutputs(outputs, '', all);
    if (wantGrads) {
      if (!outputs.loss) throw new Error('conformance: grad.* outputs were requested but the model returned no loss');
      outputs.loss.backward();
      parameterGradients(model, c.spec.outputs, all);
    }
    const requested = new Set(c.spec.outputs);
    return new Map([...all].filter(([name]) => requested.has(name)));
  } finally {
    model.dispose();
  }
}

const runnerFor = (ModelClass: RunnableClass) => (c: ConformanceCase) => runCase(ModelClass, c);

export const conformance: ConformanceFamily = {
  family: 'realm',
  classes: {
    RealmTokenizer: async (c) => (isRows(c.spec.inputs?.text) ? candidatesCase(await wordPieceTokenizerForCase(RealmTokenizer, c), c) : bertCalls(c)),
    RealmEmbedder: runnerFor(RealmEmbedder),
    RealmScorer: runnerFor(RealmScorer),
    RealmKnowledgeAugEncoder: runnerFor(RealmKnowledgeAugEncoder),
    RealmReader: runnerFor(RealmReader),
    RealmForOpenQA: runnerFor(RealmForOpenQA),
  },
};
