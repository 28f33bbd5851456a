// Position schemes that enter attention scores:
// - T5 relative position buckets and the [1, heads, q, k] position bias (transformers
//   modeling_t5.py: `T5Attention._relative_position_bucket`, `T5Attention.compute_bias`, 4.37 semantics);
// - MegatronBERT / BERT `relative_key` and `relative_key_query` score terms (modeling_megatron_bert.py,
//   `MegatronBertSelfAttention.forward`: distance_embedding and the two einsums);
// - absolute positions: position ids for learned tables (`position_ids[:, past : past + seq]`) and the
//   fixed sinusoidal table (transformers `create_sinusoidal_embeddings`, DistilBERT).

import { embedding, fromHost, matmul, ShapeError, type Backend, type Tensor } from '@lm/tensor-gpu';

// ---- T5 relative position buckets ---------------------------------------------------------------

export interface RelativePositionBucketOptions {
  /** Encoder attention: positive and negative offsets get separate halves of the buckets. */
  bidirectional?: boolean;
  numBuckets?: number;
  maxDistance?: number;
}

const f32 = Math.fround;

/**
 * The bucket of one relative position (memory - query), exactly as T5's `_relative_position_bucket`:
 * bidirectional: half the buckets for offsets > 0 and |offset| after; causal: -min(offset, 0). Offsets
 * below max_exact = buckets/2 are their own bucket; larger ones are log-spaced up to maxDistance,
 * computed in float32 (each step rounded as torch does) and truncated toward zero, then clipped to
 * buckets - 1.
 */
export function relativePositionBucket(relativePosition: number, options: RelativePositionBucketOptions = {}): number {
  let numBuckets = options.numBuckets ?? 32;
  const maxDistance = options.maxDistance ?? 128;
  let bucket = 0;
  let n: number;
  if (options.bidirectional ?? true) {
    numBuckets = Math.floor(numBuckets / 2);
    if (relativePosition > 0) bucket += numBuckets;
    n = Math.abs(relativePosition);
  } else {
    n = -Math.min(relativePosition, 0);
  }
  const maxExact = Math.floor(numBuckets / 2);
  if (n < maxExact) return bucket + n;
  // torch: max_exact + (log(n.float() / max_exact) / math.log(max_distance / max_exact) * (nb - max_exact)).long()
  const ratio = f32(f32(n) / maxExact);
  const logRatio = f32(Math.log(ratio));
  const scaled = f32(f32(logRatio / f32(Math.log(maxDistance / maxExact))) * (numBuckets - maxExact));
  const large = maxExact + Math.trunc(scaled);
  return bucket + Math.min(large, numBuckets - 1);
}

/**
 * The bucket table of T5's `compute_bias`: [queryLength, keyLength] int32 buckets of
 * (key position - query position), with query positions pastLength .. pastLength + queryLength - 1
 * (the last rows of the full table, as T5 slices `position_bias[:, :, -q:, :]` with a cache).
 */
export function relativePositionBuckets(queryLength: number, keyLength: number, options: RelativePositionBucketOptions & { pastLength?: number } = {}): Int32Array {
  const past = options.pastLength ?? 0;
  const out = new Int32Array(queryLength * keyLength);
  const memo = new Map<number, number>();
  for (let i = 0; i < queryLength; i++) {
    for (let j = 0; j < keyLength; j++) {
      const rel = j - (i + past);
      let b = memo.get(rel);
      if (b === undefined) {
        b = relativePositionBucket(rel, options);
        memo.set(rel, b);
      }
      out[i * keyLength + j] = b;
    }
  }
  return out;
}

/**
 * Bucket ids for a tensor of int32 relative positions (any shape, any backend): T5's
 * `_relative_position_bucket` on tensors. The float32 log step is evaluated on the host for every
 * distance up to the saturation point and looked up on the device, so GPU transcendental precision
 * cannot move a bucket boundary.
 */
