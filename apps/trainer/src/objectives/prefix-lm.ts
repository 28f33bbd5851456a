// Prefix tuning of a frozen language model, as P-tuning v2 (Liu et al. 2022, "P-Tuning v2: Prompt
// Tuning Can Be Comparable to Fine-tuning Universally Across Scales and Tasks"; the reference is
// ChatGLM-6B's ptuning/ and its modeling_chatglm.py `PrefixEncoder` / `get_prompt`): a trainable
// prefix of preSeqLen key/value pairs is prepended to every layer's attention, and only the prefix
// encoder is trained. The base model's weights are frozen and held outside the module registry, so
// the optimizer, clipping, checkpoints and the export see the prefix encoder's parameters alone
// (`prefix_encoder.embedding.weight`, with prefixProjection also `prefix_encoder.trans.{0,2}.*`); the
// base model comes back from `model.fromPretrained`. The objective itself is causal LM on the
// prefixed model (same collator, loss and metrics, registered as `prefix-lm`).

import { Embedding, Linear, Module, PreTrainedModel, type PretrainedConfig, type Tokenizer } from '@lm/layers';
import { concat, full, type Backend, type Tensor } from '@lm/tensor-gpu';
import { ConfigError } from '../core/errors.js';
import { CausalLMObjective, type CausalLMModel } from './causal-lm.js';

/** A decoder that takes per-layer past keys/values ([batch, heads, past, headDim] each) and a mask over past + input. */
export interface PrefixableDecoder extends PreTrainedModel {
  forward(inputs: { inputIds: Tensor; attentionMask: Tensor; pastKeyValues: Tensor[][] | null; useCache: false }): { logits: Tensor };
}

export interface PrefixShape {
  numLayers: number;
  numHeads: number;
  headDim: number;
}

export interface PrefixSettings {
  /** Prefix length (ChatGLM's pre_seq_len). */
  preSeqLen: number;
  /** Reparameterize the prefix through a two-layer MLP (ChatGLM's prefix_projection). */
  prefixProjection: boolean;
  /** The MLP's width with prefixProjection (default: the model's hidden size). */
  prefixHiddenSize: number;
}

/** `objectives.prefix-lm` settings, checked, with ChatGLM's P-tuning defaults where it has them. */
export function prefixSettings(raw: Record<string, unknown>, hiddenSize: number): PrefixSettings {
  const known = ['preSeqLen', 'prefixProjection', 'prefixHiddenSize'];
  const issues = Object.keys(raw)
    .filter((k) => !known.includes(k))
    .map((k) => `objectives.prefix-lm.${k}: unknown field (known: ${known.join(', ')})`);
  const preSeqLen = raw.preSeqLen ?? 8;
  const prefixProjection = raw.prefixProjection ?? false;
  const prefixHiddenSize = raw.prefixHiddenSize ?? hiddenSize;
  if (!Number.isInteger(preSeqLen) || (preSeqLen as number) < 1) issues.push(`objectives.prefix-lm.preSeqLen: expected an integer >= 1, got ${JSON.stringify(preSeqLen)}`);
  if (typeof prefixProjection !== 'boolean') issues.push(`objectives.prefix-lm.prefixProjection: expected a boolean, got ${JSON.stringify(prefixProjection)}`);
  if (!Number.isInteger(prefixHiddenSize) || (prefixHiddenSize as number) < 1) issues.push(`objectives.prefix-lm.prefixHiddenSize: expected an integer >= 1, got ${JSON.stringify(prefixHiddenSize)}`);
  if (issues.length) throw new ConfigError(`invalid configuration:\n  ${issues.join('\n  ')}`, issues);
  return { preSeqLen: preSeqLen as number, prefixProjection: prefixProjection as boolean, prefixHiddenSize: prefixHiddenSize as number };
}

/** ChatGLM's `prefix_projection` MLP: Linear, tanh, Linear (keys `trans.0.*`, `trans.2.*` as its nn.Sequential). */
class PrefixProjection extends Module {
  declare '0': Linear;
  declare '2': Linear;

  constructor(hidden: number, inner: number, out: number, options: { backend?: Backend }) {
    super();
    this.registerModule('0', new Linear(hidden, inner, options));
    this.registerModule('2', new Linear(inner, out, options));
  }

