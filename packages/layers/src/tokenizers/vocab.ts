// vocab.txt: one token per line, the line number is the id (BERT's `load_vocab`).

/**
 * Parses a vocab.txt the way `load_vocab` reads it: Python text mode splits lines on \n, \r\n and a
 * lone \r; each line minus its line break is a token (empty lines included); a final line break does
 * not start another token. A token listed twice keeps its LAST line's id (a dict assignment), so the
 * map can hold fewer entries than the file has lines.
 */
export function parseVocab(text: string): Map<string, number> {
  const lines = text.split(/\r\n|\r|\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  const vocab = new Map<string, number>();
  lines.forEach((token, id) => vocab.set(token, id));
  return vocab;
}

/** The inverse mapping; for a token listed twice only the id it kept maps back to it. */
export function invertVocab(vocab: ReadonlyMap<string, number>): Map<number, string> {
  const ids = new Map<number, string>();
  for (const [token, id] of vocab) ids.set(id, token);
  return ids;
}