export function relativePositionBucketTensor(relativePosition: Tensor, options: RelativePositionBucketOptions = {}): Tensor {
  if (relativePosition.dtype !== 'int32') throw new ShapeError(`relativePositionBucketTensor: relative positions must be int32, got ${relativePosition.dtype}`);
  const bidirectional = options.bidirectional ?? true;
  const half = bidirectional ? Math.floor((options.numBuckets ?? 32) / 2) : (options.numBuckets ?? 32);
  // Distances >= saturation all map to the last bucket.
  const table: number[] = [];
  for (let n = 0; ; n++) {
    // Offset -n: distance n without the "after" half (bidirectional) or the causal distance n.
    const b = relativePositionBucket(-n, options);
    table.push(b);
    if ((b >= half - 1 && n >= Math.floor(half / 2)) || n >= 1 << 20) break;
  }
  const lookup = fromHost(Int32Array.from(table), [table.length, 1], 'int32', relativePosition.backend);
  const distance = bidirectional ? relativePosition.abs() : relativePosition.neg().maximum(0); // |rel| or -min(rel, 0)
  const clipped = distance.minimum(table.length - 1);
  const flat = clipped.reshape(-1);
  const rows = lookup.indexSelect(0, flat); // [n, 1]
  let buckets = rows.reshape(relativePosition.shape);
  if (bidirectional) {
    const after = relativePosition.gtScalar(0).toInt().mulScalar(half); // (rel > 0) * nb/2
    const sum = buckets.add(after);
    buckets.dispose();
    after.dispose();
    buckets = sum;
  }
  [lookup, distance, clipped, flat, rows].forEach((t) => t.dispose());
  return buckets;
}

export interface T5PositionBiasOptions extends RelativePositionBucketOptions {
  /** Cached positions before the first query (the query positions start here). */
  pastLength?: number;
}

/**
 * T5's `compute_bias`: position_bias [1, heads, queryLength, keyLength] from the
 * `relative_attention_bias` table [numBuckets, heads]; query i sits at position pastLength + i.
 * Differentiable with respect to the table.
 */
export function t5PositionBias(relativeAttentionBias: Tensor, queryLength: number, keyLength: number, options: T5PositionBiasOptions = {}): Tensor {
  const numBuckets = options.numBuckets ?? 32;
  if (relativeAttentionBias.rank !== 2 || relativeAttentionBias.shape[0] !== numBuckets) {
    throw new ShapeError(`t5PositionBias: relative_attention_bias must be [numBuckets=${numBuckets}, heads], got [${relativeAttentionBias.shape.join(',')}]`);
  }
  const buckets = relativePositionBuckets(queryLength, keyLength, options);
  const ids = fromHost(buckets, [queryLength, keyLength], 'int32', relativeAttentionBias.backend);
  const values = embedding(relativeAttentionBias, ids); // [q, k, heads]
  const perm = values.permute(2, 0, 1); // [heads, q, k]
  const out = perm.unsqueeze(0); // [1, heads, q, k]
  [ids, values, perm].forEach((t) => t.dispose());
  return out;
}

// ---- MegatronBERT relative_key / relative_key_query ------------------------------------------------

export type RelativeKeyType = 'relative_key' | 'relative_key_query';

export interface RelativeKeyScoresOptions {
  type: RelativeKeyType;
  maxPositionEmbeddings: number;
  /**
   * A past key/value was given: the reference then uses the single query position keyLength - 1 for
   * every query (only right for one new token per step).
   */
  hasPast?: boolean;
}

/** The int32 distance ids (l - r) + maxPositionEmbeddings - 1, [queries, keys] (or [1, keys] with a past). */
export function relativeDistanceIds(queryLength: number, keyLength: number, options: { maxPositionEmbeddings: number; hasPast?: boolean; backend?: Backend }): Tensor {
  const rows = options.hasPast ? 1 : queryLength;
  const host = new Int32Array(rows * keyLength);
  for (let l = 0; l < rows; l++) {
    const pos = options.hasPast ? keyLength - 1 : l;
    for (let r = 0; r < keyLength; r++) {
      const id = pos - r + options.maxPositionEmbeddings - 1;
      if (id < 0 || id >= 2 * options.maxPositionEmbeddings - 1) {
        throw new RangeError(`relativeDistanceIds: distance ${pos - r} is outside +-(maxPositionEmbeddings=${options.maxPositionEmbeddings} - 1)`);
      }
      host[l * keyLength + r] = id;
    }
  }
  return fromHost(host, [rows, keyLength], 'int32', options.backend);
}

