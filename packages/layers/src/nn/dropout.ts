// Dropout: zeroes elements with probability p while training; the identity in eval mode.

import { dropout, type Tensor } from '@lm/tensor-gpu';
import { Module } from '../module.js';

export class Dropout extends Module {
  readonly p: number;
  constructor(p = 0.5) {
    super();
    if (!(p >= 0 && p <= 1)) throw new RangeError(`Dropout: p must be in [0, 1], got ${p}`);
    this.p = p;
  }
  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training);
  }
}
