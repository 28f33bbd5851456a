// A labelled heatmap on a canvas: rows (queries) x columns (keys), values in 0..1, token labels on both
// axes, the hovered cell reported through `onHover`. Canvas rather than DOM cells so a 512-token
// attention matrix stays cheap.
import { h } from './dom.js';

export interface HeatmapOptions {
  rowLabels: string[];
  colLabels: string[];
  /** Row-major values, rows x cols. */
  values: ArrayLike<number>;
  /** Largest cell edge in CSS pixels (shrinks for long inputs). */
  maxCell?: number;
  /** Pixel budget for the matrix itself. */
  maxSize?: number;
  /** The value drawn in the darkest colour (default 1); larger values saturate. */
  scale?: number;
  onHover?: (cell: { row: number; col: number; value: number } | null) => void;
}

/** White -> deep blue, perceptually even enough for probabilities. */
export function colour(v: number): string {
  const t = Math.max(0, Math.min(1, v));
  const r = Math.round(255 - t * (255 - 8));
  const g = Math.round(255 - t * (255 - 48));
  const b = Math.round(255 - t * (255 - 107));
  return `rgb(${r},${g},${b})`;
}

export function heatmap(options: HeatmapOptions): HTMLCanvasElement {
  const { rowLabels, colLabels, values } = options;
  const scale = options.scale ?? 1;
  const rows = rowLabels.length;
  const cols = colLabels.length;
  const font = '12px ui-monospace, SFMono-Regular, Menlo, monospace';
  const measure = document.createElement('canvas').getContext('2d')!;
  measure.font = font;
  const labelWidth = (labels: string[]) => Math.min(120, Math.ceil(Math.max(0, ...labels.map((l) => measure.measureText(l).width))) + 8);
  const left = labelWidth(rowLabels);
  const top = labelWidth(colLabels);
  const cell = Math.max(3, Math.min(options.maxCell ?? 28, Math.floor((options.maxSize ?? 520) / Math.max(rows, cols))));
  const width = left + cols * cell + 2;
  const height = top + rows * cell + 2;
  const dpr = globalThis.devicePixelRatio || 1;
  const canvas = h('canvas', { class: 'heatmap', width: Math.round(width * dpr), height: Math.round(height * dpr) });
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  const ctx = canvas.getContext('2d')!;
  ctx.scale(dpr, dpr);
  ctx.font = font;
  ctx.fillStyle = '#333';
  ctx.textBaseline = 'middle';
  const showLabels = cell >= 9;
  if (showLabels) {
    ctx.textAlign = 'right';
    rowLabels.forEach((label, r) => ctx.fillText(label, left - 4, top + r * cell + cell / 2, left - 6));
    ctx.save();
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = 'left';
    colLabels.forEach((label, c) => ctx.fillText(label, -top + 4, left + c * cell + cell / 2, top - 6));
    ctx.restore();
  }
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      ctx.fillStyle = colour(values[r * cols + c] / scale);
      ctx.fillRect(left + c * cell, top + r * cell, cell, cell);
    }
  }
  ctx.strokeStyle = '#bbb';
  ctx.strokeRect(left - 0.5, top - 0.5, cols * cell + 1, rows * cell + 1);

  if (options.onHover) {
    const onHover = options.onHover;
    canvas.addEventListener('mousemove', (event) => {
      const rect = canvas.getBoundingClientRect();
      const col = Math.floor((event.clientX - rect.left - left) / cell);
      const row = Math.floor((event.clientY - rect.top - top) / cell);
      onHover(row >= 0 && row < rows && col >= 0 && col < cols ? { row, col, value: values[row * cols + col] } : null);
    });
    canvas.addEventListener('mouseleave', () => onHover(null));
  }
  return canvas;
}

/** A colour legend from 0 to `scale`. */
export function legend(scale: number): HTMLElement {
  const stops = Array.from({ length: 6 }, (_, i) => colour(i / 5)).join(', ');
  return h(
    'span',
    { class: 'legend' },
    '0',
    h('span', { class: 'legend-bar', style: { background: `linear-gradient(to right, ${stops})` } }),
    scale.toFixed(scale < 0.1 ? 3 : 2),
  );
}

/** A small unlabelled heatmap (a head thumbnail), darkest at `scale`. */
export function thumbnail(values: ArrayLike<number>, n: number, size = 64, scale = 1): HTMLCanvasElement {
  const canvas = h('canvas', { class: 'thumb', width: n, height: n });
  canvas.style.width = `${size}px`;
  canvas.style.height = `${size}px`;
  const ctx = canvas.getContext('2d')!;
  const image = ctx.createImageData(n, n);
  for (let i = 0; i < n * n; i++) {
    const t = Math.max(0, Math.min(1, values[i] / scale));
    image.data[4 * i] = 255 - t * (255 - 8);
    image.data[4 * i + 1] = 255 - t * (255 - 48);
    image.data[4 * i + 2] = 255 - t * (255 - 107);
    image.data[4 * i + 3] = 255;
  }
  ctx.putImageData(image, 0, 0);
  return canvas;
}
