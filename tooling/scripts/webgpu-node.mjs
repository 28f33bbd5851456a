// Finds a WebGPU adapter in Node through Dawn (the `webgpu` npm package), the way WEBGPU.md describes:
// try the system's Vulkan drivers first; if Dawn finds no usable adapter, point the Vulkan loader at
// the SwiftShader driver that Debian's `chromium` package ships, and try again.
//
// Dawn segfaults if the GPU object from create() is garbage-collected while work is queued, so every
// GPU object made here is kept in `keepAlive` for the life of the process.

import { existsSync } from 'node:fs';
import { webgpuRequired } from '@lm/tensor-gpu/testing';

export const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** True when the caller (CI) wants WebGPU tests to fail rather than skip without an adapter (LM_REQUIRE_WEBGPU=1). */
export const requireWebGPU = webgpuRequired();

const keepAlive = [];

/**
 * @returns {Promise<{ adapter: GPUAdapter | null, gpu: GPU | null, icd: string | null, reason: string }>}
 */
export async function findNodeAdapter() {
  let webgpu;
  try {
    webgpu = await import('webgpu');
  } catch (err) {
    return { adapter: null, gpu: null, icd: null, reason: `cannot load the 'webgpu' package: ${err.message}` };
  }
  Object.assign(globalThis, webgpu.globals);

  const first = webgpu.create([]);
  keepAlive.push(first);
  const adapter = await first.requestAdapter();
  if (adapter) return { adapter, gpu: first, icd: process.env.VK_ICD_FILENAMES ?? null, reason: '' };

  if (!existsSync(SWIFTSHADER_ICD)) {
    return {
      adapter: null,
      gpu: null,
      icd: null,
      reason:
        `no Vulkan adapter, and no SwiftShader driver at ${SWIFTSHADER_ICD}; ` +
        'install it with: apt-get install -y chromium libvulkan1',
    };
  }
  process.env.VK_ICD_FILENAMES = SWIFTSHADER_ICD;
  const second = webgpu.create([]);
  keepAlive.push(second);
  const retry = await second.requestAdapter();
  if (retry) return { adapter: retry, gpu: second, icd: SWIFTSHADER_ICD, reason: '' };
  return {
    adapter: null,
    gpu: null,
    icd: SWIFTSHADER_ICD,
    reason: `Dawn found no adapter even with VK_ICD_FILENAMES=${SWIFTSHADER_ICD} (is libvulkan1 installed?)`,
  };
}

/** `vendor architecture (description)` from an adapter's info. */
export function describeAdapter(adapter) {
  const info = adapter.info ?? {};
  return [info.vendor, info.architecture, info.device, info.description].filter(Boolean).join(' ');
}
