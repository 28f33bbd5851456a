// LayerNorm (torch.nn.LayerNorm) and RMSNorm (T5's variance-only LayerNorm, no mean, no bias).

import { layerNorm, rmsNorm, type Backend, type Tensor } from '@lm/tensor-gpu';
import { initTensor } from '../init.js';
import { Module } from '../module.js';

export interface LayerNormOptions {
  eps?: number;
  elementwiseAffine?: boolean;
  bias?: boolean;
  backend?: Backend;
}

export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number;
  declare weight: Tensor | null;
  declare bias: Tensor | null;

  constructor(normalizedShape: number | number[], options: LayerNormOptions = {}) {
    super();
    this.normalizedShape = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
    this.eps = options.eps ?? 1e-5;
    const affine = options.elementwiseAffine ?? true;
    this.registerParameter('weight', affine ? initTensor(this.normalizedShape, { kind: 'constant', value: 1 }, options.backend) : null);
    this.registerParameter('bias', affine && options.bias !== false ? initTensor(this.normalizedShape, { kind: 'constant', value: 0 }, options.backend) : null);
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

export class RMSNorm extends Module {
  readonly eps: number;
  declare weight: Tensor;

  constructor(dim: number, options: { eps?: number; backend?: Backend } = {}) {
    super();
    this.eps = options.eps ?? 1e-6;
    this.registerParameter('weight', initTensor([dim], { kind: 'constant', value: 1 }, options.backend));
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}
