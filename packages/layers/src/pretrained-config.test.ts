import { describe, expect, it } from 'vitest';
import { ConfigError, PretrainedConfig, readConfigJSON, writeConfigJSON } from './pretrained-config.js';
import type { FieldTable } from './pretrained-config.js';

interface Tiny {
  hiddenSize: number;
  layerNormEps: number;
}
const TABLE: FieldTable<Tiny> = { hiddenSize: 'hidden_size', layerNormEps: 'layer_norm_eps' };

describe('readConfigJSON / writeConfigJSON', () => {
  it('maps snake_case to camelCase and keeps unknown keys', () => {
    const json = { hidden_size: 8, layer_norm_eps: 1e-5, model_type: 'x', something_new: [1, { a: 2 }] };
    const { fields, extra } = readConfigJSON(json, TABLE, ['model_type']);
    expect(fields).toEqual({ hiddenSize: 8, layerNormEps: 1e-5 });
    expect(extra).toEqual({ something_new: [1, { a: 2 }] });
    const back = writeConfigJSON({ hiddenSize: 8, layerNormEps: 1e-5 }, TABLE, extra, { model_type: 'x' });
    expect(back).toEqual(json);
    expect(Object.keys(back)[0]).toBe('model_type');
  });

  it('copies values so later edits do not leak between objects', () => {
    const json = { hidden_size: 8, list: [1, 2] };
    const { extra } = readConfigJSON(json, TABLE);
    (extra.list as number[]).push(3);
    expect(json.list).toEqual([1, 2]);
  });

  it('rejects non-objects with a named error', () => {
    expect(() => readConfigJSON([] as never, TABLE)).toThrow(ConfigError);
    expect(() => readConfigJSON(null as never, TABLE)).toThrow(/expected a JSON object/);
  });
});

describe('PretrainedConfig', () => {
  it('matches the Hugging Face PretrainedConfig defaults', () => {
    expect({ ...new PretrainedConfig() }).toEqual({
      architectures: null,
      torchDtype: null,
      isEncoderDecoder: false,
      isDecoder: false,
      addCrossAttention: false,
      tieWordEmbeddings: true,
      chunkSizeFeedForward: 0,
      outputHiddenStates: false,
      outputAttentions: false,
      id2label: { 0: 'LABEL_0', 1: 'LABEL_1' },
      label2id: { LABEL_0: 0, LABEL_1: 1 },
      numLabels: 2,
      problemType: null,
      padTokenId: null,
      bosTokenId: null,
      eosTokenId: null,
      decoderStartTokenId: null,
      extra: {},
    });
  });

  it('builds labels from numLabels', () => {
    const d = new PretrainedConfig({ numLabels: 3 });
    expect(d.id2label).toEqual({ 0: 'LABEL_0', 1: 'LABEL_1', 2: 'LABEL_2' });
    expect(d.numLabels).toBe(3);
  });
});
