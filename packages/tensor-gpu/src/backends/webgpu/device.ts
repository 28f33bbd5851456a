// Adapter discovery and device creation. In browsers we use `navigator.gpu`; in Node we load Dawn's
// bindings (`webgpu` npm package). With no hardware adapter in Node we point Vulkan at SwiftShader
// (shipped by Debian's chromium package) and try again, so users never have to set env vars.

import { BackendError } from '../../errors.js';

/** Known locations of the SwiftShader Vulkan ICD (chromium / chrome packages). */
export const SWIFTSHADER_ICDS = [
  '/usr/lib/chromium/vk_swiftshader_icd.json',
  '/usr/lib64/chromium/vk_swiftshader_icd.json',
  '/usr/lib/chromium-browser/vk_swiftshader_icd.json',
  '/usr/lib64/chromium-browser/vk_swiftshader_icd.json',
  '/opt/google/chrome/vk_swiftshader_icd.json',
];

const NO_ADAPTER_HELP =
  "webgpu: no usable WebGPU adapter. In Node on a machine without a GPU, install Debian's `chromium` and " +
  "`libvulkan1` packages (SwiftShader's Vulkan driver is then found automatically) or a GPU driver; " +
  "or use the 'cpu' backend.";

// Strong references to every GPU object made by Dawn's create(): Dawn segfaults if one is garbage-collected
// while a device made from it still has work queued. They live for the life of the process.
const liveGpus: GPU[] = [];

const isNode = typeof process !== 'undefined' && !!process.versions?.node;

interface DawnModule {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

let dawn: DawnModule | null = null;

async function loadDawn(): Promise<DawnModule> {
  if (dawn) return dawn;
  const spec = 'webgpu';
  let mod: DawnModule;
  try {
    mod = (await import(/* @vite-ignore */ spec)) as DawnModule;
  } catch (e) {
    throw new BackendError(`${NO_ADAPTER_HELP} (loading the 'webgpu' npm package failed: ${(e as Error).message})`);
  }
  Object.assign(globalThis, mod.globals);
  dawn = mod;
  return mod;
}

async function swiftShaderIcd(): Promise<string | null> {
  const spec = 'node:fs'; // kept out of bundlers' static analysis: browsers never reach this
  const fs = (await import(/* @vite-ignore */ spec)) as { existsSync(path: string): boolean };
  for (const p of SWIFTSHADER_ICDS) if (fs.existsSync(p)) return p;
  return null;
}

/** The Dawn instance adapters come from (one per process; a second only after switching to SwiftShader). */
let nodeGpu: GPU | null = null;

function newDawnGpu(mod: DawnModule): GPU {
  nodeGpu = mod.create([]);
  liveGpus.push(nodeGpu);
  return nodeGpu;
}

async function nodeAdapter(powerPreference?: GPUPowerPreference): Promise<GPUAdapter | null> {
  const mod = await loadDawn();
  const adapter = await (nodeGpu ?? newDawnGpu(mod)).requestAdapter({ powerPreference });
  if (adapter) return adapter;
  if (process.env.VK_ICD_FILENAMES) return null;
  const icd = await swiftShaderIcd();
  if (!icd) return null;
  process.env.VK_ICD_FILENAMES = icd;
  return newDawnGpu(mod).requestAdapter({ powerPreference });
}

/** Whether the GPU object adapters come from (`navigator.gpu`, or Dawn's in Node) has WGSL language feature `name`. */
export function hasWgslFeature(name: string): boolean {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  const gpu = nav?.gpu ?? nodeGpu;
  return !!(gpu as { wgslLanguageFeatures?: ReadonlySet<string> } | null)?.wgslLanguageFeatures?.has(name);
}

/** Finds an adapter: `navigator.gpu` in browsers, Dawn (then Dawn on SwiftShader) in Node. */
export async function findAdapter(powerPreference?: GPUPowerPreference): Promise<GPUAdapter> {
  let adapter: GPUAdapter | null = null;
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) adapter = await nav.gpu.requestAdapter({ powerPreference });
  if (!adapter && isNode) adapter = await nodeAdapter(powerPreference);
  if (!adapter) throw new BackendError(NO_ADAPTER_HELP);
  return adapter;
}

export function isSoftwareAdapter(adapter: GPUAdapter): boolean {
  const info = adapter.info;
  const arch = (info?.architecture ?? '').toLowerCase();
  const desc = `${info?.description ?? ''} ${info?.device ?? ''}`.toLowerCase();
  const fallback =
    (adapter as { isFallbackAdapter?: boolean }).isFallbackAdapter === true ||
    (info as { isFallbackAdapter?: boolean } | undefined)?.isFallbackAdapter === true;
  return fallback || arch === 'swiftshader' || desc.includes('swiftshader') || desc.includes('llvmpipe') || desc.includes('lavapipe');
}

export function describeAdapter(adapter: GPUAdapter): string {
  const info = adapter.info;
  const parts = [info?.vendor, info?.architecture].filter((s) => !!s).join(' ') || 'unknown adapter';
  // The device name (e.g. the GPU model) where the driver reports one besides its description.
  const names = [info?.device, info?.description].filter((s, i, all) => !!s && all.indexOf(s) === i);
  const desc = names.length ? ` (${names.join(', ')})` : '';
  return `webgpu: ${parts}${desc}`;
}

export interface DeviceOptions {
  /** Lower some limits below the adapter's (tests use this to exercise limit errors). */
  limits?: Partial<Record<'maxStorageBufferBindingSize' | 'maxBufferSize', number>>;
}

/** Requests a device with the adapter's large-buffer / workgroup limits, and shader-f16 and subgroups when present. */
export async function requestDevice(adapter: GPUAdapter, opts: DeviceOptions = {}): Promise<GPUDevice> {
  const l = adapter.limits;
  const requiredLimits: Record<string, number> = {
    maxStorageBufferBindingSize: Math.min(l.maxStorageBufferBindingSize, opts.limits?.maxStorageBufferBindingSize ?? Infinity),
    maxBufferSize: Math.min(l.maxBufferSize, opts.limits?.maxBufferSize ?? Infinity),
    maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
    maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
    maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
    maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
  };
  const requiredFeatures: GPUFeatureName[] = [];
  if (adapter.features.has('shader-f16')) requiredFeatures.push('shader-f16');
  if (adapter.features.has('subgroups' as GPUFeatureName)) requiredFeatures.push('subgroups' as GPUFeatureName);
  try {
    return await adapter.requestDevice({ requiredLimits, requiredFeatures });
  } catch (e) {
    throw new BackendError(`webgpu: requestDevice failed on ${describeAdapter(adapter)}: ${(e as Error).message}`);
  }
}
