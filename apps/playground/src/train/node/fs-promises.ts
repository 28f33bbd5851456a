// `node:fs/promises` in the training worker: the memory file system (memfs.ts).
import { promises } from './memfs.js';

export const { stat, access, mkdir, readdir, readFile, writeFile, rename, rm, open } = promises;
export default promises;
