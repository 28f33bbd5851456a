import { describe, expect, it } from 'vitest';
import { ConfigError } from '@lm/layers';
import { MegatronT5Config } from './megatron-config.js';
import { T5Config } from './config.js';

describe('T5Config derived fields (as in the reference __init__)', () => {
  it('gated-gelu means the tanh GELU, gated', () => {
    const c = T5Config.fromJSON({ feed_forward_proj: 'gated-gelu' });
    expect([c.denseActFn, c.isGatedAct]).toEqual(['gelu_new', true]);
  });
  it('gated-silu keeps its activation name', () => {
    const c = new T5Config({ feedForwardProj: 'gated-silu' });
    expect([c.denseActFn, c.isGatedAct]).toEqual(['silu', true]);
  });
  it('num_decoder_layers defaults to num_layers', () => {
    expect(new T5Config({ numLayers: 3 }).numDecoderLayers).toBe(3);
  });
  it('rejects a malformed feed_forward_proj with the reference message', () => {
    expect(() => new T5Config({ feedForwardProj: 'gated-gelu-x' })).toThrow(ConfigError);
    expect(() => new T5Config({ feedForwardProj: 'fancy-gelu' })).toThrow(/feed_forward_proj "fancy-gelu"/);
  });
  it('exposes the reference attribute aliases', () => {
    const c = new T5Config({ dModel: 32, numHeads: 4, numLayers: 2 });
    expect([c.hiddenSize, c.numAttentionHeads, c.numHiddenLayers]).toEqual([32, 4, 2]);
  });
});

describe('MegatronT5Config derived fields (as in TransformerConfig.__post_init__)', () => {
  it('fills ffn_hidden_size, kv_channels and num_query_groups', () => {
    const c = new MegatronT5Config({ hiddenSize: 32, numAttentionHeads: 4, numLayers: 2 });
    expect([c.ffnHiddenSize, c.kvChannels, c.numQueryGroups, c.encoderLayers]).toEqual([128, 8, 4, 2]);
  });
  it('keeps explicit values', () => {
    const c = MegatronT5Config.fromJSON({ hidden_size: 32, num_attention_heads: 4, kv_channels: 16, encoder_num_layers: 3 });
    expect([c.kvChannels, c.encoderLayers]).toEqual([16, 3]);
  });
});
