// SentencePiece (Kudo & Richardson 2018, https://arxiv.org/abs/1808.06226), written to the C++
// library's behaviour (google/sentencepiece: sentencepiece_processor.cc, unigram_model.cc,
// bpe_model.cc, model_interface.cc): the same normalization (sentencepiece-normalizer.ts), the same
// Unigram Viterbi (float32 path scores, user-defined pieces with their length bonus, one unknown node
// per character) and BPE merge order (best score first, leftmost on ties), the same unknown and byte
// fallback handling, and the same decoding. `SentencePieceProcessor` mirrors the Python binding's
// `encode` / `decode` / `id_to_piece` / `piece_to_id`; T5's and ChatGLM's tokenizers build on it.
// Browser-safe: the model comes in as bytes.

import { TokenizerError } from './errors.js';
import { parseSentencePieceModel, PieceType } from './sentencepiece-model.js';
import type { SentencePieceModelProto, SentencePiecePiece } from './sentencepiece-model.js';
import { BytesTrie, oneCharLen, SentencePieceNormalizer, validCharLen } from './sentencepiece-normalizer.js';

/** `▁` (U+2581): how SentencePiece writes a space inside pieces. */
export const SPIECE_UNDERLINE = '\u2581';

/** Unigram: the score of an unknown character is the lowest piece score minus this (unigram_model.h kUnkPenalty). */
const UNK_PENALTY = 10;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export interface SentencePieceOptions {
  /** Names the file in errors. */
  fileName?: string;
  /** Override normalizer_spec.add_dummy_prefix (T5's legacy=False loads the model with it off). */
  addDummyPrefix?: boolean;
}

/** One encoded piece: its text (the normalized surface, or `<0xNN>` for a byte) and id. */
export interface EncodedPiece {
  piece: string;
  id: number;
}

export class SentencePieceProcessor {
  readonly model: SentencePieceModelProto;
  /** The model file as given (what save() writes back); null when built from a parsed model. */
  readonly modelBytes: Uint8Array | null;
  readonly fileName: string;
  private readonly normalizer: SentencePieceNormalizer;
  /** NORMAL, USER_DEFINED and UNUSED pieces (ModelBase::pieces_): what text can become. */
  private readonly pieceIds = new Map<string, number>();
  /** CONTROL, UNKNOWN and BYTE pieces (reserved_id_map_): looked up first by `pieceToId`. */
  private readonly reservedIds = new Map<string, number>();
  private readonly userDefined: BytesTrie<number> | null;
  private readonly trie = new BytesTrie<number>();
  private readonly byteIds = new Int32Array(256).fill(-1);
  readonly unkId: number;
  private readonly minScore: number;
  private readonly maxScore: number;

  /** `source`: the model file's bytes, or a model already parsed (or built, e.g. from a tokenizer.json). */
  constructor(source: Uint8Array | SentencePieceModelProto, options: SentencePieceOptions = {}) {
    this.fileName = options.fileName ?? 'the model file';
    this.modelBytes = source instanceof Uint8Array ? source : null;
    const model = source instanceof Uint8Array ? parseSentencePieceModel(source, this.fileName) : { ...source, pieces: [...source.pieces] };
    if (options.addDummyPrefix !== undefined) model.normalizer = { ...model.normalizer, addDummyPrefix: options.addDummyPrefix };
    this.model = model;
    const bad = (why: string) => new TokenizerError(`SentencePiece: ${this.fileName}: ${why}`);
    let unkId = -1;
    let minScore = Infinity;
    let maxScore = -Infinity;
    let userDefined: BytesTrie<number> | null = null;
    model.pieces.forEach((p, id) => {
      if (p.piece.length === 0) throw bad(`piece ${id} is empty`);
      const normal = p.type === PieceType.NORMAL || p.type === PieceType.USER_DEFINED || p.type === PieceType.UNUSED;
      const table = normal ? this.pieceIds : this.reservedIds;
      if (table.has(p.piece)) throw bad(`piece ${JSON.stringify(p.piece)} (id ${id}) is already defined`);
      table.set(p.piece, id);
      if (p.type === PieceType.USER_DEFINED) (userDefined ??= new BytesTrie()).set(encoder.encode(p.piece), id);
      if (p.type === PieceType.UNKNOWN) {
        if (unkId >= 0) throw bad('unk is already defined');
        unkId = id;
      }
      if (p.type === PieceType.BYTE) {
        if (!model.byteFallback) throw bad(`byte piece ${p.piece} but trainer_spec.byte_fallback is false`);
        const byte = pieceToByte(p.piece);
        if (byte < 0) throw bad(`byte piece ${JSON.stringify(p.piece)} is not <0xNN>`);
        this.byteIds[byte] = id;
      }
      if (p.type === PieceType.NORMAL) {
        minScore = Math.min(minScore, p.score);
        maxScore = Math.max(maxScore, p.score);
      }
      if (normal) this.trie.set(encoder.encode(p.piece), id);
    });
    if (unkId < 0) throw bad('unk is not defined');
    if (model.byteFallback && this.byteIds.includes(-1)) throw bad('byte_fallback is on but not all 256 <0xNN> pieces are defined');
    this.unkId = unkId;
    this.minScore = minScore;
    this.maxScore = maxScore;
    this.userDefined = userDefined;
    this.normalizer = new SentencePieceNormalizer(model.normalizer, userDefined, model.treatWhitespaceAsSuffix);
  }

