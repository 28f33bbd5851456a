import { afterAll, describe, expect, it } from 'vitest';
import { ShapeError, memory, scope, tensor } from '@lm/tensor-gpu';
import { testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';
import { FLOAT16_MIN, FLOAT32_MIN, causalMask, getExtendedAttentionMask, getHeadMask, invertAttentionMask, prefixLMMask } from './masks.js';
import { expectClose, testBackends } from './testing.js';

const backends = await testBackends();
afterAll(async () => (await testWebGPUBackend())?.destroy());

const M = FLOAT32_MIN;

describe.each(backends)('masks on %s', (_name, backend) => {
  it('getExtendedAttentionMask: 2-D [b, k] -> [b, 1, 1, k] additive with finfo(float32).min', async () => {
    const m = tensor([[1, 1, 0], [1, 0, 0]], { backend, dtype: 'int32' });
    const ext = getExtendedAttentionMask(m, [2, 3]);
    expect(ext.dtype).toBe('float32');
    await expectClose(ext, [0, 0, M, 0, M, M], 0, 0, [2, 1, 1, 3]);
    [m, ext].forEach((t) => t.dispose());
  });

  it('getExtendedAttentionMask: 3-D [b, q, k] -> [b, 1, q, k]; bool and float inputs', async () => {
    const m = tensor([[[true, false], [true, true]]], { backend });
    const ext = getExtendedAttentionMask(m, [1, 2]);
    await expectClose(ext, [0, M, 0, 0], 0, 0, [1, 1, 2, 2]);
    const f = tensor([[1, 0.5]], { backend });
    const extF = getExtendedAttentionMask(f, [1, 2]);
    await expectClose(extF, [0, 0.5 * M], 0, 1e-7, [1, 1, 1, 2]);
    [m, ext, f, extF].forEach((t) => t.dispose());
  });

  it('getExtendedAttentionMask(isDecoder): causal times padding, [b, 1, q, k]', async () => {
    const m = tensor([[1, 1, 1], [1, 1, 0]], { backend, dtype: 'int32' });
    const ext = getExtendedAttentionMask(m, [2, 3], { isDecoder: true });
    // prettier-ignore
    await expectClose(ext, [
      0, M, M,  0, 0, M,  0, 0, 0,
      0, M, M,  0, 0, M,  0, 0, M,
    ], 0, 0, [2, 1, 3, 3]);
    [m, ext].forEach((t) => t.dispose());
  });

  it('getExtendedAttentionMask(isDecoder) with cached positions: a block of ones before the causal part', async () => {
    // 3 cached positions + 2 new tokens: mask [1, 5], input [1, 2].
    const m = tensor([[0, 1, 1, 1, 1]], { backend, dtype: 'int32' });
    const ext = getExtendedAttentionMask(m, [1, 2], { isDecoder: true });
    // Query 0 (position 3) sees keys 0..3, query 1 sees 0..4; key 0 is padding.
    await expectClose(ext, [M, 0, 0, 0, M, M, 0, 0, 0, 0], 0, 0, [1, 1, 2, 5]);
    expect(() => getExtendedAttentionMask(m, [1, 6], { isDecoder: true })).toThrow(ShapeError);
    expect(() => getExtendedAttentionMask(tensor([1, 0], { backend }), [1, 2])).toThrow(/must be \[batch, keys\]/);
    [m, ext].forEach((t) => t.dispose());
  });

  it('invertAttentionMask: encoder masks for cross-attention', async () => {
    const m2 = tensor([[1, 0, 1]], { backend, dtype: 'int32' });
    const m3 = tensor([[[1, 0], [0, 1]]], { backend });
    await expectClose(invertAttentionMask(m2), [0, M, 0], 0, 0, [1, 1, 1, 3]);
    await expectClose(invertAttentionMask(m3), [0, M, M, 0], 0, 0, [1, 1, 2, 2]);
  });

  it('causalMask: keep / masked / additive, aligned for a cache', async () => {
    const keep = causalMask(2, 4, { backend });
    expect(keep.dtype).toBe('bool');
    expect(await keep.toArray()).toEqual([
      [true, true, true, false],
      [true, true, true, true],
    ]);
    const explicit = causalMask(2, 4, { backend, pastLength: 0, format: 'masked' });
    expect(await explicit.toArray()).toEqual([
      [false, true, true, true],
      [false, false, true, true],
    ]);
    const add = causalMask(3, 3, { backend, format: 'additive' });
    await expectClose(add, [0, M, M, 0, 0, M, 0, 0, 0], 0, 0, [3, 3]);
    [keep, explicit, add].forEach((t) => t.dispose());
  });

  it('prefixLMMask: bidirectional over the context, causal after (ChatGLM get_masks)', async () => {
    const masked = prefixLMMask([2, 0], 4, { backend, format: 'masked' });
    expect([...masked.shape]).toEqual([2, 1, 4, 4]);
    expect(await masked.toArray()).toEqual([
      [
        [
          [false, false, true, true],
          [false, false, true, true],
          [false, false, false, true],
          [false, false, false, false],
        ],
      ],
      [
        [
          [false, true, true, true],
          [false, false, true, true],
          [false, false, false, true],
          [false, false, false, false],
        ],
      ],
    ]);
    const keep = prefixLMMask([3], 3, { backend });
    expect(await keep.toArray()).toEqual([[[[true, true, true], [true, true, true], [true, true, true]]]]);
    const additive = prefixLMMask([1], 2, { backend, format: 'additive' });
    await expectClose(additive, [0, M, 0, 0], 0, 0, [1, 1, 2, 2]);
    [masked, keep, additive].forEach((t) => t.dispose());
  });

  it('getHeadMask: null, 1-D (every layer), 2-D (per layer), chunked', async () => {
    expect(getHeadMask(null, 3)).toEqual([null, null, null]);
    const h1 = tensor([1, 0, 0.5], { backend });
    const layers = getHeadMask(h1, 2);
    expect(layers).toHaveLength(2);
    for (const l of layers) await expectClose(l!, [1, 0, 0.5], 0, 0, [1, 3, 1, 1]);
    const h2 = tensor([[1, 0], [0.5, 1], [0, 0]], { backend });
    const per = getHeadMask(h2, 3);
    await expectClose(per[1]!, [0.5, 1], 0, 0, [1, 2, 1, 1]);
    await expectClose(per[2]!, [0, 0], 0, 0, [1, 2, 1, 1]);
    const chunked = getHeadMask(h1, 1, { isAttentionChunked: true });
    expect([...chunked[0]!.shape]).toEqual([1, 3, 1, 1, 1]);
    expect(() => getHeadMask(h2, 2)).toThrow(/has 3 layers, the model 2/);
    // Each returned handle is independent: disposing one leaves the others readable.
    layers[0]!.dispose();
    await expectClose(layers[1]!, [1, 0, 0.5]);
    [h1, layers[1]!, h2, ...per, ...chunked].forEach((t) => t?.dispose());
  });

  it('leaves no tensors behind', () => {
    const before = memory().tensors;
    scope(() => {
      const m = tensor([[1, 1, 0]], { backend, dtype: 'int32' });
      getExtendedAttentionMask(m, [1, 3], { isDecoder: true });
      causalMask(3, 5, { backend, format: 'additive' });
      prefixLMMask([1, 2], 3, { backend, format: 'masked' });
    });
    expect(memory().tensors).toBe(before);
  });
});

describe('masks: float16', () => {
  it('uses finfo(float16).min', async () => {
    const backend = testCpuBackend();
    const m = tensor([[1, 0]], { backend, dtype: 'int32' });
    const ext = getExtendedAttentionMask(m, [1, 2], { dtype: 'float16' });
    expect(ext.dtype).toBe('float16');
    await expectClose(ext, [0, FLOAT16_MIN], 0, 0);
    const add = causalMask(2, 2, { backend, format: 'additive', dtype: 'float16' });
    await expectClose(add, [0, FLOAT16_MIN, 0, 0], 0, 0);
  });
});
