/** Gradient-norm chart view: one line per layer, a point per (downsampled) epoch, log scale. */
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
  }

  /**
   * Build the chart for a set of layer names.
   * @param {string[]} names
   * @param {SeriesHistory} history
   */
  build(names, history) {
    this.plot?.destroy();
    this.names = names;
    const width = Math.max(200, this.element.clientWidth || 320);
    const hidden = names.length - 1;
    const step = hidden > 1 ? (LAYER_COLORS.length - 1) / (hidden - 1) : 0;
    this.plot = new uPlot(
      {
        width,
        height: 130,
        legend: { show: true, live: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: false }, y: { distr: 3, log: 10 } },
        axes: [
          { size: 24, font: '10px sans-serif', grid: { stroke: '#eee' }, ticks: { size: 3 } },
          { size: 44, font: '10px sans-serif', grid: { stroke: '#eee' }, ticks: { size: 3 }, values: logTicks },
        ],
        series: [
          { label: 'Epoch' },
          ...names.map((name, i) => ({
            label: name,
            stroke: i === hidden ? OUTPUT_COLOR : LAYER_COLORS[Math.round(i * step)],
            width: 1.5,
            // uPlot's default: dots only while they have room, so one stepped epoch is visible.
          })),
        ],
      },
      /** @type {uPlot.AlignedData} */ (/** @type {unknown} */ (history.columns)),
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
    this.plot.setData(/** @type {uPlot.AlignedData} */ (/** @type {unknown} */ (history.columns)));
  }
}
