/** A tokenizer could not be built, loaded, or asked to do what it was asked (the message says which). */
export class TokenizerError extends Error {
  override name = 'TokenizerError';
}

/**
 * Padding was asked for but the tokenizer has no padding token (`resolveStrategies`' check; a
 * ReformerTokenizer without a pad_token, say). A class of its own so callers can tell it apart.
 */
export class MissingPadTokenError extends TokenizerError {
  override name = 'MissingPadTokenError';
}
