// Token ids must index the vocabulary: the one check behind every T5 entry point (the Hugging Face stacks,
// labels, generate, Megatron's T5Model), so each names its argument, the bad id and where it is the same way.

/** The flat index of the first id outside [0, vocabSize) (`ignore`, e.g. -100 for labels, allowed), or -1. */
export function idOutsideVocabulary(data: ArrayLike<number>, vocabSize: number, ignore?: number): number {
  for (let i = 0; i < data.length; i++) {
    const id = data[i];
    if (id !== ignore && (id < 0 || id >= vocabSize)) return i;
  }
  return -1;
}

/** Throws `<what> id <id> at flat index <i> is outside the vocabulary [0, vocabSize)` (a RangeError unless `error` makes another). */
export function checkIdsInVocabulary(data: ArrayLike<number>, vocabSize: number, what: string, error: (message: string) => Error = (m) => new RangeError(m)): void {
  const bad = idOutsideVocabulary(data, vocabSize);
  if (bad >= 0) throw error(`${what} id ${data[bad]} at flat index ${bad} is outside the vocabulary [0, ${vocabSize})`);
}
