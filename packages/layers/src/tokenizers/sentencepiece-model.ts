// The SentencePiece model file (`spiece.model`, `tokenizer.model`, ChatGLM's `ice_text.model`): a
// serialized `sentencepiece.ModelProto` (google/sentencepiece src/sentencepiece_model.proto). Only the
// fields that encoding and decoding read are kept; a tiny protobuf wire-format reader is enough for
// that (varints, length-delimited fields, fixed32 floats), so no protobuf library is pulled in.

import { TokenizerError } from './errors.js';

/** `ModelProto.SentencePiece.Type`. */
export const PieceType = {
  NORMAL: 1,
  UNKNOWN: 2,
  CONTROL: 3,
  USER_DEFINED: 4,
  UNUSED: 5,
  BYTE: 6,
} as const;
export type PieceType = (typeof PieceType)[keyof typeof PieceType];

export interface SentencePiecePiece {
  piece: string;
  /** A float32 in the file. */
  score: number;
  type: PieceType;
}

/** `TrainerSpec.ModelType`: what the encoder runs (WORD / CHAR models are not supported). */
export type SentencePieceModelType = 'unigram' | 'bpe';

export interface NormalizerSpec {
  /** `nmt_nfkc`, `identity`, ... (informative: the rules are in `precompiledCharsmap`). */
  name: string;
  /** The compiled normalization rules: a darts double-array trie plus the replacement strings. Empty = identity. */
  precompiledCharsmap: Uint8Array;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  escapeWhitespaces: boolean;
}

export interface SentencePieceModelProto {
  pieces: SentencePiecePiece[];
  modelType: SentencePieceModelType;
  byteFallback: boolean;
  treatWhitespaceAsSuffix: boolean;
  /** What `<unk>` decodes to (`trainer_spec.unk_surface`, default " ⁇ "). */
  unkSurface: string;
  normalizer: NormalizerSpec;
}

const MODEL_TYPES: Record<number, SentencePieceModelType | undefined> = { 1: 'unigram', 2: 'bpe' };
const MODEL_TYPE_NAMES: Record<number, string> = { 1: 'UNIGRAM', 2: 'BPE', 3: 'WORD', 4: 'CHAR' };
const DEFAULT_UNK_SURFACE = ' \u2047 ';

class WireError extends Error {}

/** One protobuf message's fields in file order: (field number, wire type, value). */
interface Field {
  no: number;
  wire: number;
  /** varint: the number (exact below 2^53; larger ones only as flags); fixed32: the raw 4 bytes' offset. */
  int: number;
  bytes: Uint8Array;
}

function* readFields(buf: Uint8Array): Generator<Field> {
  let pos = 0;
  const varint = (): number => {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= buf.length) throw new WireError('truncated varint');
      const b = buf[pos++];
      result += (b & 0x7f) * scale;
      if (b < 0x80) return result;
      scale *= 128;
    }
    throw new WireError('varint longer than 10 bytes');
  };
  while (pos < buf.length) {
    const key = varint();
    const no = Math.floor(key / 8);
    const wire = key % 8;
    if (no === 0) throw new WireError('field number 0');
    if (wire === 0) yield { no, wire, int: varint(), bytes: buf.subarray(0, 0) };
    else if (wire === 2) {
      const len = varint();
      if (pos + len > buf.length) throw new WireError(`field ${no}: length ${len} runs past the end`);
      yield { no, wire, int: 0, bytes: buf.subarray(pos, pos + len) };
      pos += len;
    } else if (wire === 5 || wire === 1) {
      const n = wire === 5 ? 4 : 8;
      if (pos + n > buf.length) throw new WireError(`field ${no}: truncated fixed${n * 8}`);
      yield { no, wire, int: 0, bytes: buf.subarray(pos, pos + n) };
      pos += n;
    } else throw new WireError(`field ${no}: unsupported wire type ${wire}`);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function float32(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, 4).getFloat32(0, true);
}

