/** Loss chart view: train and test loss per epoch (uPlot), with a log-scale toggle. */
import uPlot from '../../vendor/uplot/uPlot.esm.js';
import { chartData, legendEpoch, legendValue, logRange, logTicks } from './chart_scale.js';

/** @typedef {import('../history.js').SeriesHistory} SeriesHistory */
/** @typedef {import('./chart_scale.js').Columns} Columns */

export class LossChartView {
  /** @param {HTMLElement} element */
  constructor(element) {
    this.element = element;
    /** @type {uPlot | null} */
    this.plot = null;
    this.logScale = false;
    /** @type {Columns} the points drawn, unclamped: the legend shows them on hover */
    this.raw = [];
  }

  /**
   * Build the chart for the given scale (a log axis is a different uPlot scale distribution).
   * @param {boolean} logScale
   * @param {SeriesHistory} history
   */
  build(logScale, history) {
    this.plot?.destroy();
    this.logScale = logScale;
    const { raw, plotted } = chartData(history, logScale);
    this.raw = raw;
    const width = Math.max(200, this.element.clientWidth || 320);
    const value = legendValue(() => this.raw);
    this.plot = new uPlot(
      {
        width,
        height: 110,
        // Live: hovering an epoch shows its losses; otherwise the newest ones.
        legend: { show: true, live: true },
        cursor: { drag: { x: false, y: false } },
        scales: {
          x: { time: false },
          y: logScale ? { distr: 3, log: 10, range: logRange } : { range: (_u, _min, max) => [0, max > 0 ? max * 1.05 : 1] },
        },
        axes: [
          { size: 24, font: '10px sans-serif', grid: { stroke: '#eee' }, ticks: { size: 3 } },
          { size: 40, font: '10px sans-serif', grid: { stroke: '#eee' }, ticks: { size: 3 }, values: logScale ? logTicks : undefined },
        ],
        series: [
          { label: 'Epoch', value: legendEpoch(() => this.raw) },
          // 1 px lines: a wider one is stroked as a filled outline in software, ~4x the cost of
          // a hairline (a 9-series chart of 1,000 points: 15 ms against 4 ms per redraw).
          // Points are uPlot's default: dots only while they have room (one epoch shows).
          { label: 'Train', stroke: '#999', width: 1, value },
          { label: 'Test', stroke: '#000', width: 1, value },
        ],
      },
      /** @type {uPlot.AlignedData} */ (/** @type {unknown} */ (plotted)),
      this.element,
    );
  }

  /**
   * Redraw with the current history.
   * @param {SeriesHistory} history
   * @param {boolean} logScale
   */
  update(history, logScale) {
    if (!this.plot || logScale !== this.logScale) {
      this.build(logScale, history);
      return;
    }
    const { raw, plotted } = chartData(history, logScale);
    this.raw = raw;
    this.plot.setData(/** @type {uPlot.AlignedData} */ (/** @type {unknown} */ (plotted)));
  }
}
