// Test-only helpers for the attention tests (not exported from the package): the backends to run on
// and a closeness check against host values.

import { expect } from 'vitest';
import { fromHost, type Backend, type Tensor } from '@lm/tensor-gpu';
import { compareArrays, seededRandom, testCpuBackend, testWebGPUBackend } from '@lm/tensor-gpu/testing';

/** cpu always; webgpu when an adapter exists (skipped only when testWebGPUBackend() returns null). */
export async function testBackends(): Promise<[string, Backend][]> {
  const webgpu = await testWebGPUBackend();
  return webgpu ? [['cpu', testCpuBackend()], ['webgpu', webgpu]] : [['cpu', testCpuBackend()]];
}

/** Asserts that a tensor matches host values (shape too, when given). */
export async function expectClose(actual: Tensor, expected: ArrayLike<number>, atol = 1e-5, rtol = 1e-5, shape?: readonly number[]): Promise<void> {
  if (shape) expect([...actual.shape]).toEqual([...shape]);
  const got = Array.from(await actual.data());
  const cmp = compareArrays(got, expected, atol, rtol);
  expect(cmp.ok, `max |diff| ${cmp.maxAbs} at ${cmp.at}: got ${got[cmp.at]}, expected ${expected[cmp.at]}`).toBe(true);
}

/** Asserts two tensors are close. */
export async function expectTensorsClose(actual: Tensor, expected: Tensor, atol = 1e-5, rtol = 1e-5): Promise<void> {
  expect([...actual.shape]).toEqual([...expected.shape]);
  await expectClose(actual, Array.from(await expected.data()), atol, rtol);
}

/** Seeded normal values as a float32 tensor. */
export function randomTensor(shape: readonly number[], seed: number, backend: Backend, scaleBy = 1): Tensor {
  const rnd = seededRandom(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const host = Float32Array.from({ length: n }, () => scaleBy * Math.sqrt(-2 * Math.log(1 - rnd())) * Math.cos(2 * Math.PI * rnd()));
  return fromHost(host, shape, 'float32', backend);
}
