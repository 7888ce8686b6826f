/**
 * Columnar per-epoch series ([epochs, s1, s2, ...], uPlot's format), downsampled as they grow.
 *
 * When a history reaches its cap, every other stored point is dropped and the stride doubles, so
 * a run of a million epochs keeps at most `cap` points and appends stay O(1) amortized.
 */
export class SeriesHistory {
  /**
   * @param {number} seriesCount number of y series
   * @param {number} [cap] most points kept
   */
  constructor(seriesCount, cap = 1000) {
    this.seriesCount = seriesCount;
    this.cap = cap;
    /** @type {(number | null)[][]} */
    this.columns = [];
    this.stride = 1;
    this.seen = 0;
    this.reset();
  }

  /** Forget every point. */
  reset() {
    this.columns = Array.from({ length: this.seriesCount + 1 }, () => []);
    this.stride = 1;
    this.seen = 0;
  }

  /**
   * Add one epoch's values; kept only on the current stride.
   * @param {number} epoch
   * @param {(number | null)[]} values one per series (null: no value, e.g. no test set)
   */
  append(epoch, values) {
    const index = this.seen++;
    if (index % this.stride !== 0) return;
    this.columns[0].push(epoch);
    for (let s = 0; s < this.seriesCount; s++) {
      const v = values[s];
      this.columns[s + 1].push(v === null || v === undefined || !Number.isFinite(v) ? null : v);
    }
    if (this.columns[0].length >= this.cap) {
      this.columns = this.columns.map((column) => column.filter((_, i) => i % 2 === 0));
      this.stride *= 2;
    }
  }

  /** Points stored. */
  get length() {
    return this.columns[0].length;
  }
}
