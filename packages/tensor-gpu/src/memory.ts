// Tensor lifetimes: explicit dispose(), scopes that free everything created inside them except what
// they return, and memory() for leak tests. Compute is synchronous, so a scope never spans an await.

import type { Backend, MemoryInfo } from './backend.js';
import type { Tensor } from './tensor.js';

const scopes: Set<Tensor>[] = [];
let liveTensors = 0;
const backendsSeen = new Set<Backend>();

/** Called by the Tensor constructor. */
export function trackTensor(t: Tensor): void {
  liveTensors++;
  backendsSeen.add(t.storage.backend);
  if (scopes.length > 0) scopes[scopes.length - 1].add(t);
}

/** Called by Tensor.dispose(). */
export function untrackTensor(t: Tensor): void {
  liveTensors--;
  for (let i = scopes.length - 1; i >= 0; i--) if (scopes[i].delete(t)) break;
}

/** Removes a tensor from every enclosing scope, so that scope exits leave it alive. Returns it. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

function collectTensors(value: unknown, out: Set<Tensor>, seen: Set<unknown>, isTensor: (v: unknown) => v is Tensor): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (isTensor(value)) {
    out.add(value);
    return;
  }
  if (Array.isArray(value)) for (const v of value) collectTensors(v, out, seen, isTensor);
  else if (value instanceof Map) for (const v of value.values()) collectTensors(v, out, seen, isTensor);
  else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectTensors(v, out, seen, isTensor);
  }
}

let tensorCheck: (v: unknown) => v is Tensor = (_v): _v is Tensor => false;
/** Set once by tensor.ts to break the import cycle. */
export function setTensorCheck(check: (v: unknown) => v is Tensor): void {
  tensorCheck = check;
}

/**
 * Runs `fn` and disposes every tensor created inside it, except tensors reachable from its result
 * (a tensor, array, Map or plain object of them), which move to the enclosing scope.
 * `fn` must be synchronous: scopes around async code free nothing useful.
 */
export function scope<T>(fn: () => T): T {
  const mine = new Set<Tensor>();
  scopes.push(mine);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    scopes.pop();
    for (const t of mine) t.dispose();
    throw e;
  }
  scopes.pop();
  if (result instanceof Promise) {
    for (const t of mine) t.dispose();
    throw new TypeError('scope: the callback returned a Promise; scopes must wrap synchronous code (compute is synchronous; only reads are async)');
  }
  const kept = new Set<Tensor>();
  collectTensors(result, kept, new Set(), tensorCheck);
  const parent = scopes.length > 0 ? scopes[scopes.length - 1] : null;
  for (const t of mine) {
    if (kept.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

export interface MemoryReport {
  /** Live (not disposed) tensor handles, views included. */
  tensors: number;
  /** Per backend: live storages, their bytes, and pooled bytes. */
  backends: Record<string, MemoryInfo & { adapter: string }>;
}

export function memory(): MemoryReport {
  const backends: MemoryReport['backends'] = {};
  for (const b of backendsSeen) backends[b.name] = { ...b.memory(), adapter: b.adapterInfo };
  return { tensors: liveTensors, backends };
}
