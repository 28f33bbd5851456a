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

/**
 * The SentencePiece model inside a fast tokenizer.json converted from one (transformers'
 * `SpmConverter`, e.g. T5's): a Unigram model whose vocab holds [piece, score] in id order, a
 * `Precompiled` normalizer carrying the same charsmap, and a `Metaspace` pre-tokenizer. Added tokens
 * that are special become CONTROL pieces; `added` tokens past the SentencePiece vocabulary (T5's
 * sentinels, which the converter appends to the vocab) are left out: `pieceCount` pieces are kept.
 */
export function sentencePieceModelFromTokenizerJSON(json: unknown, pieceCount?: number, fileName = 'tokenizer.json'): SentencePieceModelProto {
  const bad = (why: string) => new TokenizerError(`SentencePiece: ${fileName} is not a SentencePiece Unigram tokenizer.json (${why})`);
  const obj = (v: unknown): Record<string, unknown> | null => (typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : null);
  const root = obj(json);
  const model = obj(root?.model);
  if (!root || !model) throw bad('no "model"');
  if (model.type !== 'Unigram') throw bad(`model.type is ${JSON.stringify(model.type)}, not "Unigram"`);
  const vocab = model.vocab;
  if (!Array.isArray(vocab) || vocab.length === 0) throw bad('model.vocab is not a list of [piece, score]');
  const unkId = model.unk_id;
  if (typeof unkId !== 'number') throw bad('model.unk_id is missing');
  const count = pieceCount ?? vocab.length;
  if (!(count > unkId && count <= vocab.length)) throw bad(`${count} pieces asked for, vocab has ${vocab.length} (unk_id ${unkId})`);
  const special = new Set<number>();
  for (const t of Array.isArray(root.added_tokens) ? root.added_tokens : []) {
    const token = obj(t);
    if (token && token.special === true && typeof token.id === 'number') special.add(token.id);
  }
  const pieces: SentencePiecePiece[] = vocab.slice(0, count).map((entry: unknown, id: number) => {
    if (!Array.isArray(entry) || typeof entry[0] !== 'string' || typeof entry[1] !== 'number') throw bad(`model.vocab[${id}] is not [piece, score]`);
    const type = id === unkId ? PieceType.UNKNOWN : special.has(id) ? PieceType.CONTROL : PieceType.NORMAL;
    return { piece: entry[0], score: Math.fround(entry[1]), type };
  });
  // The normalizer: Precompiled (the charsmap), Strip / Replace(' {2,}') = remove_extra_whitespaces.
  const normalizerNode = obj(root.normalizer);
  const steps = normalizerNode?.type === 'Sequence' && Array.isArray(normalizerNode.normalizers) ? normalizerNode.normalizers.map(obj) : [normalizerNode];
  let charsmap: Uint8Array = new Uint8Array(0);
  let removeExtraWhitespaces = false;
  for (const step of steps) {
    if (step?.type === 'Precompiled' && typeof step.precompiled_charsmap === 'string') charsmap = base64Bytes(step.precompiled_charsmap);
    if (step?.type === 'Strip' || step?.type === 'Replace') removeExtraWhitespaces = true;
  }
  const pre = obj(root.pre_tokenizer);
  const metaspace = pre?.type === 'Metaspace' ? pre : (Array.isArray(pre?.pretokenizers) ? pre.pretokenizers.map(obj) : []).find((p) => p?.type === 'Metaspace');
  if (!metaspace) throw bad('no Metaspace pre-tokenizer');
  const addDummyPrefix = metaspace.prepend_scheme !== undefined ? metaspace.prepend_scheme !== 'never' : metaspace.add_prefix_space !== false;
  return {
    pieces,
    modelType: 'unigram',
    byteFallback: model.byte_fallback === true,
    treatWhitespaceAsSuffix: false,
    unkSurface: DEFAULT_UNK_SURFACE,
    normalizer: { name: 'tokenizer.json', precompiledCharsmap: charsmap, addDummyPrefix, removeExtraWhitespaces, escapeWhitespaces: true },
  };
}

/** Standard base64 -> bytes (no Node Buffer: browser-safe). */
function base64Bytes(text: string): Uint8Array {
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}
