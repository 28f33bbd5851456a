// The character-level steps of the slow (pure Python) Hugging Face BERT tokenizer that the
// `@huggingface/tokenizers` library does differently, written to the Python semantics:
// `PreTrainedTokenizer.tokenize` (per-character lowercasing around special tokens, the added-token
// trie split) and `BasicTokenizer` (`_clean_text`, `_tokenize_chinese_chars`, NFC, `str.split()`).
// Reference: transformers 4.37 `tokenization_utils.py` and `models/bert/tokenization_bert.py`.
//
// Everything here iterates code points (`for..of`), like Python strings, never UTF-16 units.

/** Characters Python's `str.isspace()` (and so `str.split()` / `str.strip()`) treats as whitespace. */
const PY_SPACE = '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PY_SPLIT = new RegExp(`[${PY_SPACE}]+`, 'u');
const PY_STRIP = new RegExp(`^[${PY_SPACE}]+|[${PY_SPACE}]+$`, 'gu');
const PY_LSTRIP = new RegExp(`^[${PY_SPACE}]+`, 'u');
const PY_RSTRIP = new RegExp(`[${PY_SPACE}]+$`, 'u');

/** Python `text.split()`: split on runs of whitespace, no empty pieces. */
export function pySplit(text: string): string[] {
  return text.split(PY_SPLIT).filter((piece) => piece.length > 0);
}

/** Python `text.strip()`. */
export function pyStrip(text: string): string {
  return text.replace(PY_STRIP, '');
}

/** Python `text.lstrip()`. */
export function pyLstrip(text: string): string {
  return text.replace(PY_LSTRIP, '');
}

/** Python `text.rstrip()`. */
export function pyRstrip(text: string): string {
  return text.replace(PY_RSTRIP, '');
}

/** `_is_whitespace`: space, \t, \n, \r, or Unicode category Zs. */
export function isWhitespace(ch: string): boolean {
  return ch === ' ' || ch === '\t' || ch === '\n' || ch === '\r' || /^\p{Zs}$/u.test(ch);
}

/** `_is_control`: any category C* (Cc, Cf, Cn, Co, Cs) except \t, \n, \r. */
export function isControl(ch: string): boolean {
  if (ch === '\t' || ch === '\n' || ch === '\r') return false;
  return /^\p{C}$/u.test(ch);
}

/** `_is_punctuation`: the ASCII non-alphanumeric ranges, or Unicode category P*. */
export function isPunctuation(ch: string): boolean {
  const cp = ch.codePointAt(0)!;
  if ((cp >= 33 && cp <= 47) || (cp >= 58 && cp <= 64) || (cp >= 91 && cp <= 96) || (cp >= 123 && cp <= 126)) {
    return true;
  }
  return /^\p{P}$/u.test(ch);
}

/** `_is_chinese_char`: the CJK Unified Ideographs blocks BERT pads with spaces (not Hangul or kana). */
export function isChineseChar(cp: number): boolean {
  return (
    (cp >= 0x4e00 && cp <= 0x9fff) ||
    (cp >= 0x3400 && cp <= 0x4dbf) ||
    (cp >= 0x20000 && cp <= 0x2a6df) ||
    (cp >= 0x2a700 && cp <= 0x2b73f) ||
    (cp >= 0x2b740 && cp <= 0x2b81f) ||
    (cp >= 0x2b820 && cp <= 0x2ceaf) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0x2f800 && cp <= 0x2fa1f)
  );
}

/** `_clean_text`: drop U+0000, U+FFFD and control characters; map whitespace to a space. */
export function cleanText(text: string): string {
  let out = '';
  for (const ch of text) {
    const cp = ch.codePointAt(0)!;
    if (cp === 0 || cp === 0xfffd || isControl(ch)) continue;
    out += isWhitespace(ch) ? ' ' : ch;
  }
  return out;
}

/** `_tokenize_chinese_chars`: surround every CJK ideograph with spaces. */
export function padChineseChars(text: string): string {
  let out = '';
  for (const ch of text) out += isChineseChar(ch.codePointAt(0)!) ? ` ${ch} ` : ch;
  return out;
}

/**
 * The base class's `do_lower_case` pass: `re.sub(r"(special)|(.+?)", ...)` lowercases the text ONE
 * CHARACTER AT A TIME, leaving special tokens found verbatim untouched. One character at a time means
 * Σ always becomes σ (never the word-final ς that `String.prototype.toLowerCase` picks), and `.`
 * does not match "\n", which is kept as is (lowercasing would not change it anyway).
 */
export function lowercaseOutsideTokens(text: string, keep: readonly string[]): string {
  let out = '';
  let i = 0;
  while (i < text.length) {
    const hit = keep.find((token) => token.length > 0 && text.startsWith(token, i));
    if (hit !== undefined) {
      out += hit;
      i += hit.length;
      continue;
    }
    const ch = String.fromCodePoint(text.codePointAt(i)!);
    out += ch === '\n' ? ch : ch.toLowerCase();
    i += ch.length;
  }
  return out;
}

/** One piece of `splitOnTokens`' output: plain text, or one of the tokens found verbatim. */
export interface TextPiece {
  text: string;
  isToken: boolean;
}

/**
 * The added-token trie split: cut out every occurrence of `tokens`, taking at the earliest position
 * the longest token that starts there. Empty plain pieces are dropped.
 */
export function splitOnTokens(text: string, tokens: readonly string[]): TextPiece[] {
  const pieces: TextPiece[] = [];
  const candidates = tokens.filter((token) => token.length > 0);
  let start = 0;
  let i = 0;
  while (i < text.length) {
    let best = '';
    for (const token of candidates) {
      if (token.length > best.length && text.startsWith(token, i)) best = token;
    }
    if (best.length === 0) {
      i += 1;
      continue;
    }
    if (i > start) pieces.push({ text: text.slice(start, i), isToken: false });
    pieces.push({ text: best, isToken: true });
    i += best.length;
    start = i;
  }
  if (text.length > start) pieces.push({ text: text.slice(start), isToken: false });
  return pieces;
}

/** How an added token eats the whitespace beside it (`AddedToken.lstrip` / `rstrip`). */
export interface AddedTokenStrip {
  lstrip: boolean;
  rstrip: boolean;
}

/**
 * `PreTrainedTokenizer.tokenize`'s split on added tokens: `splitOnTokens`, then a token with `rstrip`
 * strips the whitespace at the start of the text after it and one with `lstrip` the whitespace at the
 * end of the text before it (Python `str.lstrip()` / `rstrip()`); text left empty is dropped.
 */
export function splitOnAddedTokens(text: string, tokens: ReadonlyMap<string, AddedTokenStrip>): TextPiece[] {
  const pieces = splitOnTokens(text, [...tokens.keys()]);
  pieces.forEach((piece, i) => {
    if (!piece.isToken) return;
    const strip = tokens.get(piece.text)!;
    const right = pieces[i + 1];
    const left = pieces[i - 1];
    if (strip.rstrip && right && !right.isToken) right.text = pyLstrip(right.text);
    if (strip.lstrip && left && !left.isToken) left.text = pyRstrip(left.text);
  });
  return pieces.filter((piece) => piece.isToken || piece.text.length > 0);
}
