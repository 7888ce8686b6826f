/**
 * What the loss and gradient-norm charts share: the data they hand uPlot (a bounded copy that a
 * log axis can always draw), tick labels over many decades, and legend values read from the
 * unclamped copy, so hovering shows the real numbers.
 */
import uPlot from '../../vendor/uplot/uPlot.esm.js';

/** @typedef {import('../history.js').SeriesHistory} SeriesHistory */
/** @typedef {(number | null)[][]} Columns */

/**
 * The range a log axis shows. uPlot 1.6's log-axis tick generator degenerates when the axis
 * reaches below ~1e-24: it pushes ticks for tens of seconds and ends in "RangeError: Invalid array
 * length". A vanishing gradient's float32 norm goes there (1e-31, and exactly 0) at learning rate
 * 10, which froze the page. Values are clamped into [LOG_FLOOR, LOG_CEIL] before they reach the
 * chart: a norm of 0 is drawn on the floor, "vanished", and the legend says its real value.
 */
export const LOG_FLOOR = 1e-12;
export const LOG_CEIL = 1e12;

/**
 * The chart's copy of a history: `raw` as recorded (the legend reads it), `plotted` the same
 * points with every value a log axis cannot draw clamped into [LOG_FLOOR, LOG_CEIL].
 *
 * A copy, not the live arrays: the history keeps appending (and halves when full) between two
 * redraws, and the cursor must read the points the chart drew.
 * @param {SeriesHistory} history
 * @param {boolean} logScale
 * @returns {{raw: Columns, plotted: Columns}}
 */
export function chartData(history, logScale) {
  const raw = history.columns.map((column) => column.slice());
  if (!logScale) return { raw, plotted: raw };
  const plotted = raw.map((column, s) => (s === 0 ? column : column.map(clampForLog)));
  return { raw, plotted };
}

/**
 * A value a log axis can draw: null stays a gap, anything else (0, negative, tiny, huge) is
 * clamped into [LOG_FLOOR, LOG_CEIL].
 * @param {number | null} v
 */
export function clampForLog(v) {
  if (v === null || Number.isNaN(v)) return null;
  return v < LOG_FLOOR ? LOG_FLOOR : v > LOG_CEIL ? LOG_CEIL : v;
}

/**
 * A log axis's range: whole decades around the data, never beyond [LOG_FLOOR, LOG_CEIL] (the
 * data is clamped already; this also bounds an empty or odd scale).
 * @param {uPlot} _u
 * @param {number | null} min
 * @param {number | null} max
 * @returns {uPlot.Range.MinMax}
 */
export function logRange(_u, min, max) {
  const lo = min === null || !Number.isFinite(min) ? 0.1 : clampForLog(min) ?? 0.1;
  const hi = max === null || !Number.isFinite(max) ? 1 : clampForLog(max) ?? 1;
  return uPlot.rangeLog(Math.min(lo, hi), Math.max(lo, hi), 10, true);
}

/**
 * Tick labels that stay readable over many decades (1e-4 rather than 0.0001 or 0).
 * @param {uPlot} _u
 * @param {number[]} splits
 */
export function logTicks(_u, splits) {
  return splits.map((v) => (v === null ? '' : v >= 0.01 && v < 1e4 ? String(+v.toPrecision(2)) : v.toExponential(0)));
}

/**
 * A legend number: 4 significant digits, exponent notation when tiny or huge, a dash for none.
 * @param {number | null | undefined} v
 */
export function formatValue(v) {
  if (v === null || v === undefined || Number.isNaN(v)) return '–';
  if (v === 0) return '0';
  const size = Math.abs(v);
  return size >= 1e-3 && size < 1e5 ? String(+v.toPrecision(4)) : v.toExponential(3);
}

/**
 * A series' legend value: the raw value at the hovered point, else the newest one (so the
 * legend reads as the current values until the pointer picks an epoch).
 * @param {() => Columns} raw the columns the chart drew, unclamped
 * @returns {(u: uPlot, v: number | null, seriesIdx: number, idx: number | null) => string}
 */
export function legendValue(raw) {
  return (_u, _v, seriesIdx, idx) => {
    const column = raw()[seriesIdx] ?? [];
    const at = idx ?? column.length - 1;
    return at < 0 ? '–' : formatValue(column[at]);
  };
}

/**
 * The epoch in the legend: the hovered one, else the newest.
 * @param {() => Columns} raw
 * @returns {(u: uPlot, v: number | null, seriesIdx: number, idx: number | null) => string}
 */
export function legendEpoch(raw) {
  return (_u, _v, _seriesIdx, idx) => {
    const epochs = raw()[0] ?? [];
    const epoch = epochs[idx ?? epochs.length - 1];
    return epoch === null || epoch === undefined ? '–' : String(epoch);
  };
}
