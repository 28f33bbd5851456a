// `node:fs` in the training worker: its `promises` over the memory file system; the synchronous and
// stream APIs are Node-only paths (config files, corpus folders) that the worker never takes.
import { promises } from './memfs.js';

function nodeOnly(name: string): never {
  throw new Error(`node:fs ${name} is not available in the browser (a Node-only code path was reached)`);
}

export { promises };
export const constants = { F_OK: 0, R_OK: 4, W_OK: 2, X_OK: 1 };
export const createReadStream = (): never => nodeOnly('createReadStream');
export const readFileSync = (): never => nodeOnly('readFileSync');
export const existsSync = (): never => nodeOnly('existsSync');
export default { promises, constants, createReadStream, readFileSync, existsSync };
