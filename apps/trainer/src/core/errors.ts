// Errors the trainer reports before (or instead of) training: each names the field or file at fault.

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(
    message: string,
    /** One entry per bad field: `training.lr: expected a number > 0, got -1`. */
    readonly issues: string[] = [],
  ) {
    super(message);
  }
}

/** A problem with the corpus or tokenizer files. */
export class DataError extends Error {
  override name = 'DataError';
}

/** A problem with the checkpoint or output folders. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
}
