/**
 * Frame-to-view dispatch: keeps the newest frame and draws it into every view at most once per
 * animation frame, however fast frames arrive.
 */
import { neuronScale } from './views/network_units.js';
import { outputToUnit } from './views/output.js';

/** @typedef {import('./types.js').Frame} Frame */
/** @typedef {import('./playground.js').Playground} Playground */

/**
 * While training runs, the costly redraws take turns: the network's weights (its links, many
 * curves to re-raster, network_links.js; and its biases), the loss chart and the gradient chart
 * (uPlot canvases, rasterized on the main thread) each redraw at most every TURN_MS, and at most
 * one of them per drawn frame, so no frame pays for all three. The neuron maps, the output and
 * the numbers follow every frame; a frame that is not running (paused, stepped, edited) redraws
 * everything.
 */
const TURN_MS = 100;
/** @typedef {'links' | 'loss' | 'grad'} Turn */

export class FrameDrawer {
  /** @param {Playground} page whose views, state, points and curves are drawn */
  constructor(page) {
    this.page = page;
    /** @type {Frame | null} newest frame not drawn yet */
    this.pending = null;
    /** @type {Frame | null} last frame drawn */
    this.frame = null;
    this.drawScheduled = false;
    /** @type {Record<Turn, number>} when each costly redraw last ran (ms) */
    this.turns = { links: -Infinity, loss: -Infinity, grad: -Infinity };
    /** @type {number | null} hidden neuron under the pointer, shown in the output view */
    this.hoveredNeuron = null;
    /** The page's points changed since they were last drawn. */
    this.pointsDirty = true;
    /**
     * Counters the page benchmark reads: frames received (rowsOnly of them only older epoch rows,
     * never drawn) and drawn, main-thread ms drawing.
     */
    this.stats = { received: 0, rowsOnly: 0, drawn: 0, drawMs: 0, firstFrameAt: 0 };
    /** Runs once, after the first frame is drawn. */
    this.afterFirstFrame = () => {};
  }

  /**
   * A binary frame: record its epochs now, keep it as the newest, draw on the next animation frame.
   *
   * A rows-only frame carries older epochs ahead of the state (no grids): its rows go into the
   * curves, and the state frame that follows it is the one drawn.
   * @param {Frame} frame
   */
  receive(frame) {
    this.stats.received += 1;
    this.page.curves.record(frame);
    if (frame.header.rows_only) {
      this.stats.rowsOnly += 1;
      return;
    }
    this.pending = frame;
    this.schedule();
  }

  /** Ask for one draw on the next animation frame; many frames in between cost one draw. */
  schedule() {
    if (this.drawScheduled) return;
    this.drawScheduled = true;
    requestAnimationFrame(() => {
      this.drawScheduled = false;
      this.draw();
    });
  }

  /** Draw the last frame again (the diagram or what it shows changed). */
  redraw() {
    this.turns.links = -Infinity; // a new diagram has every link to draw
    if (this.frame) {
      this.pending = this.frame;
      this.schedule();
    }
  }

  /** Draw the points, the charts and the last frame again (a display option changed). */
  redrawAll() {
    this.pointsDirty = true;
    this.turns = { links: -Infinity, loss: -Infinity, grad: -Infinity };
    if (this.frame) this.pending = this.frame;
    this.schedule();
  }

  /** Draw the page's points on the next animation frame (they were fetched anew). */
  pointsChanged() {
    this.pointsDirty = true;
    this.schedule();
  }

  /**
   * Show a hidden neuron's map in the output view (null: the output again).
   * @param {number | null} neuron
   */
  hoverNeuron(neuron) {
    if (neuron === this.hoveredNeuron) return;
    this.hoveredNeuron = neuron;
    if (this.frame) {
      this.pending = this.pending ?? this.frame;
      this.schedule();
    }
  }

  /** Draw the newest frame and whatever else changed. */
  draw() {
    const started = performance.now();
    const { state, views } = this.page;
    const frame = this.pending ?? this.frame;
    const fresh = this.pending !== null;
    this.pending = null;
    if (frame) {
      const { header } = frame;
      if (fresh) this.drawFrame(frame, started);
      // Links that one frame's budget left behind: go on with them, a frame at a time.
      else if (views.network.weightsPending) views.network.paintWeights(frame);
      if (views.network.weightsPending) this.schedule();
      if (this.pointsDirty) {
        this.pointsDirty = false;
        views.output.updatePoints(this.page.points, header.problem, state.show_test);
      }
    }
    if (fresh) {
      this.stats.drawn += 1;
      this.stats.drawMs += performance.now() - started;
      if (!this.stats.firstFrameAt) {
        this.stats.firstFrameAt = performance.now();
        setTimeout(() => this.afterFirstFrame(), 0);
      }
      document.body.dataset.drawnFrames = String(this.stats.drawn);
    }
  }

  /**
   * Dispatch a new frame to every view.
   * @param {Frame} frame
   * @param {number} started when this draw began (ms)
   */
  drawFrame(frame, started) {
    const page = this.page;
    const { controls, data, network, output, metrics, lossChart, gradChart } = page.views;
    const { header } = frame;
    controls.updateEpoch(header.epoch);
    page.setStatus(header.status, header.status_reason);
    this.drawOutput(frame);
    const turn = this.takeTurn(started, header.status === 'running');
    network.update(frame, header.n_classes > 2 ? null : frame.output, outputToUnit(header.problem), turn('links'));
    metrics.update(header);
    const charts = () => {
      if (turn('loss')) lossChart.update(page.curves.losses, page.state.log_scale);
      if (turn('grad')) gradChart.update(page.curves.gradNames, page.curves.grads);
    };
    // While training runs, a chart redraws on the next animation frame, a task of its own: uPlot
    // redraws in a microtask after setData, so it shared this task (and its commit) with the
    // neuron maps and the output, and made the 8×16 net's heaviest tasks (up to 44 ms of CPU).
    if (header.status === 'running' && (turn('loss') || turn('grad'))) requestAnimationFrame(charts);
    else charts();
    data.updateClasses(header.problem, header.n_classes);
    output.updateLegend(header.problem, header.n_classes);
    const previous = this.frame;
    this.frame = frame;
    // User points decide the problem and classes only once the server has read them.
    if (page.state.points && previous?.header.n_classes !== header.n_classes) page.renderStructure();
  }

  /**
   * Which costly redraws this frame does (see TURN_MS): all when not running, else the one whose
   * turn is most overdue, if any is due.
   * @param {number} now ms
   * @param {boolean} running
   * @returns {(job: Turn) => boolean}
   */
  takeTurn(now, running) {
    const jobs = /** @type {Turn[]} */ (Object.keys(this.turns));
    const due = running ? jobs.filter((job) => now - this.turns[job] >= TURN_MS) : jobs;
    const chosen = running ? due.sort((a, b) => this.turns[a] - this.turns[b]).slice(0, 1) : due;
    for (const job of chosen) this.turns[job] = now;
    return (job) => chosen.includes(job);
  }

  /**
   * The big output view: the hovered hidden neuron's map, else the network's output.
   * @param {Frame} frame
   */
  drawOutput(frame) {
    const { output } = this.page.views;
    const neuron = this.hoveredNeuron;
    if (neuron !== null && frame.neurons) {
      const g = frame.neuronResolution;
      const cells = frame.neurons.subarray(neuron * g * g, (neuron + 1) * g * g);
      const scale = neuronScale(frame, neuron);
      if (cells.length === g * g) output.showNeuron(cells.map((v) => v * scale), g);
    } else {
      output.updateHeatmap(frame, this.page.state.discretize);
    }
  }
}
