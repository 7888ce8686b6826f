/** Gradient-norm chart view: one line per layer, a point per (downsampled) epoch, log scale. */
import uPlot from '../../vendor/uplot/uPlot.esm.js';
import { chartData, legendEpoch, legendValue, logRange, logTicks } from './chart_scale.js';

/** @typedef {import('../history.js').SeriesHistory} SeriesHistory */
/** @typedef {import('./chart_scale.js').Columns} Columns */

/** Viridis from the first hidden layer (dark) to the last (green), so depth reads at a glance. */
const LAYER_COLORS = ['#440154', '#482878', '#3e4989', '#31688e', '#26828e', '#1f9e89', '#35b779', '#6ece58'];
/** The output layer, drawn apart from the hidden ones. */
const OUTPUT_COLOR = '#f59322';

export class GradChartView {
  /** @param {HTMLElement} element */
  constructor(element) {
    this.element = element;
    /** @type {uPlot | null} */
    this.plot = null;
    /** @type {string[]} */
    this.names = [];
    /** @type {Columns} the points drawn, unclamped: the legend shows them on hover */
    this.raw = [];
  }

  /**
   * Build the chart for a set of layer names.
   * @param {string[]} names
   * @param {SeriesHistory} history
   */
  build(names, history) {
    this.plot?.destroy();
    this.names = names;
    const { raw, plotted } = chartData(history, true);
    this.raw = raw;
    const width = Math.max(200, this.element.clientWidth || 320);
    const hidden = names.length - 1;
    const step = hidden > 1 ? (LAYER_COLORS.length - 1) / (hidden - 1) : 0;
    const value = legendValue(() => this.raw);
    this.plot = new uPlot(
      {
        width,
        height: 130,
        // Live: hovering an epoch shows every layer's norm; otherwise the newest ones.
        legend: { show: true, live: true },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: false }, y: { distr: 3, log: 10, range: logRange } },
        axes: [
          { size: 24, font: '10px sans-serif', grid: { stroke: '#eee' }, ticks: { size: 3 } },
          { size: 44, font: '10px sans-serif', grid: { stroke: '#eee' }, ticks: { size: 3 }, values: logTicks },
        ],
        series: [
          { label: 'Epoch', value: legendEpoch(() => this.raw) },
          ...names.map((name, i) => ({
            label: name,
            stroke: i === hidden ? OUTPUT_COLOR : LAYER_COLORS[Math.round(i * step)],
            width: 1, // a hairline: see losschart.js
            value,
            // uPlot's default: dots only while they have room, so one stepped epoch is visible.
          })),
        ],
      },
      /** @type {uPlot.AlignedData} */ (/** @type {unknown} */ (plotted)),
      this.element,
    );
  }

  /**
   * Redraw; rebuilds when the layers changed.
   * @param {string[]} names
   * @param {SeriesHistory} history
   */
  update(names, history) {
    // No curve before the first trained epoch: say so instead of drawing empty axes.
    this.element.classList.toggle('empty', history.length === 0);
    if (!this.plot || names.join('|') !== this.names.join('|')) {
      this.build(names, history);
      return;
    }
    const { raw, plotted } = chartData(history, true);
    this.raw = raw;
    this.plot.setData(/** @type {uPlot.AlignedData} */ (/** @type {unknown} */ (plotted)));
  }
}
