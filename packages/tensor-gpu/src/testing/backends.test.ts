import { describe, expect, it } from 'vitest';
import { webgpuRequired } from './backends.js';

describe('webgpuRequired (LM_REQUIRE_WEBGPU)', () => {
  it('is required only for 1; unset, empty and 0 let WebGPU tests skip', () => {
    expect(webgpuRequired({ LM_REQUIRE_WEBGPU: '1' })).toBe(true);
    expect(webgpuRequired({})).toBe(false);
    expect(webgpuRequired({ LM_REQUIRE_WEBGPU: '' })).toBe(false);
    expect(webgpuRequired({ LM_REQUIRE_WEBGPU: '0' })).toBe(false);
  });

  it.each(['true', 'yes', 'TRUE', ' 1', 'on', '2'])('refuses %j instead of guessing', (value) => {
    expect(() => webgpuRequired({ LM_REQUIRE_WEBGPU: value })).toThrow(`LM_REQUIRE_WEBGPU=${JSON.stringify(value)}: use 1 to require WebGPU, or 0 / unset to let WebGPU tests skip`);
  });
});
