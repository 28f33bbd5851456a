import { describe, expect, it } from 'vitest';
import { compareOutput, compareValue, fmtNum, toleranceFor, unravel, type CompareInput } from './compare.js';

const cmp = (actual: number[], expected: number[], over: Partial<CompareInput> = {}) =>
  compareOutput({
    name: 'out',
    actualShape: [actual.length],
    actual,
    expectedShape: [expected.length],
    expected,
    exact: false,
    tol: { atol: 1e-4, rtol: 1e-3 },
    ...over,
  });

describe('compareOutput', () => {
  it('passes abs(a - e) <= atol + rtol * abs(e), on the boundary too', () => {
    expect(cmp([100.1002], [100]).ok).toBe(false);
    expect(cmp([100.1], [100]).ok).toBe(true);
    expect(cmp([-100.1], [-100]).ok).toBe(true);
    expect(cmp([1e-4], [0]).ok).toBe(true);
    expect(cmp([1.1e-4], [0]).ok).toBe(false);
  });
  it('reports the max abs error and where', () => {
    const r = cmp([0, 0, 5, 0, 0, 1], [0, 0, 0, 0, 0, 0], { actualShape: [2, 3], expectedShape: [2, 3] });
    expect(r.ok).toBe(false);
    expect(r.maxAbs).toBe(5);
    expect(r.reason).toBe('2 of 6 values out of tolerance (atol 1.00e-4, rtol 0.001), max abs err 5 at [0, 2] (actual 5, expected 0)');
  });
  it('names the element furthest out of tolerance when it is not the largest abs error', () => {
    const r = cmp([1010, 0.01], [1000, 0]);
    expect(r.reason).toMatch(/max abs err 10 at \[0\] .*; furthest out of tolerance at \[1\] \(actual 0\.01, expected 0\)$/);
  });
  it('NaN matches NaN only; equal infinities match; opposite ones do not', () => {
    expect(cmp([NaN, Infinity, -Infinity], [NaN, Infinity, -Infinity]).ok).toBe(true);
    expect(cmp([NaN], [1]).ok).toBe(false);
    expect(cmp([1], [NaN]).ok).toBe(false);
    expect(cmp([Infinity], [-Infinity]).ok).toBe(false);
    expect(cmp([Infinity], [1], { tol: { atol: 1e30, rtol: 0 } }).maxAbs).toBe(Infinity);
  });
  it('exact comparison ignores the tolerance', () => {
    expect(cmp([3], [3], { exact: true, tol: { atol: 10, rtol: 10 } }).ok).toBe(true);
    expect(cmp([3], [4], { exact: true, tol: { atol: 10, rtol: 10 } }).reason).toMatch(/^1 of 1 values differ \(exact match required\)/);
  });
  it('shape must match, including rank and scalars', () => {
    expect(cmp([1], [1], { actualShape: [], expectedShape: [1] }).reason).toBe('shape [] != expected [1]');
    expect(cmp([1], [1], { actualShape: [], expectedShape: [] }).ok).toBe(true);
    expect(cmp([], [], { actualShape: [0, 3], expectedShape: [0, 3] })).toEqual({ name: 'out', ok: true, maxAbs: 0 });
  });
});

describe('helpers', () => {
  it('toleranceFor picks grad_* for grad.* (also step-prefixed) and falls back to atol/rtol', () => {
    const spec = { atol: 1, rtol: 2, grad_atol: 3, grad_rtol: 4 };
    expect(toleranceFor('logits', spec)).toEqual({ atol: 1, rtol: 2 });
    expect(toleranceFor('grad.bert.embeddings.word_embeddings.weight', spec)).toEqual({ atol: 3, rtol: 4 });
    expect(toleranceFor('step1.grad.w', spec)).toEqual({ atol: 3, rtol: 4 });
    expect(toleranceFor('gradient_norm', spec)).toEqual({ atol: 1, rtol: 2 });
    expect(toleranceFor('grad.w', { atol: 1, rtol: 2 })).toEqual({ atol: 1, rtol: 2 });
    // case.json output_tolerances overrides one output (chatglm-quant: exact integers, a 1e-5 matmul).
    const quant = { atol: 0, rtol: 0, output_tolerances: { output: { atol: 1e-5, rtol: 1e-5 } } };
    expect(toleranceFor('output', quant)).toEqual({ atol: 1e-5, rtol: 1e-5 });
    expect(toleranceFor('weight', quant)).toEqual({ atol: 0, rtol: 0 });
  });
  it('unravel and fmtNum', () => {
    expect(unravel(5, [2, 3])).toEqual([1, 2]);
    expect(unravel(0, [])).toEqual([]);
    expect([0, 1.5, 1e-7, 123456, NaN, -Infinity].map(fmtNum)).toEqual(['0', '1.5', '1.00e-7', '1.23e+5', 'NaN', '-inf']);
  });
});

describe('compareValue', () => {
  const tol = { atol: 1e-3, rtol: 0 };
  it('integers, strings and booleans exactly; other numbers within atol + rtol * |expected|', () => {
    expect(compareValue('v', { ids: [1, 2], s: 'a', b: true, x: 0.5004 }, { ids: [1, 2], s: 'a', b: true, x: 0.5 }, tol)).toEqual({ name: 'v', ok: true });
    expect(compareValue('v', { x: 0.502 }, { x: 0.5 }, tol).reason).toBe('v.x: 0.502 != expected 0.5');
    expect(compareValue('v', [3.0005], [3], tol).reason).toBe('v[0]: 3.0005 != expected 3');
  });
  it('names structure differences: list lengths, missing and unexpected keys, types', () => {
    expect(compareValue('v', [[1], 'a'], [[1, 2], ['a']], tol).reason).toBe('v[0]: 1 items != expected 2 (actual [1], expected [1,2]) (2 differences)');
    expect(compareValue('v', { a: 1, c: 2 }, { a: 1, b: 2 }, tol).reason).toBe('v: missing "b" (2 differences)');
    expect(compareValue('v', { a: null }, { a: 'x' }, tol).reason).toBe('v.a: null != expected "x"');
  });
});