/**
 * Parses a SentencePiece model file. `fileName` names the file in errors: a file that is not a
 * ModelProto (a tokenizer.json, a vocab.txt, random bytes) fails here, before any work.
 */
export function parseSentencePieceModel(bytes: Uint8Array, fileName = 'the model file'): SentencePieceModelProto {
  const fail = (why: string) => new TokenizerError(`SentencePiece: ${fileName} is not a SentencePiece model (${why})`);
  const pieces: SentencePiecePiece[] = [];
  let modelTypeNo = 1;
  let byteFallback = false;
  let treatWhitespaceAsSuffix = false;
  let unkSurface = DEFAULT_UNK_SURFACE;
  const normalizer: NormalizerSpec = { name: '', precompiledCharsmap: new Uint8Array(0), addDummyPrefix: true, removeExtraWhitespaces: true, escapeWhitespaces: true };
  let sawTrainerOrNormalizer = false;
  try {
    for (const f of readFields(bytes)) {
      if (f.no === 1 && f.wire === 2) {
        // SentencePiece { piece = 1; score = 2; type = 3 }
        const p: SentencePiecePiece = { piece: '', score: 0, type: PieceType.NORMAL };
        for (const g of readFields(f.bytes)) {
          if (g.no === 1 && g.wire === 2) p.piece = utf8.decode(g.bytes);
          else if (g.no === 2 && g.wire === 5) p.score = float32(g.bytes);
          else if (g.no === 3 && g.wire === 0) p.type = g.int as PieceType;
        }
        if (!(p.type >= 1 && p.type <= 6)) throw new WireError(`piece ${pieces.length} has unknown type ${p.type}`);
        pieces.push(p);
      } else if (f.no === 2 && f.wire === 2) {
        sawTrainerOrNormalizer = true;
        for (const g of readFields(f.bytes)) {
          if (g.no === 3 && g.wire === 0) modelTypeNo = g.int;
          else if (g.no === 35 && g.wire === 0) byteFallback = g.int !== 0;
          else if (g.no === 24 && g.wire === 0) treatWhitespaceAsSuffix = g.int !== 0;
          else if (g.no === 44 && g.wire === 2) unkSurface = utf8.decode(g.bytes);
        }
      } else if (f.no === 3 && f.wire === 2) {
        sawTrainerOrNormalizer = true;
        for (const g of readFields(f.bytes)) {
          if (g.no === 1 && g.wire === 2) normalizer.name = utf8.decode(g.bytes);
          else if (g.no === 2 && g.wire === 2) normalizer.precompiledCharsmap = g.bytes.slice();
          else if (g.no === 3 && g.wire === 0) normalizer.addDummyPrefix = g.int !== 0;
          else if (g.no === 4 && g.wire === 0) normalizer.removeExtraWhitespaces = g.int !== 0;
          else if (g.no === 5 && g.wire === 0) normalizer.escapeWhitespaces = g.int !== 0;
        }
      } else if (f.no > 5 && f.no < 100) {
        // ModelProto has fields 1..5 only (and extensions from 200 on): anything else is not one.
        throw new WireError(`unexpected top-level field ${f.no}`);
      }
    }
  } catch (err) {
    if (err instanceof WireError || err instanceof TypeError) throw fail(err.message);
    throw err;
  }
  if (pieces.length === 0) throw fail('no pieces');
  if (!sawTrainerOrNormalizer) throw fail('no trainer_spec or normalizer_spec');
  const modelType = MODEL_TYPES[modelTypeNo];
  if (modelType === undefined) {
    throw new TokenizerError(`SentencePiece: ${fileName}: model_type ${MODEL_TYPE_NAMES[modelTypeNo] ?? modelTypeNo} is not supported (UNIGRAM and BPE are)`);
  }
  return { pieces, modelType, byteFallback, treatWhitespaceAsSuffix, unkSurface, normalizer };
}