  forward(x: Tensor): Tensor {
    return this[2].forward(this[0].forward(x).tanh());
  }
}

/** ChatGLM's `PrefixEncoder`: prefix position -> every layer's key and value, [preSeqLen, numLayers * 2 * hidden]. */
export class PrefixEncoder extends Module {
  declare embedding: Embedding;
  declare trans: PrefixProjection | null;

  constructor(shape: PrefixShape, settings: PrefixSettings, options: { backend?: Backend } = {}) {
    super();
    const hidden = shape.numHeads * shape.headDim;
    const out = shape.numLayers * 2 * hidden;
    this.registerModule('embedding', new Embedding(settings.preSeqLen, settings.prefixProjection ? hidden : out, options));
    this.registerModule('trans', settings.prefixProjection ? new PrefixProjection(hidden, settings.prefixHiddenSize, out, options) : null);
  }

  /** [preSeqLen, numLayers * 2 * hidden]: the embedding of prefix positions 0..preSeqLen-1 is its whole table. */
  forward(): Tensor {
    const table = this.embedding.weight;
    return this.trans ? this.trans.forward(table) : table;
  }
}

/**
 * A frozen decoder with a trainable prefix. Its registry holds only `prefix_encoder`; the base model
 * is a plain field (its parameters stop requiring gradients) that follows train/eval, casts and disposal.
 */
export class PrefixTunedModel<C extends PretrainedConfig> extends PreTrainedModel<C> implements CausalLMModel {
  declare prefix_encoder: PrefixEncoder;

  constructor(
    /** The config written with the export: the base model's, plus the prefix settings. */
    config: C,
    readonly base: PrefixableDecoder,
    readonly shape: PrefixShape,
    readonly settings: PrefixSettings,
    options: { backend?: Backend } = {},
  ) {
    super(config);
    for (const p of base.parameters()) p.requiresGrad_(false);
    this.registerModule('prefix_encoder', new PrefixEncoder(shape, settings, options));
  }

  /** Every layer's [key, value], each [batch, heads, preSeqLen, headDim] (`get_prompt`). */
  pastKeyValues(batch: number): Tensor[][] {
    const { numLayers, numHeads, headDim } = this.shape;
    const P = this.settings.preSeqLen;
    const past = this.prefix_encoder.forward().reshape(P, numLayers * 2, numHeads, headDim).permute(1, 2, 0, 3); // [layers * 2, heads, P, headDim]
    return Array.from({ length: numLayers }, (_, l) => [0, 1].map((kv) => past.select(0, 2 * l + kv).unsqueeze(0).expand(batch, numHeads, P, headDim))); // [batch, heads, P, headDim]
  }

  forward(inputs: { inputIds: Tensor; attentionMask: Tensor }): { logits: Tensor } {
    const batch = inputs.inputIds.shape[0];
    // Every input position also attends to the whole prefix.
    const prefixMask = full([batch, this.settings.preSeqLen], 1, { dtype: inputs.attentionMask.dtype, backend: inputs.attentionMask.backend });
    const attentionMask = concat([prefixMask, inputs.attentionMask], 1); // [batch, P + seq]
    return this.base.forward({ inputIds: inputs.inputIds, attentionMask, pastKeyValues: this.pastKeyValues(batch), useCache: false });
  }

  override train(mode = true): this {
    this.base.train(mode);
    return super.train(mode);
  }

  override cast(dtype: 'float32' | 'float16'): this {
    // The frozen model computes in the same dtype as the prefix (ChatGLM's P-tuning runs it in half precision).
    this.base.cast(dtype);
    return super.cast(dtype);
  }

  override dispose(): void {
    this.base.dispose();
    super.dispose();
  }

  getInputEmbeddings(): Embedding {
    return this.base.getInputEmbeddings();
  }

  setInputEmbeddings(embeddings: Embedding): void {
    this.base.setInputEmbeddings(embeddings);
  }
}

/** Causal LM through the prefixed model: the objective of a P-tuning v2 run. */
export class PrefixLMObjective extends CausalLMObjective {
  constructor(tokenizer: Tokenizer, options: { seqLength: number; backend?: Backend }) {
    super(tokenizer, { ...options, name: 'prefix-lm' });
  }
}
