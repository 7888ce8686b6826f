/** Output view: the decision heatmap, the train (and test) points over it, click to add a point. */
import { CLASS_COLORS, classColor, divergingCss } from '../colors.js';
import { drawClassField, drawScalarField } from '../heatmap.js';

/** @typedef {import('../types.js').Frame} Frame */
/** @typedef {import('../types.js').DataPoints} DataPoints */

/** Plot size in CSS px (the canvases are scaled to it). */
const SIZE = 320;

/**
 * Colour of a point by problem kind and label.
 * @param {string} problem
 * @param {number} label
 */
export function pointColor(problem, label) {
  return problem === 'regression' ? divergingCss(label) : classColor(problem, label);
}

/**
 * Map a frame's output values into [-1, 1] for the diverging scale.
 * @param {string} problem
 * @returns {(v: number) => number}
 */
export function outputToUnit(problem) {
  // Binary outputs are P(class 1) in [0, 1]; regression predictions are drawn as they are.
  return problem === 'binary' ? (p) => 2 * p - 1 : (v) => v;
}

export class OutputView {
  /**
   * @param {HTMLCanvasElement} heatmap
   * @param {HTMLCanvasElement} points
   * @param {HTMLElement} legend
   */
  constructor(heatmap, points, legend) {
    this.heatmap = heatmap;
    this.points = points;
    this.legend = legend;
    this.extent = [-6, 6, -6, 6];
    const ratio = window.devicePixelRatio || 1;
    points.width = SIZE * ratio;
    points.height = SIZE * ratio;
    /** @type {string} legend key, to rebuild it only when it changes */
    this.legendKey = '';
  }

  /**
   * Call `handler(x1, x2)` when the user clicks on the plot.
   * @param {(x1: number, x2: number) => void} handler
   */
  bindAddPoint(handler) {
    this.points.addEventListener('click', (event) => {
      const rect = this.points.getBoundingClientRect();
      const [xmin, xmax, ymin, ymax] = this.extent;
      const x1 = xmin + ((event.clientX - rect.left) / rect.width) * (xmax - xmin);
      const x2 = ymax - ((event.clientY - rect.top) / rect.height) * (ymax - ymin);
      handler(x1, x2);
    });
  }

  /**
   * Draw the output grid of a frame.
   * @param {Frame} frame
   * @param {boolean} discretize
   */
  updateHeatmap(frame, discretize) {
    const { header, output } = frame;
    if (!output) return;
    this.extent = header.grid.extent;
    const r = header.grid.resolution;
    if (header.problem === 'multiclass' && frame.outputClass) {
      drawClassField(this.heatmap, frame.outputClass, output, r, header.n_classes, discretize);
    } else {
      drawScalarField(this.heatmap, output, r, outputToUnit(header.problem), discretize);
    }
  }

  /**
   * Draw one hidden neuron's map (g×g, already scaled into [-1, 1]) in place of the output.
   * @param {Float32Array} values
   * @param {number} resolution
   */
  showNeuron(values, resolution) {
    drawScalarField(this.heatmap, values, resolution, (v) => v, false);
  }

  /**
   * Draw the points: train filled with a white ring, test with a dark ring.
   * @param {DataPoints} data
   * @param {string} problem
   * @param {boolean} showTest
   */
  updatePoints(data, problem, showTest) {
    const ctx = /** @type {CanvasRenderingContext2D} */ (this.points.getContext('2d'));
    const ratio = this.points.width / SIZE;
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, SIZE, SIZE);
    const [xmin, xmax, ymin, ymax] = this.extent;
    const draw = (/** @type {number[][]} */ rows, /** @type {string} */ ring) => {
      ctx.strokeStyle = ring;
      ctx.lineWidth = 1;
      for (const [x1, x2, label] of rows) {
        const px = ((x1 - xmin) / (xmax - xmin)) * SIZE;
        const py = ((ymax - x2) / (ymax - ymin)) * SIZE;
        ctx.beginPath();
        ctx.arc(px, py, 3, 0, 2 * Math.PI);
        ctx.fillStyle = pointColor(problem, label);
        ctx.fill();
        ctx.stroke();
      }
    };
    draw(data.train, '#fff');
    if (showTest) draw(data.test, '#222');
  }

  /**
   * The legend under the plot: the diverging scale, or one swatch per class.
   * @param {string} problem
   * @param {number} nClasses
   */
  updateLegend(problem, nClasses) {
    const key = `${problem}:${nClasses}`;
    if (key === this.legendKey) return;
    this.legendKey = key;
    this.legend.replaceChildren();
    if (problem === 'multiclass') {
      for (let k = 0; k < nClasses; k++) {
        const item = document.createElement('span');
        item.className = 'legend-class';
        const swatch = document.createElement('span');
        swatch.className = 'swatch';
        swatch.style.background = CLASS_COLORS[k % CLASS_COLORS.length];
        item.append(swatch, `class ${k}`);
        this.legend.append(item);
      }
      return;
    }
    const [low, high] = problem === 'binary' ? ['class 0', 'class 1'] : ['−1', '+1'];
    const gradient = document.createElement('span');
    gradient.className = 'gradient';
    this.legend.append(low, gradient, high);
  }
}
