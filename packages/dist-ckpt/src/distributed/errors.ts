// Errors of the distributed-checkpoint layer. Messages name the global tensor key and, where there is
// one, the file: `load: tensor 'encoder.layer.0.attention.self.query.weight': shard file 'tp0.safetensors': ...`.

/** Base class: a sharded state dict or distributed checkpoint that cannot be saved or loaded. */
export class DistCheckpointError extends Error {
  constructor(
    message: string,
    /** The global tensor / object key the error is about, when there is one. */
    readonly key?: string,
    /** The file the error is about, when there is one. */
    readonly file?: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Main replicas that do not cover a global tensor exactly once, or ranks that disagree on its shape / dtype. */
export class ShardingIntegrityError extends DistCheckpointError {}

/** Missing or unexpected keys under a raising StrictHandling mode. */
export class StrictLoadError extends DistCheckpointError {
  constructor(
    message: string,
    readonly missingKeys: string[],
    readonly unexpectedKeys: string[],
  ) {
    super(message);
  }
}

/** A checkpoint whose files are missing, truncated, or disagree with its metadata. */
export class CorruptCheckpointError extends DistCheckpointError {}