  /** Loads a model from its bytes (an ArrayBuffer, a Uint8Array, or a Blob / File). */
  static async load(source: ArrayBuffer | Uint8Array | Blob, options: SentencePieceOptions = {}): Promise<SentencePieceProcessor> {
    const bytes = source instanceof Uint8Array ? source : source instanceof ArrayBuffer ? new Uint8Array(source) : new Uint8Array(await source.arrayBuffer());
    return new SentencePieceProcessor(bytes, options);
  }

  get pieceSize(): number {
    return this.model.pieces.length;
  }

  idToPiece(id: number): string {
    const p = this.model.pieces[id] as SentencePiecePiece | undefined;
    if (!Number.isInteger(id) || p === undefined) throw new TokenizerError(`SentencePiece: id ${id} is out of range [0, ${this.pieceSize})`);
    return p.piece;
  }

  /** ModelBase::PieceToId: reserved pieces first, then the vocabulary; anything else is `<unk>`. */
  pieceToId(piece: string): number {
    return this.reservedIds.get(piece) ?? this.pieceIds.get(piece) ?? this.unkId;
  }

  private type(id: number): number {
    return this.model.pieces[id]?.type ?? 0;
  }

  isControl(id: number): boolean {
    return this.type(id) === PieceType.CONTROL;
  }
  isUnknown(id: number): boolean {
    return this.type(id) === PieceType.UNKNOWN;
  }
  isByte(id: number): boolean {
    return this.type(id) === PieceType.BYTE;
  }
  isUserDefined(id: number): boolean {
    return this.type(id) === PieceType.USER_DEFINED;
  }

  /** The normalized text (`▁` for spaces, dummy prefix added), as the encoder sees it. */
  normalize(text: string): string {
    return decoder.decode(this.normalizer.normalizeBytes(encoder.encode(text)));
  }

  // ---- encode -------------------------------------------------------------------------------

  /** Text -> ids (`sp.encode(text)`). */
  encodeAsIds(text: string): number[] {
    return this.encodePieces(text).map((p) => p.id);
  }

  /** Text -> pieces (`sp.encode(text, out_type=str)`). */
  encodeAsPieces(text: string): string[] {
    return this.encodePieces(text).map((p) => p.piece);
  }

  /**
   * SentencePieceProcessor::Encode: normalize, run the model, then expand unknown pieces into
   * `<0xNN>` byte pieces (byte fallback) or merge runs of unknown pieces into one.
   */
  encodePieces(text: string): EncodedPiece[] {
    if (typeof text !== 'string') throw new TokenizerError(`SentencePiece.encode: expected a string, got ${typeof text}`);
    const normalized = this.normalizer.normalizeBytes(encoder.encode(text));
    const raw = this.model.modelType === 'bpe' ? this.encodeBpe(normalized) : this.encodeUnigram(normalized);
    const out: EncodedPiece[] = [];
    let prevUnk = false;
    for (const [start, end, id] of raw) {
      const isUnk = this.isUnknown(id);
      if (isUnk && this.model.byteFallback) {
        for (let i = start; i < end; i++) {
          const byte = normalized[i];
          out.push({ piece: bytePiece(byte), id: this.byteIds[byte] });
        }
      } else {
        const piece = decoder.decode(normalized.subarray(start, end));
        if (prevUnk && isUnk) out[out.length - 1].piece += piece;
        else out.push({ piece, id });
      }
      prevUnk = isUnk;
    }
    return out;
  }

