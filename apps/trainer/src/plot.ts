// Loss curves as a PNG a person can open: the metrics JSONL -> a Vega-Lite spec (training loss, its
// moving average, validation loss; the validation token accuracy below) -> SVG with Vega's
// headless renderer -> PNG with resvg. No hand-drawn pixels; the same spec renders in any Vega tool.

import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Resvg } from '@resvg/resvg-js';
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import { DataError } from './core/errors.js';
import { readMetrics, type MetricsRecord } from './metrics.js';

interface Point {
  step: number;
  value: number;
  series: string;
}

/** Exponential moving average, debiased (as TensorBoard's smoothing). */
function smooth(values: number[], weight: number): number[] {
  let last = 0;
  return values.map((v, i) => {
    last = last * weight + (1 - weight) * v;
    return last / (1 - weight ** (i + 1));
  });
}

/** Accuracy metrics by objective (mlm-nsp/mlm, causal-lm/prefix-lm, span-corruption) and their names on the plot. */
const ACCURACIES: readonly (readonly [string, string])[] = [
  ['mlmAccuracy', 'masked-token accuracy'],
  ['nextTokenAccuracy', 'next-token accuracy'],
  ['targetAccuracy', 'target-token accuracy'],
];

export function plotSpec(records: readonly MetricsRecord[], title: string): vegaLite.TopLevelSpec {
  const train = records.filter((r) => r.type === 'train' && typeof r.loss === 'number');
  const evals = records.filter((r) => r.type === 'eval' && typeof r.loss === 'number');
  const smoothed = smooth(train.map((r) => r.loss as number), train.length > 50 ? 0.9 : 0.6);
  const lossPoints: Point[] = [
    ...train.map((r) => ({ step: r.step, value: r.loss as number, series: 'train loss' })),
    ...train.map((r, i) => ({ step: r.step, value: smoothed[i], series: 'train loss (smoothed)' })),
    ...evals.map((r) => ({ step: r.step, value: r.loss as number, series: 'validation loss' })),
  ];
  // The objective's token accuracy (the first of these its evaluations report).
  const [accKey, accName] = ACCURACIES.find(([k]) => evals.some((r) => typeof r[k] === 'number')) ?? ACCURACIES[0];
  const accSeries = `validation ${accName}`;
  const accPoints: Point[] = evals.filter((r) => typeof r[accKey] === 'number').map((r) => ({ step: r.step, value: r[accKey] as number, series: accSeries }));
  const colors = {
    domain: ['train loss', 'train loss (smoothed)', 'validation loss', accSeries],
    range: ['#9ecae9', '#1f77b4', '#e45756', '#54a24b'],
  };
  const x = { field: 'step', type: 'quantitative', title: 'step' } as const;
  const color = { field: 'series', type: 'nominal', scale: colors, legend: { orient: 'top', title: null, labelLimit: 400 } } as const;
  const lossLayer = {
    width: 640,
    height: 260,
    data: { values: lossPoints },
    layer: [
      {
        transform: [{ filter: "datum.series !== 'validation loss'" }],
        mark: { type: 'line', strokeWidth: 1.5 },
        encoding: { x, y: { field: 'value', type: 'quantitative', title: 'loss' }, color },
      },
      {
        transform: [{ filter: "datum.series === 'validation loss'" }],
        mark: { type: 'line', point: true, strokeWidth: 2 },
        encoding: { x, y: { field: 'value', type: 'quantitative' }, color },
      },
    ],
  };
  const accPanel = {
    width: 640,
    height: 140,
    data: { values: accPoints },
    mark: { type: 'line', point: true, strokeWidth: 2 },
    encoding: {
      x,
      y: { field: 'value', type: 'quantitative', title: 'accuracy', scale: { domain: [0, 1] } },
      color,
    },
  };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    background: 'white',
    padding: 12,
    vconcat: accPoints.length ? [lossLayer, accPanel] : [lossLayer],
    resolve: { scale: { color: 'shared' } },
  } as vegaLite.TopLevelSpec;
}

/** SVG of the loss curves in a metrics file. */
export async function renderPlotSvg(records: readonly MetricsRecord[], title: string): Promise<string> {
  const { spec } = vegaLite.compile(plotSpec(records, title));
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/** Renders the metrics file's curves to a PNG at `pngPath`; returns the path. */
export async function renderPlot(metricsPath: string, pngPath: string, title = 'lm-train'): Promise<string> {
  const kind = (() => {
    try {
      return statSync(metricsPath).isFile() ? 'file' : 'other';
    } catch {
      return null;
    }
  })();
  if (kind === null) throw new DataError(`plot: ${metricsPath} does not exist (expected the metrics.jsonl of a run)`);
  if (kind === 'other') throw new DataError(`plot: ${metricsPath} is not a file (expected the metrics.jsonl of a run)`);
  let records: MetricsRecord[];
  try {
    records = readMetrics(metricsPath);
  } catch (e) {
    throw new DataError(`plot: ${(e as Error).message}`);
  }
  if (!records.some((r) => r.type === 'train')) throw new DataError(`plot: ${metricsPath} has no training records to plot`);
  const svg = await renderPlotSvg(records, title);
  const png = new Resvg(svg, { fitTo: { mode: 'zoom', value: 2 }, background: 'white', font: { loadSystemFonts: true } }).render().asPng();
  try {
    mkdirSync(dirname(pngPath), { recursive: true });
    writeFileSync(pngPath, png);
  } catch (e) {
    throw new DataError(`plot: cannot write ${pngPath} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return pngPath;
}
