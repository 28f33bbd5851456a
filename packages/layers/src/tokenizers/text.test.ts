import { describe, expect, it } from 'vitest';
import { cleanText, isPunctuation, lowercaseOutsideTokens, padChineseChars, pySplit, pyStrip, splitOnTokens } from './text.js';

describe('text helpers (Python semantics)', () => {
  it('lowercases per character, keeping listed tokens verbatim', () => {
    expect(lowercaseOutsideTokens('ΟΔΟΣ [MASK] [Mask] İ', ['[MASK]'])).toBe('οδοσ [MASK] [mask] i\u0307');
  });

  it('splits out tokens leftmost-longest', () => {
    expect(splitOnTokens('a[CLS]b[CLS2]', ['[CLS]', '[CLS2]'])).toEqual([
      { text: 'a', isToken: false },
      { text: '[CLS]', isToken: true },
      { text: 'b', isToken: false },
      { text: '[CLS2]', isToken: true },
    ]);
    expect(splitOnTokens('', ['[CLS]'])).toEqual([]);
  });

  it('cleans, pads CJK, splits and strips like Python', () => {
    expect(cleanText('a\u0000b\u00adc\td\u2003e\ud83d')).toBe('abc d e');
    expect(padChineseChars('a中b\u{20001}')).toBe('a 中 b \u{20001} ');
    expect(pySplit(' a\u2028b\x1cc\ufeffd ')).toEqual(['a', 'b', 'c\ufeffd']);
    expect(pyStrip('\x85 a \u3000')).toBe('a');
    expect(['$', '¿', '´', '-', '、'].map(isPunctuation)).toEqual([true, true, false, true, true]);
  });
});
