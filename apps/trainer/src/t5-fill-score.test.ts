import { describe, expect, it } from 'vitest';
import { isSensibleFill, slotWords } from './t5-fill-score.js';

const w = (s: string) => s.split(' ');
const training = [
  'a baby cat is called a kitten .',
  'a baby dog is called a puppy .',
  'the dog lives in the house .',
  'the day after friday is saturday .',
  'the day before friday is thursday .',
  'the day before monday is sunday .',
].map(w);

describe('slotWords', () => {
  it('collects the words of training sentences of the same length that differ in at most two words', () => {
    const slots = slotWords(w('a baby dog is called a puppy .'), training);
    expect([...slots[2]].sort()).toEqual(['cat', 'dog']);
    expect([...slots[6]].sort()).toEqual(['kitten', 'puppy']);
    expect([...slots[4]]).toEqual(['called']);
  });

  it('leaves out a sentence that differs in three words', () => {
    // `the day before monday is sunday .` differs from this one in after/friday/saturday.
    const slots = slotWords(w('the day after friday is saturday .'), training);
    expect([...slots[3]].sort()).toEqual(['friday']);
    expect([...slots[2]].sort()).toEqual(['after', 'before']);
    expect([...slots[5]].sort()).toEqual(['saturday', 'thursday']);
  });
});

describe('isSensibleFill', () => {
  const slots = slotWords(w('a baby dog is called a puppy .'), training);
  it('accepts a wrong fact of the right kind and the truth', () => {
    expect(isSensibleFill(w('called a kitten'), 4, 3, slots)).toBe(true);
    expect(isSensibleFill(w('called a puppy'), 4, 3, slots)).toBe(true);
  });
  it('rejects template words in the wrong slot, a word never seen there, and the wrong length', () => {
    expect(isSensibleFill(w('is called a'), 4, 3, slots)).toBe(false);
    expect(isSensibleFill(w('called a house'), 4, 3, slots)).toBe(false);
    expect(isSensibleFill(w('called a'), 4, 3, slots)).toBe(false);
    expect(isSensibleFill(w('called a puppy .'), 4, 3, slots)).toBe(false);
  });
});
