// The conformance runners of the chatglm family (../shared/fixtures; format in its README.md). Today:
// the tokenizer (tokenizer-conformance.ts).

import type { ConformanceFamily } from '@lm/layers/testing';
import { tokenizerClasses } from './tokenizer-conformance.js';

export const conformance: ConformanceFamily = {
  family: 'chatglm',
  classes: { ...tokenizerClasses },
};
