import { describe, expect, it } from 'vitest';
import { cpu, tensor } from '@lm/tensor-gpu';
import { Linear } from '../nn/linear.js';
import { camelCase, caseInputTensor, flattenModelOutputs, parameterGradients, snakeCase } from './model-cases.js';

const backend = cpu();

describe('model case helpers', () => {
  it('map names both ways', () => {
    expect(camelCase('past_buckets_states')).toBe('pastBucketsStates');
    expect(camelCase('head_mask_2')).toBe('headMask2');
    expect(snakeCase('lastHiddenState')).toBe('last_hidden_state');
  });

  it('read case inputs as int32 unless a value is fractional or float is asked for', async () => {
    const ids = caseInputTensor([[1, 2], [3, -100]], backend);
    expect(ids.dtype).toBe('int32');
    expect(Array.from(await ids.data())).toEqual([1, 2, 3, -100]);
    expect(caseInputTensor([0.5, 1], backend).dtype).toBe('float32');
    expect(caseInputTensor([1, 0], backend, { float: true }).dtype).toBe('float32');
  });

  it('flatten outputs to the reference names, skipping nulls', () => {
    const a = tensor([1], { backend });
    const b = tensor([2], { backend });
    const c = tensor([3], { backend });
    const names = [...flattenModelOutputs({ lastHiddenState: a, pastBucketsStates: [[null, b], [c, null]], attentions: null }, '').keys()];
    expect(names).toEqual(['last_hidden_state', 'past_buckets_states.0.1', 'past_buckets_states.1.0']);
    expect([...flattenModelOutputs([a], 'steps.2').keys()]).toEqual(['steps.2.0']);
  });

  it('read parameter gradients by name, zeros when none, and refuse an unknown name', async () => {
    const layer = new Linear(2, 1, { backend });
    const out = new Map();
    layer.forward(tensor([[1, 2]], { backend })).sum().backward();
    parameterGradients(layer, ['grad.weight', 'logits'], out);
    expect([...out.keys()]).toEqual(['grad.weight']);
    expect(Array.from(await out.get('grad.weight').data())).toEqual([1, 2]);
    layer.bias!.grad = null;
    parameterGradients(layer, ['grad.bias'], out);
    expect(Array.from(await out.get('grad.bias').data())).toEqual([0]);
    expect(() => parameterGradients(layer, ['grad.nope'], out)).toThrow(/no parameter 'nope'/);
  });
});
