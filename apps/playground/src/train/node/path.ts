// `node:path` in the training worker: POSIX paths over the memory file system (memfs.ts).
import { dirnameOf, normalize } from './memfs.js';

export const sep = '/';
export const isAbsolute = (p: string): boolean => p.startsWith('/');
export const join = (...parts: string[]): string => {
  const joined = parts.filter((p) => p !== '').join('/');
  const n = normalize(joined);
  return isAbsolute(joined) ? n : n.slice(1) || '.';
};
export const resolve = (...parts: string[]): string => {
  let out = '/';
  for (const p of parts) out = isAbsolute(p) ? p : `${out}/${p}`;
  return normalize(out);
};
export const dirname = (p: string): string => (isAbsolute(p) ? dirnameOf(p) : dirnameOf(`/${p}`).slice(1) || '.');
export const basename = (p: string, ext?: string): string => {
  const b = normalize(p).split('/').pop() ?? '';
  return ext && b.endsWith(ext) ? b.slice(0, -ext.length) : b;
};
export const extname = (p: string): string => {
  const b = basename(p);
  const i = b.lastIndexOf('.');
  return i > 0 ? b.slice(i) : '';
};
export const relative = (from: string, to: string): string => {
  const a = resolve(from).split('/').filter(Boolean);
  const b = resolve(to).split('/').filter(Boolean);
  let i = 0;
  while (i < a.length && i < b.length && a[i] === b[i]) i++;
  return [...a.slice(i).map(() => '..'), ...b.slice(i)].join('/');
};
export const posix = { sep, isAbsolute, join, resolve, dirname, basename, extname, relative };
export default posix;
