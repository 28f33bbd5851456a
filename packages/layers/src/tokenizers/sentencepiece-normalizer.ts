// SentencePiece's normalizer (google/sentencepiece src/normalizer.cc), on UTF-8 bytes as the C++ runs
// it: user-defined pieces pass through untouched, every other prefix is rewritten by the longest rule of
// the precompiled charsmap (a darts-clone double-array trie over the rules' UTF-8 keys, whose values
// point into a block of NUL-terminated replacement strings), then whitespace is trimmed / collapsed,
// the dummy prefix added and spaces escaped to U+2581.

import { TokenizerError } from './errors.js';
import type { NormalizerSpec } from './sentencepiece-model.js';

const SPACE = 0x20;
/** U+2581 LOWER ONE EIGHTH BLOCK, `▁`, in UTF-8. */
const SPACE_SYMBOL = [0xe2, 0x96, 0x81];
const REPLACEMENT = [0xef, 0xbf, 0xbd];

/** Bytes of the UTF-8 character starting with `lead` (sentencepiece's OneCharLen: by the top 4 bits). */
export function oneCharLen(lead: number): number {
  return [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4][lead >> 4];
}

/**
 * Length of the valid UTF-8 character at `pos`, or 0 when it is malformed (string_util::DecodeUTF8:
 * no overlongs, no surrogates, nothing above U+10FFFF, a truncated sequence is malformed).
 */
export function validCharLen(bytes: Uint8Array, pos: number, end = bytes.length): number {
  const b0 = bytes[pos];
  const len = end - pos;
  const trail = (i: number) => (bytes[pos + i] & 0xc0) === 0x80;
  if (b0 < 0x80) return 1;
  if (len >= 2 && (b0 & 0xe0) === 0xc0 && trail(1)) {
    const cp = ((b0 & 0x1f) << 6) | (bytes[pos + 1] & 0x3f);
    return cp >= 0x80 ? 2 : 0;
  }
  if (len >= 3 && (b0 & 0xf0) === 0xe0 && trail(1) && trail(2)) {
    const cp = ((b0 & 0x0f) << 12) | ((bytes[pos + 1] & 0x3f) << 6) | (bytes[pos + 2] & 0x3f);
    return cp >= 0x800 && (cp < 0xd800 || cp >= 0xe000) ? 3 : 0;
  }
  if (len >= 4 && (b0 & 0xf8) === 0xf0 && trail(1) && trail(2) && trail(3)) {
    const cp = ((b0 & 0x07) << 18) | ((bytes[pos + 1] & 0x3f) << 12) | ((bytes[pos + 2] & 0x3f) << 6) | (bytes[pos + 3] & 0x3f);
    return cp >= 0x10000 && cp <= 0x10ffff ? 4 : 0;
  }
  return 0;
}

/** A byte trie with longest-prefix and all-prefixes lookups (user-defined pieces, the Unigram vocabulary). */
export class BytesTrie<V> {
  private readonly root: TrieNode<V> = { next: new Map() };

  set(key: Uint8Array, value: V): void {
    let node = this.root;
    for (const b of key) {
      let child = node.next.get(b);
      if (!child) node.next.set(b, (child = { next: new Map() }));
      node = child;
    }
    node.value = value;
  }

  /** Every key that is a prefix of `bytes[pos..end)`, shortest first: (length in bytes, value). */
  *prefixes(bytes: Uint8Array, pos: number, end = bytes.length): Generator<[number, V]> {
    let node: TrieNode<V> | undefined = this.root;
    for (let i = pos; i < end; i++) {
      node = node.next.get(bytes[i]);
      if (!node) return;
      if (node.value !== undefined) yield [i + 1 - pos, node.value];
    }
  }

  /** Length of the longest key that is a prefix of `bytes[pos..)`, 0 if none. */
  longestPrefix(bytes: Uint8Array, pos: number, end = bytes.length): number {
    let longest = 0;
    for (const [len] of this.prefixes(bytes, pos, end)) longest = len;
    return longest;
  }
}

interface TrieNode<V> {
  next: Map<number, TrieNode<V>>;
  value?: V;
}

/** The precompiled charsmap: `<trie size: u32 LE><darts double array><NUL-terminated replacements>`. */
class CharsMap {
  private readonly units: Uint32Array;
  private readonly normalized: Uint8Array;

  constructor(blob: Uint8Array) {
    const broken = (why: string) => new TokenizerError(`SentencePiece normalizer: precompiled_charsmap is broken (${why})`);
    if (blob.length <= 4) throw broken(`${blob.length} bytes`);
    const view = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
    const trieSize = view.getUint32(0, true);
    if (trieSize >= blob.length || trieSize % 4 !== 0) throw broken(`trie size ${trieSize} for a blob of ${blob.length} bytes`);
    this.units = new Uint32Array(trieSize / 4);
    for (let i = 0; i < this.units.length; i++) this.units[i] = view.getUint32(4 + 4 * i, true);
    this.normalized = blob.subarray(4 + trieSize);
  }