  /**
   * unigram_model.cc Model::EncodeOptimized: Viterbi over byte positions. Each start tries every
   * vocabulary piece that begins there (user-defined pieces score length * max_score - 0.1, so they
   * always win); a character no single piece covers gets an unknown node scored min_score - 10. Path
   * scores are float32 as in the C++.
   */
  private encodeUnigram(text: Uint8Array): [number, number, number][] {
    const size = text.length;
    const bestScore = new Float64Array(size + 1);
    const startsAt = new Int32Array(size + 1).fill(-1);
    const bestId = new Int32Array(size + 1).fill(-1);
    const unkScore = Math.fround(this.minScore - UNK_PENALTY);
    for (let start = 0; start < size; ) {
      const till = bestScore[start];
      const mblen = Math.min(oneCharLen(text[start]), size - start);
      let hasSingleNode = false;
      for (const [length, id] of this.trie.prefixes(text, start)) {
        if (this.type(id) === PieceType.UNUSED) continue;
        const end = start + length;
        // A user-defined piece's bonus is computed in double (as the C++ ternary is), a score in float32.
        const candidate = this.isUserDefined(id) ? Math.fround(length * this.maxScore) - 0.1 + till : Math.fround(this.model.pieces[id].score + till);
        if (startsAt[end] === -1 || candidate > bestScore[end]) {
          bestScore[end] = Math.fround(candidate);
          startsAt[end] = start;
          bestId[end] = id;
        }
        if (length === mblen) hasSingleNode = true;
      }
      if (!hasSingleNode) {
        const end = start + mblen;
        const candidate = Math.fround(unkScore + till);
        if (startsAt[end] === -1 || candidate > bestScore[end]) {
          bestScore[end] = candidate;
          startsAt[end] = start;
          bestId[end] = this.unkId;
        }
      }
      start += mblen;
    }
    const out: [number, number, number][] = [];
    for (let end = size; end > 0; end = startsAt[end]) out.push([startsAt[end], end, bestId[end]]);
    return out.reverse();
  }

  /**
   * bpe_model.cc Model::SampleEncode without sampling: split into characters (a user-defined piece is
   * one frozen symbol), then repeatedly merge the adjacent pair whose concatenation is the
   * best-scored piece (leftmost on ties) until no pair is a piece; UNUSED pieces reached by a merge
   * are split back into the pair that made them.
   */
  private encodeBpe(text: Uint8Array): [number, number, number][] {
    interface Symbol {
      start: number;
      end: number;
      prev: number;
      next: number;
      freeze: boolean;
    }
    const symbols: Symbol[] = [];
    for (let pos = 0; pos < text.length; ) {
      const userLen = this.userDefined?.longestPrefix(text, pos) ?? 0;
      const len = userLen > 0 ? userLen : Math.min(oneCharLen(text[pos]), text.length - pos);
      const index = symbols.length;
      symbols.push({ start: pos, end: pos + len, prev: index - 1, next: pos + len < text.length ? index + 1 : -1, freeze: userLen > 0 });
      pos += len;
    }
    const str = (start: number, end: number) => decoder.decode(text.subarray(start, end));
    const agenda = new PairHeap();
    const revMerge = new Map<string, [[number, number], [number, number]]>();
    const maybeAdd = (left: number, right: number) => {
      if (left === -1 || right === -1 || symbols[left].freeze || symbols[right].freeze) return;
      const piece = str(symbols[left].start, symbols[right].end);
      const id = this.pieceIds.get(piece);
      if (id === undefined) return;
      agenda.push({ left, right, score: this.model.pieces[id].score, size: symbols[right].end - symbols[left].start });
      if (this.type(id) === PieceType.UNUSED) {
        revMerge.set(piece, [
          [symbols[left].start, symbols[left].end],
          [symbols[right].start, symbols[right].end],
        ]);
      }
    };
    for (let i = 1; i < symbols.length; i++) maybeAdd(i - 1, i);
    for (let top = agenda.pop(); top; top = agenda.pop()) {
      const l = symbols[top.left];
      const r = symbols[top.right];
      // Stale: one side was merged away or changed since the pair was queued.
      if (l.start === l.end || r.start === r.end || r.end - l.start !== top.size || l.end !== r.start) continue;
      l.end = r.end;
      l.next = r.next;
      if (r.next >= 0) symbols[r.next].prev = top.left;
      r.end = r.start;
      maybeAdd(l.prev, top.left);
      maybeAdd(top.left, l.next);
    }
    const out: [number, number, number][] = [];
    const resegment = (start: number, end: number) => {
      const piece = str(start, end);
      const id = this.pieceToId(piece);
      const rev = this.type(id) === PieceType.UNUSED ? revMerge.get(piece) : undefined;
      if (!rev) {
        out.push([start, end, id]);
        return;
      }
      resegment(...rev[0]);
      resegment(...rev[1]);
    };
    for (let i = symbols.length > 0 ? 0 : -1; i !== -1; i = symbols[i].next) resegment(symbols[i].start, symbols[i].end);
    return out;
  }

