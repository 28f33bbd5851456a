import { describe, expect, it } from 'vitest';
import type { MetricsRecord } from './metrics.js';
import { plotSpec } from './plot.js';

/** The accuracy panel's points (series, value), or null when the plot has none. */
function accuracyPanel(records: MetricsRecord[]): { series: string; value: number }[] | null {
  const spec = plotSpec(records, 't') as unknown as { vconcat: { data: { values: { series: string; value: number }[] } }[] };
  return spec.vconcat.length === 2 ? spec.vconcat[1].data.values.map(({ series, value }) => ({ series, value })) : null;
}

const train: MetricsRecord = { type: 'train', step: 1, loss: 3 };

describe('plotSpec', () => {
  it("plots the objective's token accuracy under the loss", () => {
    expect(accuracyPanel([train, { type: 'eval', step: 1, loss: 3, mlmAccuracy: 0.25, nspAccuracy: 0.5 }])).toEqual([{ series: 'validation masked-token accuracy', value: 0.25 }]);
    expect(accuracyPanel([train, { type: 'eval', step: 1, loss: 3, nextTokenAccuracy: 0.4 }])).toEqual([{ series: 'validation next-token accuracy', value: 0.4 }]);
    expect(accuracyPanel([train, { type: 'eval', step: 1, loss: 3, targetAccuracy: 0.1 }])).toEqual([{ series: 'validation target-token accuracy', value: 0.1 }]);
  });

  it('has no accuracy panel without an accuracy', () => {
    expect(accuracyPanel([train, { type: 'eval', step: 1, loss: 3 }])).toBeNull();
  });
});
