// The header's backend badge: WebGPU with its adapter, or the cpu backend with the reason it is used,
// and a link to switch (`?backend=cpu` / `?backend=webgpu`).
import { clear, h } from '../ui/dom.js';
import type { BackendInfo, BackendRequest } from '../worker/protocol.js';

export function readBackendRequest(search: string): BackendRequest {
  const value = new URLSearchParams(search).get('backend');
  return value === 'cpu' || value === 'webgpu' ? value : 'auto';
}

function switchLink(to: BackendRequest, text: string): HTMLAnchorElement {
  const url = new URL(location.href);
  if (to === 'auto') url.searchParams.delete('backend');
  else url.searchParams.set('backend', to);
  return h('a', { href: url.href }, text);
}

/** "webgpu: google swiftshader" -> "google swiftshader"; "cpu (wasm relaxed-simd, 2 threads)" -> "wasm relaxed-simd, 2 threads". */
function adapterText(info: BackendInfo): string {
  return info.adapterInfo.replace(/^webgpu:\s*/, '').replace(/^cpu \((.*)\)$/, '$1');
}

export function renderBackend(el: HTMLElement, info: BackendInfo): void {
  el.dataset.backend = info.name;
  if (info.name === 'webgpu') {
    clear(
      el,
      h('span', { class: 'pill webgpu', 'data-testid': 'backend-name' }, `WebGPU · ${adapterText(info)}`),
      h(
        'span',
        { class: 'why' },
        info.isSoftware ? 'a software adapter: correct, but slower than the CPU backend · ' : null,
        switchLink('cpu', 'run on the CPU instead'),
      ),
    );
  } else {
    clear(
      el,
      h('span', { class: 'pill cpu', 'data-testid': 'backend-name' }, `CPU · ${adapterText(info)}`),
      h('span', { class: 'why', 'data-testid': 'backend-reason' }, `CPU fallback: ${info.fallbackReason ?? 'unknown reason'}`, info.requested === 'cpu' ? h('span', null, ' · ', switchLink('auto', 'try WebGPU')) : null),
    );
  }
}

export function renderBackendError(el: HTMLElement, err: Error): void {
  el.dataset.backend = 'error';
  clear(el, h('span', { class: 'error' }, `the inference worker did not start: ${err.message}`));
}
