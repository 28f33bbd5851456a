// A checkpoint folder as one download: a POSIX ustar archive (no compression), which `tar xf` unpacks
// into the step-NNNNNNNN folder that `lm-train --resume <folder>` reads; and the reverse, so a
// checkpoint made in Node can be dropped on the page as a .tar.
import type { NamedBytes } from './protocol.js';

const BLOCK = 512;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

function field(header: Uint8Array, offset: number, length: number, text: string): void {
  const bytes = encoder.encode(text);
  if (bytes.length > length) throw new RangeError(`tar: "${text}" does not fit its ${length}-byte header field`);
  header.set(bytes, offset);
}

const octal = (n: number, width: number) => `${n.toString(8).padStart(width - 1, '0')}\0`;

/** `files` (paths relative to the archive root, folders implied) as a ustar archive. */
export function writeTar(files: readonly NamedBytes[], mtime = Math.floor(Date.now() / 1000)): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const f of files) {
    const header = new Uint8Array(BLOCK);
    const slash = f.name.lastIndexOf('/', 99);
    const [prefix, name] = f.name.length > 100 && slash > 0 ? [f.name.slice(0, slash), f.name.slice(slash + 1)] : ['', f.name];
    field(header, 0, 100, name);
    field(header, 100, 8, octal(0o644, 8));
    field(header, 108, 8, octal(0, 8));
    field(header, 116, 8, octal(0, 8));
    field(header, 124, 12, octal(f.bytes.length, 12));
    field(header, 136, 12, octal(mtime, 12));
    field(header, 148, 8, '        ');
    header[156] = '0'.charCodeAt(0);
    field(header, 257, 6, 'ustar\0');
    field(header, 263, 2, '00');
    field(header, 345, 155, prefix);
    const sum = header.reduce((a, b) => a + b, 0);
    field(header, 148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
    parts.push(header, f.bytes, new Uint8Array((BLOCK - (f.bytes.length % BLOCK)) % BLOCK));
  }
  parts.push(new Uint8Array(2 * BLOCK));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const text = (b: Uint8Array) => decoder.decode(b.subarray(0, b.indexOf(0) < 0 ? b.length : b.indexOf(0)));

/** The regular files of a ustar (or GNU / pax-free) archive; `name` names it in errors. */
export function readTar(bytes: Uint8Array, name: string): NamedBytes[] {
  const out: NamedBytes[] = [];
  let at = 0;
  while (at + BLOCK <= bytes.length) {
    const header = bytes.subarray(at, at + BLOCK);
    if (header.every((b) => b === 0)) break;
    const stored = parseInt(text(header.subarray(148, 156)).trim(), 8);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : header[i];
    if (stored !== sum) throw new Error(`${name}: not a tar archive (bad header checksum at byte ${at})`);
    const size = parseInt(text(header.subarray(124, 136)).trim() || '0', 8);
    const type = String.fromCharCode(header[156] || 48);
    const prefix = text(header.subarray(345, 500));
    const path = (prefix ? `${prefix}/` : '') + text(header.subarray(0, 100));
    at += BLOCK;
    if (at + size > bytes.length) throw new Error(`${name}: truncated (${path} runs past the end)`);
    if (type === '0') out.push({ name: path.replace(/^\.\//, ''), bytes: bytes.slice(at, at + size) });
    at += Math.ceil(size / BLOCK) * BLOCK;
  }
  return out;
}