  /**
   * darts-clone `commonPrefixSearch`, keeping the longest match: [length in bytes, replacement], or
   * null. A unit is `offset | has_leaf (bit 8) | label / value`; label() keeps bit 31 so that a leaf
   * never matches a key byte.
   */
  longest(bytes: Uint8Array, pos: number): [number, Uint8Array] | null {
    const u = this.units;
    const offset = (unit: number) => (unit >>> 10) << ((unit & (1 << 9)) >>> 6);
    let nodePos = offset(u[0]);
    let best: [number, number] | null = null;
    for (let i = pos; i < bytes.length; i++) {
      const c = bytes[i];
      nodePos ^= c;
      if (nodePos >= u.length) break;
      const unit = u[nodePos];
      if ((unit & 0x800000ff) >>> 0 !== c) break;
      nodePos ^= offset(unit);
      if ((unit >>> 8) & 1) {
        if (nodePos >= u.length) break;
        best = [i + 1 - pos, u[nodePos] & 0x7fffffff];
      }
    }
    if (!best) return null;
    const start = best[1];
    let end = start;
    while (end < this.normalized.length && this.normalized[end] !== 0) end++;
    return [best[0], this.normalized.subarray(start, end)];
  }
}

export class SentencePieceNormalizer {
  private readonly charsMap: CharsMap | null;

  constructor(
    readonly spec: NormalizerSpec,
    /** User-defined pieces: matched verbatim, never normalized. */
    private readonly userDefined: BytesTrie<unknown> | null,
    private readonly treatWhitespaceAsSuffix = false,
  ) {
    this.charsMap = spec.precompiledCharsmap.length > 0 ? new CharsMap(spec.precompiledCharsmap) : null;
  }

  /** Normalizer::NormalizePrefix: [normalized bytes, input bytes consumed]. */
  private normalizePrefix(input: Uint8Array, pos: number): [ArrayLike<number>, number] {
    if (this.userDefined) {
      const len = this.userDefined.longestPrefix(input, pos);
      if (len > 0) return [input.subarray(pos, pos + len), len];
    }
    const rule = this.charsMap?.longest(input, pos);
    if (rule) return [rule[1], rule[0]];
    const len = validCharLen(input, pos);
    // A malformed byte becomes U+FFFD and consumes one byte.
    if (len === 0) return [REPLACEMENT, 1];
    return [input.subarray(pos, pos + len), len];
  }

  /** Normalizer::Normalize on UTF-8 bytes. */
  normalizeBytes(input: Uint8Array): Uint8Array {
    const spec = this.spec;
    const out: number[] = [];
    let pos = 0;
    if (input.length === 0) return new Uint8Array(0);
    // Heading whitespace.
    if (spec.removeExtraWhitespaces) {
      while (pos < input.length) {
        const [norm, consumed] = this.normalizePrefix(input, pos);
        if (!(norm.length === 1 && norm[0] === SPACE)) break;
        pos += consumed;
      }
    }
    if (pos === input.length) return new Uint8Array(0);
    const addWhitespace = () => {
      if (spec.escapeWhitespaces) out.push(...SPACE_SYMBOL);
      else out.push(SPACE);
    };
    if (!this.treatWhitespaceAsSuffix && spec.addDummyPrefix) addWhitespace();
    let isPrevSpace = spec.removeExtraWhitespaces;
    while (pos < input.length) {
      const [norm, consumed] = this.normalizePrefix(input, pos);
      let start = 0;
      // Collapse: drop the leading spaces of this piece when the previous one ended with a space.
      while (isPrevSpace && start < norm.length && norm[start] === SPACE) start++;
      if (start < norm.length) {
        for (let n = start; n < norm.length; n++) {
          if (spec.escapeWhitespaces && norm[n] === SPACE) out.push(...SPACE_SYMBOL);
          else out.push(norm[n]);
        }
        isPrevSpace = norm[norm.length - 1] === SPACE;
      }
      pos += consumed;
      if (!spec.removeExtraWhitespaces) isPrevSpace = false;
    }
    // Trailing whitespace.
    if (spec.removeExtraWhitespaces) {
      const space = spec.escapeWhitespaces ? SPACE_SYMBOL : [SPACE];
      const endsWithSpace = () => out.length >= space.length && space.every((b, i) => out[out.length - space.length + i] === b);
      while (endsWithSpace()) out.length -= space.length;
    }
    if (this.treatWhitespaceAsSuffix && spec.addDummyPrefix) addWhitespace();
    return Uint8Array.from(out);
  }
}