  // ---- decode -------------------------------------------------------------------------------

  /** Ids -> text (`sp.decode(ids)`); an id out of range is an error naming it. */
  decodeIds(ids: readonly number[]): string {
    return this.decodePieces(ids.map((id) => this.idToPiece(id)));
  }

  /**
   * SentencePieceProcessor::Decode on pieces: CONTROL pieces vanish, `<unk>` becomes the unknown
   * surface (" ⁇ "), a piece the model lacks comes out verbatim, runs of `<0xNN>` pieces are
   * reassembled as UTF-8 (a malformed byte -> U+FFFD), `▁` -> space, and the first piece's leading
   * `▁` (the dummy prefix) is dropped.
   */
  decodePieces(pieces: readonly string[]): string {
    const spec = this.model.normalizer;
    let text = '';
    let isBosWs = true;
    let bosWsSeen = false;
    let bytes: number[] = [];
    const flushBytes = () => {
      if (bytes.length === 0) return;
      const buf = Uint8Array.from(bytes);
      for (let offset = 0; offset < buf.length; ) {
        const len = validCharLen(buf, offset);
        if (len === 0) {
          text += '\uFFFD';
          offset += 1;
        } else {
          text += decoder.decode(buf.subarray(offset, offset + len));
          offset += len;
        }
      }
      bytes = [];
    };
    for (const piece of pieces) {
      const id = this.pieceToId(piece);
      if (this.isByte(id)) {
        bytes.push(pieceToByte(piece));
        continue;
      }
      flushBytes();
      if (bosWsSeen || text.length > 0) isBosWs = false;
      bosWsSeen = false;
      if (this.isControl(id)) continue;
      if (this.isUnknown(id)) {
        text += this.idToPiece(id) === piece ? this.model.unkSurface : piece;
        continue;
      }
      let surface = piece;
      if (isBosWs && (spec.addDummyPrefix || spec.removeExtraWhitespaces) && surface.startsWith(SPIECE_UNDERLINE)) {
        surface = surface.slice(1);
        // With whitespace removal every leading `▁` piece is dropped, not only the first.
        bosWsSeen = !spec.removeExtraWhitespaces;
      }
      text += surface.replaceAll(SPIECE_UNDERLINE, ' ');
    }
    flushBytes();
    return text;
  }
}

/** `<0xNN>` (upper-case hex, as ByteToPiece writes it). */
function bytePiece(byte: number): string {
  return `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** `<0xNN>` -> NN, or -1. */
function pieceToByte(piece: string): number {
  const m = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
  return m ? parseInt(m[1], 16) : -1;
}

interface Pair {
  left: number;
  right: number;
  score: number;
  size: number;
}

/** Max-heap of merge candidates: higher score first, then the smaller left index. */
class PairHeap {
  private readonly items: Pair[] = [];
  private static before(a: Pair, b: Pair): boolean {
    return a.score > b.score || (a.score === b.score && a.left < b.left);
  }
  push(p: Pair): void {
    const h = this.items;
    h.push(p);
    for (let i = h.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!PairHeap.before(h[i], h[parent])) break;
      [h[i], h[parent]] = [h[parent], h[i]];
      i = parent;
    }
  }
  pop(): Pair | undefined {
    const h = this.items;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && PairHeap.before(h[l], h[m])) m = l;
        if (r < h.length && PairHeap.before(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}
