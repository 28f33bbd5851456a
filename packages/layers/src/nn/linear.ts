// Linear: y = x W^T + b, with W [outFeatures, inFeatures] as torch.nn.Linear stores it.

import { biasActivation, matmul, type Backend, type FusedBiasActivation, type Tensor } from '@lm/tensor-gpu';
import { initTensor } from '../init.js';
import { Module } from '../module.js';

export interface LinearOptions {
  bias?: boolean;
  backend?: Backend;
}

export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  declare weight: Tensor;
  declare bias: Tensor | null;

  constructor(inFeatures: number, outFeatures: number, options: LinearOptions = {}) {
    super();
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    // torch's default: kaiming_uniform(a=sqrt(5)) = U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
    const bound = inFeatures > 0 ? 1 / Math.sqrt(inFeatures) : 0;
    const init = { kind: 'uniform', low: -bound, high: bound } as const;
    this.registerParameter('weight', initTensor([outFeatures, inFeatures], init, options.backend));
    this.registerParameter('bias', options.bias === false ? null : initTensor([outFeatures], init, options.backend));
  }

  /** [..., in] -> [..., out]; with `activation`, the bias add and activation run as one kernel. */
  forward(x: Tensor, activation?: FusedBiasActivation): Tensor {
    if (x.shape[x.rank - 1] !== this.inFeatures) {
      throw new TypeError(`Linear(${this.inFeatures} -> ${this.outFeatures}): input [${x.shape.join(',')}] has last dim ${x.shape[x.rank - 1]}`);
    }
    const y = matmul(x, this.weight.transpose(0, 1));
    if (!this.bias) {
      if (!activation) return y;
      const out = activationOf(y, activation);
      y.dispose();
      return out;
    }
    const out = activation ? biasActivation(y, this.bias, activation) : y.add(this.bias);
    y.dispose();
    return out;
  }
}

function activationOf(x: Tensor, act: FusedBiasActivation): Tensor {
  switch (act) {
    case 'gelu':
      return x.gelu();
    case 'geluTanh':
      return x.geluTanh();
    case 'relu':
      return x.relu();
    case 'silu':
      return x.silu();
    case 'tanh':
      return x.tanh();
    case 'sigmoid':
      return x.sigmoid();
  }
}
