/** The loss and gradient-norm curves over epochs, recorded from the frames as they arrive. */
import { SeriesHistory } from './history.js';

/** @typedef {import('./types.js').Frame} Frame */

export class TrainingCurves {
  constructor() {
    /** Train and test loss per epoch. */
    this.losses = new SeriesHistory(2);
    /** Gradient norm per Dense layer per epoch. */
    this.grads = new SeriesHistory(1);
    /** @type {string[]} one name per series of `grads` */
    this.gradNames = [];
    /** The newest epoch recorded (-1: none). */
    this.lastEpoch = -1;
    /** @type {number | null} the server's history these curves hold (header.history_id) */
    this.historyId = null;
  }

  /**
   * Record a frame's epochs: every loss row since the last frame, and this epoch's gradient norms.
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
    if (frame.epochs) {
      const width = frame.epochColumns.length;
      const train = frame.epochColumns.indexOf('train_loss');
      const test = frame.epochColumns.indexOf('test_loss');
      const rows = frame.epochs.length / width;
      for (let r = 0; r < rows; r++) {
        const epoch = header.epochs_first + r;
        if (epoch <= this.lastEpoch) continue;
        this.losses.append(epoch, [frame.epochs[r * width + train], frame.epochs[r * width + test]]);
      }
    }
    const names = (header.layers ?? []).map((_, i, all) => (i === all.length - 1 ? 'output' : `layer ${i + 1}`));
    if (names.join('|') !== this.gradNames.join('|')) {
      this.gradNames = names;
      this.grads = new SeriesHistory(names.length);
    }
    // A rows-only frame's layers are the newest state's, not its last row's: no norm from it.
    if (!header.rows_only && header.epoch > this.lastEpoch && header.epoch > 0) {
      this.grads.append(header.epoch, (header.layers ?? []).map((l) => l.grad_norm));
    }
    this.lastEpoch = Math.max(this.lastEpoch, header.epoch);
  }

  /** Forget the curves (new weights or new data). */
  reset() {
    this.losses.reset();
    this.grads.reset();
    this.lastEpoch = -1;
    this.historyId = null;
  }
}
