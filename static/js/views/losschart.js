/** Loss chart view: train and test loss per epoch (uPlot), with a log-scale toggle. */
import uPlot from '../../vendor/uplot/uPlot.esm.js';

/** @typedef {import('../history.js').SeriesHistory} SeriesHistory */

/**
 * Tick labels that stay readable over many decades (1e-4 rather than 0.0001 or 0).
 * @param {uPlot} _u
 * @param {number[]} splits
 */
function logTicks(_u, splits) {
  return splits.map((v) => (v === null ? '' : v >= 0.01 && v < 1e4 ? String(+v.toPrecision(2)) : v.toExponential(0)));
}

export class LossChartView {
  /** @param {HTMLElement} element */
  constructor(element) {
    this.element = element;
    /** @type {uPlot | null} */
    this.plot = null;
    this.logScale = false;
  }

  /**
   * Build the chart for the given scale (a log axis is a different uPlot scale distribution).
   * @param {boolean} logScale
   * @param {SeriesHistory} history
   */
  build(logScale, history) {
    this.plot?.destroy();
    this.logScale = logScale;
    const width = Math.max(200, this.element.clientWidth || 320);
    this.plot = new uPlot(
      {
        width,
        height: 110,
        legend: { show: true, live: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: false }, y: logScale ? { distr: 3, log: 10 } : { range: (_u, _min, max) => [0, max > 0 ? max * 1.05 : 1] } },
        axes: [
          { size: 24, font: '10px sans-serif', grid: { stroke: '#eee' }, ticks: { size: 3 } },
          { size: 40, font: '10px sans-serif', grid: { stroke: '#eee' }, ticks: { size: 3 }, values: logScale ? logTicks : undefined },
        ],
        series: [
          { label: 'Epoch' },
          // Points are uPlot's default: dots only while they have room (one epoch shows).
          { label: 'Train', stroke: '#999', width: 1.5 },
          { label: 'Test', stroke: '#000', width: 1.5 },
        ],
      },
      /** @type {uPlot.AlignedData} */ (/** @type {unknown} */ (history.columns)),
      this.element,
    );
  }

  /**
   * Redraw with the current history (the chart reads the columns as they are).
   * @param {SeriesHistory} history
   * @param {boolean} logScale
   */
  update(history, logScale) {
    if (!this.plot || logScale !== this.logScale) {
      this.build(logScale, history);
      return;
    }
    this.plot.setData(/** @type {uPlot.AlignedData} */ (/** @type {unknown} */ (history.columns)));
  }
}
