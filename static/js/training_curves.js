/** The loss and gradient-norm curves over epochs, recorded from the frames as they arrive. */
import { SeriesHistory } from './history.js';

/** @typedef {import('./types.js').Frame} Frame */

export class TrainingCurves {
  constructor() {
    /** Train and test loss per epoch. */
    this.losses = new SeriesHistory(2);
    /**
     * Gradient norm per Dense layer per epoch. From the rows' grad_norm_j columns it gets exactly
     * the appends `losses` gets, so both keep the same (downsampled) epochs.
     */
    this.grads = new SeriesHistory(1);
    /** @type {string[]} one name per series of `grads` */
    this.gradNames = [];
    /** The newest epoch recorded (-1: none). */
    this.lastEpoch = -1;
    /** @type {number | null} the server's history these curves hold (header.history_id) */
    this.historyId = null;
  }

  /**
   * Record a frame's epochs: every row since the last frame (losses, and each layer's gradient
   * norm when the rows carry it; else the header's norms, once per frame).
   * @param {Frame} frame
   */
  record(frame) {
    const { header } = frame;
    // Reset, regenerate or a rebuild restarts the history; epochs alone cannot tell when the
    // first frame after it already holds more epochs than the curve did.
    if (header.history_id !== this.historyId) {
      this.reset();
      this.historyId = header.history_id;
    }
    const columns = frame.epochColumns;
    /** @type {number[]} where grad_norm_0, grad_norm_1, ... are in a row */
    const normColumns = [];
    for (let j = 0; columns.includes(`grad_norm_${j}`); j++) normColumns.push(columns.indexOf(`grad_norm_${j}`));
    const perEpochNorms = normColumns.length > 0;
    // The columns say how many Dense layers there are; without them (an older server) the
    // header's layers do, except in a rows-only frame (its header need not carry them).
    if (perEpochNorms) this.matchLayers(normColumns.length);
    else if (!header.rows_only) this.matchLayers((header.layers ?? []).length);
    if (frame.epochs) {
      const width = columns.length;
      const train = columns.indexOf('train_loss');
      const test = columns.indexOf('test_loss');
      const rows = frame.epochs.length / width;
      for (let r = 0; r < rows; r++) {
        const epoch = header.epochs_first + r;
        if (epoch <= this.lastEpoch) continue;
        const row = frame.epochs.subarray(r * width, (r + 1) * width);
        this.losses.append(epoch, [row[train], row[test]]);
        if (perEpochNorms) this.grads.append(epoch, normColumns.map((c) => row[c]));
      }
    }
    // An older server only sends the newest norms. A rows-only frame's layers are the newest
    // state's, not its last row's: no norm from it.
    if (!perEpochNorms && !header.rows_only && header.epoch > this.lastEpoch && header.epoch > 0) {
      this.grads.append(header.epoch, (header.layers ?? []).map((l) => l.grad_norm));
    }
    this.lastEpoch = Math.max(this.lastEpoch, header.epoch);
  }

  /**
   * One gradient series per Dense layer (hidden layers, then the output).
   * @param {number} count Dense layers
   */
  matchLayers(count) {
    const names = Array.from({ length: count }, (_, i) => (i === count - 1 ? 'output' : `layer ${i + 1}`));
    if (names.join('|') === this.gradNames.join('|')) return;
    // Layers change only with a rebuild, which starts a new history: the losses are empty too.
    this.gradNames = names;
    this.grads = new SeriesHistory(names.length);
  }

  /** Forget the curves (new weights or new data). */
  reset() {
    this.losses.reset();
    this.grads.reset();
    this.lastEpoch = -1;
    this.historyId = null;
  }
}
