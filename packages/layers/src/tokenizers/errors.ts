/** A tokenizer could not be built, loaded, or asked to do what it was asked (the message says which). */
export class TokenizerError extends Error {
  override name = 'TokenizerError';
}
