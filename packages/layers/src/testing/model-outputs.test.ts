import { describe, expect, it } from 'vitest';
import { tensor } from '@lm/tensor-gpu';
import { testCpuBackend } from '@lm/tensor-gpu/testing';
import { Linear } from '../nn/linear.js';
import { flattenOutputs, parameterGradients } from './model-outputs.js';

const backend = testCpuBackend();

describe('conformance output helpers', () => {
  it("flattenOutputs names nested outputs as the reference's tuples and snake_case fields", () => {
    const t = () => tensor([1], { backend });
    const out = new Map();
    flattenOutputs({ lastHiddenState: t(), pastKeyValues: [[t(), t()]], steps: [{ logits: t() }] }, '', out);
    expect([...out.keys()]).toEqual(['last_hidden_state', 'past_key_values.0.0', 'past_key_values.0.1', 'steps.0.logits']);
    for (const v of out.values()) v.dispose();
  });

  it('parameterGradients: the gradient where there is one, zeros for a frozen parameter, an error for an unknown name', async () => {
    const layer = new Linear(2, 1, { backend });
    layer.bias!.requiresGrad_(false);
    layer.forward(tensor([[1, 2]], { backend })).sum().backward();
    const out = new Map();
    parameterGradients(layer, ['grad.weight', 'grad.bias', 'logits'], out);
    expect(Array.from(await out.get('grad.weight').data())).toEqual([1, 2]);
    expect(Array.from(await out.get('grad.bias').data())).toEqual([0]);
    expect([...out.keys()]).toEqual(['grad.weight', 'grad.bias']);
    expect(() => parameterGradients(layer, ['grad.nope'], out)).toThrow(/no parameter 'nope'/);
    layer.dispose();
  });
});
