// Scoring of sentinel fills for t5-fill-rate: exact, and "sensible" (the right kind of word for each
// hidden slot), computed from the training sentences alone.

/**
 * The words seen at each position of `sentence`'s template in training: a training sentence shares the
 * template when it has as many words and differs in at most `maxDiff` of them (the corpus's templates
 * vary one subject and one or two fact words: `a baby cat is called a kitten .` for `a baby dog is called
 * a puppy .`, `the day before friday is thursday .` for `the day after friday is saturday .`).
 */
export function slotWords(sentence: readonly string[], training: Iterable<readonly string[]>, maxDiff = 2): Set<string>[] {
  const slots = sentence.map(() => new Set<string>());
  for (const t of training) {
    if (t.length !== sentence.length) continue;
    let diff = 0;
    for (let p = 0; p < t.length && diff <= maxDiff; p++) if (t[p] !== sentence[p]) diff++;
    if (diff > maxDiff) continue;
    t.forEach((w, p) => slots[p].add(w));
  }
  return slots;
}

/**
 * A fill of words [from, from + hidden) of `sentence` is sensible when it has `hidden` words and each is a
 * word seen in that slot in training (`slots` from `slotWords`): a wrong fact of the right kind counts
 * (`called a kitten` for `called a puppy`), a template word in the wrong place does not (`is called a`).
 */
export function isSensibleFill(fill: readonly string[], from: number, hidden: number, slots: readonly Set<string>[]): boolean {
  return fill.length === hidden && fill.every((w, i) => slots[from + i]?.has(w) ?? false);
}
