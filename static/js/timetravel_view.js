/** Time travel view: record the run, slide over past epochs, fork with new settings, compare. */
import uPlot from '../vendor/uplot/uPlot.esm.js';
import { el } from './dom.js';

export class TimeTravelView {
  /** @param {HTMLElement} container */
  constructor(container) {
    this.container = container;
    const bar = el('div', { class: 'timetravel-bar' });
    this.recordButton = el('button', { type: 'button', id: 'tt-record' }, 'Record the run so far');
    this.slider = /** @type {HTMLInputElement} */ (el('input', { type: 'range', id: 'tt-slider', min: '0', max: '0', step: '1', value: '0', disabled: '', 'aria-label': 'Epoch to show' }));
    this.epochLabel = el('output', { id: 'tt-epoch', for: 'tt-slider' }, '–');
    this.nowButton = el('button', { type: 'button', id: 'tt-now', disabled: '' }, 'Back to now');
    bar.append(this.recordButton, this.slider, this.epochLabel, this.nowButton);
    const forkBar = el('div', { class: 'timetravel-bar' });
    this.forkLr = /** @type {HTMLInputElement} */ (el('input', { type: 'number', id: 'tt-fork-lr', step: 'any', min: '0', value: '0.1', 'aria-label': 'Learning rate of the fork' }));
    this.forkOptimizer = /** @type {HTMLSelectElement} */ (el('select', { id: 'tt-fork-optimizer', 'aria-label': 'Optimizer of the fork' }));
    for (const name of ['(same)', 'sgd', 'momentum', 'adagrad', 'rmsprop', 'adam']) this.forkOptimizer.append(el('option', { value: name }, name));
    this.forkButton = el('button', { type: 'button', id: 'tt-fork', disabled: '' }, 'Fork a new session from this epoch');
    forkBar.append(el('label', { for: 'tt-fork-lr' }, 'learning rate'), this.forkLr, this.forkOptimizer, this.forkButton);
    this.status = el('p', { class: 'timetravel-status', role: 'status', id: 'tt-status' });
    this.chart = el('div', { class: 'timetravel-chart', 'aria-label': 'Test loss of the original run and of the fork' });
    const intro = el('p', { class: 'instrument-intro' },
      'Look back at the playground\'s own run: record it, slide to any past epoch (the network and the output show it), or fork a new run from there with other settings.');
    container.append(intro, bar, forkBar, this.status, this.chart);
    /** @type {number[]} */
    this.stops = [];
    /** @type {uPlot | null} */
    this.plot = null;
  }

  /**
   * @param {{record: () => void, scrub: (epoch: number) => void, now: () => void,
   *   fork: (epoch: number, changes: Record<string, unknown>) => void}} handlers
   */
  bind(handlers) {
    this.recordButton.addEventListener('click', () => handlers.record());
    this.slider.addEventListener('input', () => handlers.scrub(this.epoch()));
    this.nowButton.addEventListener('click', () => handlers.now());
    this.forkButton.addEventListener('click', () => {
      /** @type {Record<string, unknown>} */
      const changes = { learning_rate: Number(this.forkLr.value) };
      if (this.forkOptimizer.value !== '(same)') changes.optimizer = this.forkOptimizer.value;
      handlers.fork(this.epoch(), changes);
    });
  }

  /** The stored epoch the slider points at. */
  epoch() {
    return this.stops[Number(this.slider.value)] ?? 0;
  }

  /**
   * A fresh recording: the slider's stops are the stored epochs (thinned when memory is short).
   * @param {any} summary
   */
  showSummary(summary) {
    this.stops = summary.epochs;
    this.slider.max = String(this.stops.length - 1);
    this.slider.value = String(this.stops.length - 1);
    this.slider.removeAttribute('disabled');
    this.forkButton.removeAttribute('disabled');
    this.container.dataset.recorded = String(summary.replayed_epoch);
    const kept = summary.stride > 1 ? `every ${summary.stride}th epoch kept (memory bound ${summary.checkpoint_memory_bytes} bytes)` : 'every epoch kept';
    this.status.textContent = summary.verified
      ? `Recorded ${summary.live_epoch} epochs, ${kept}. Slide to look back.`
      : `Replayed ${summary.replayed_epoch} epochs, but settings or weights changed during the run, so the past shown is the run as configured now, not exactly the live one.`;
    this.parent = summary.history;
    this.showEpoch(this.epoch());
  }

  /**
   * The epoch on show (the main views draw its frame).
   * @param {number} epoch
   */
  showEpoch(epoch) {
    this.epochLabel.textContent = `epoch ${epoch}`;
    this.container.dataset.epoch = String(epoch);
    this.nowButton.removeAttribute('disabled');
  }

  /** Live again. */
  showNow() {
    this.epochLabel.textContent = 'now';
    delete this.container.dataset.epoch;
    this.nowButton.setAttribute('disabled', '');
  }

  /**
   * The original run's test loss against the fork's (which starts at the fork's epoch).
   * @param {number} forkEpoch
   * @param {number[][]} forkColumns [epochs, train, test] of the fork so far
   */
  compare(forkEpoch, forkColumns) {
    const parent = this.parent?.test_loss ?? [];
    const last = Math.max(parent.length, forkColumns[0].length ? forkColumns[0][forkColumns[0].length - 1] : 0);
    const epochs = Array.from({ length: last }, (_, i) => i + 1);
    const forkTest = new Map(forkColumns[0].map((e, i) => [e, forkColumns[2][i]]));
    const data = [
      epochs,
      epochs.map((e) => parent[e - 1] ?? null),
      epochs.map((e) => (e > forkEpoch ? forkTest.get(e) ?? null : null)),
    ];
    if (!this.plot) {
      this.plot = new uPlot(
        {
          width: Math.max(300, this.chart.clientWidth || 480),
          height: 150,
          scales: { x: { time: false } },
          axes: [{ label: 'epoch', size: 30 }, { label: 'test loss', size: 50 }],
          series: [
            { label: 'epoch' },
            { label: 'original', stroke: '#000', width: 1.5, points: { show: false } },
            { label: 'fork', stroke: '#d55e00', width: 1.5, points: { show: false } },
          ],
        },
        /** @type {uPlot.AlignedData} */ (/** @type {unknown} */ (data)),
        this.chart,
      );
    } else {
      this.plot.setData(/** @type {uPlot.AlignedData} */ (/** @type {unknown} */ (data)));
    }
    this.container.dataset.forkEpochs = String(forkColumns[0].length);
  }

  /**
   * What to do first, when nothing is recorded yet.
   * @param {number} liveEpoch the playground's epoch (-1 or 0: nothing trained yet)
   */
  showHint(liveEpoch) {
    if (this.stops.length) return;
    this.status.textContent = liveEpoch > 0
      ? `The run is at epoch ${liveEpoch}: press "Record the run so far", then slide back through it.`
      : 'Nothing trained yet: press play (or step) in the playground, then "Record the run so far".';
  }

  /** @param {string} message */
  showMessage(message) {
    this.status.textContent = message;
  }
}