/**
 * The score term MegatronBERT adds to q.k^T before the 1/sqrt(headDim) scaling:
 * relative_key: einsum('bhld,lrd->bhlr', q, pe); relative_key_query: that plus
 * einsum('bhrd,lrd->bhlr', k, pe), with pe = distance_embedding[l - r + maxPositionEmbeddings - 1].
 * query [batch, heads, q, headDim], key [batch, heads, k, headDim]; returns [batch, heads, q, k].
 */
export function relativeKeyScores(query: Tensor, key: Tensor, distanceEmbedding: Tensor, options: RelativeKeyScoresOptions): Tensor {
  const queryLength = query.shape[2];
  const keyLength = key.shape[2];
  const ids = relativeDistanceIds(queryLength, keyLength, { ...options, backend: query.backend });
  const pe = embedding(distanceEmbedding, ids); // [l, r, headDim] (l = 1 with a past)
  // bhld,lrd->bhlr: per query position l, q[b,h,l,:] @ pe[l]^T.
  const qL = query.permute(2, 0, 1, 3); // [l, batch, heads, headDim]
  const peT = pe.permute(0, 2, 1).unsqueeze(1); // [l, 1, headDim, r]
  const qTerm = matmul(qL, peT); // [l, batch, heads, r]
  let scores = qTerm.permute(1, 2, 0, 3); // [batch, heads, l, r]
  const temps: Tensor[] = [ids, qL, peT, qTerm];
  if (options.type === 'relative_key_query') {
    // bhrd,lrd->bhlr: per key position r, k[b,h,r,:] @ pe[:, r]^T.
    const kR = key.permute(2, 0, 1, 3); // [r, batch, heads, headDim]
    const peR = pe.permute(1, 2, 0).unsqueeze(1); // [r, 1, headDim, l]
    const kTerm = matmul(kR, peR); // [r, batch, heads, l]
    const kPerm = kTerm.permute(1, 2, 3, 0); // [batch, heads, l, r]
    const sum = scores.add(kPerm); // [batch, heads, q|l, r]
    temps.push(kR, peR, kTerm, kPerm, scores);
    scores = sum;
  } else if (options.type !== 'relative_key') {
    throw new TypeError(`relativeKeyScores: unknown position embedding type '${String(options.type)}'`);
  }
  temps.push(pe);
  temps.forEach((t) => t.dispose());
  return scores;
}

// ---- absolute positions -------------------------------------------------------------------------------

/** int32 position ids [1, seqLength] = pastLength .. pastLength + seqLength - 1 (HF `position_ids[:, past:past+seq]`). */
export function absolutePositionIds(seqLength: number, options: { pastLength?: number; batch?: number; backend?: Backend } = {}): Tensor {
  const past = options.pastLength ?? 0;
  const batch = options.batch ?? 1;
  const host = new Int32Array(batch * seqLength);
  for (let b = 0; b < batch; b++) for (let i = 0; i < seqLength; i++) host[b * seqLength + i] = past + i;
  return fromHost(host, [batch, seqLength], 'int32', options.backend);
}

/**
 * The fixed sinusoidal table [numPositions, dim] of transformers' `create_sinusoidal_embeddings`:
 * out[p, 2i] = sin(p / 10000^(2i/dim)), out[p, 2i+1] = cos(p / 10000^(2i/dim)) (computed in float64,
 * stored as float32).
 */
export function sinusoidalPositionEmbedding(numPositions: number, dim: number, options: { backend?: Backend } = {}): Tensor {
  const host = new Float32Array(numPositions * dim);
  for (let p = 0; p < numPositions; p++) {
    for (let j = 0; j < dim; j++) {
      const angle = p / Math.pow(10000, (2 * Math.floor(j / 2)) / dim);
      host[p * dim + j] = j % 2 === 0 ? Math.sin(angle) : Math.cos(angle);
    }
  }
  return fromHost(host, [numPositions, dim], 'float32', options.backend);
}
