// Error classes of the format layer. Every message starts with the file it is about, then the tensor
// when there is one: `model.safetensors: tensor 'wte.weight': data_offsets [0,1000] run past ...`.

/** Base class: something is wrong with a checkpoint file (or the request made of it). */
export class CheckpointFormatError extends Error {
  /** The file (path or name) the error is about. */
  readonly file: string;
  /** The tensor the error is about, when there is one. */
  readonly tensor: string | undefined;
  constructor(file: string, message: string, tensor?: string) {
    super(`${file}: ${tensor !== undefined ? `tensor '${tensor}': ` : ''}${message}`);
    this.name = new.target.name;
    this.file = file;
    this.tensor = tensor;
  }
}

/** A malformed or inconsistent safetensors file. */
export class SafetensorsError extends CheckpointFormatError {}

/** A malformed PyTorch checkpoint (pickle, zip container or storage layout). */
export class TorchCheckpointError extends CheckpointFormatError {}

/** A pickle that asks for a global outside the allowlist (`posix.system`, `builtins.eval`, ...). */
export class UnsafePickleError extends TorchCheckpointError {
  /** The refused global, as `module.name`. */
  readonly global: string;
  constructor(file: string, global: string, detail = '') {
    super(
      file,
      `refused pickle global '${global}'${detail}: only the globals torch.save uses to rebuild tensors are allowed, ` +
        'a checkpoint is never allowed to run code',
    );
    this.global = global;
  }
}

/** A malformed zip container (central directory, ZIP64 records, local headers). */
export class ZipFormatError extends CheckpointFormatError {}

/** A malformed sharded-checkpoint index, or a shard it names that cannot be found. */
export class ShardIndexError extends CheckpointFormatError {}

/** A tensor name that the checkpoint does not hold. */
export class TensorNotFoundError extends CheckpointFormatError {
  constructor(file: string, tensor: string) {
    super(file, 'no such tensor in this checkpoint', tensor);
  }
}

/** A tensor that cannot be converted to the requested host type (e.g. int64 values beyond int32). */
export class DTypeConversionError extends CheckpointFormatError {}
