/** Metrics view: loss and accuracy numbers, and the confusion matrix of the test set. */
import { classColor } from '../colors.js';

/** @typedef {import('../types.js').FrameHeader} FrameHeader */

/**
 * Three decimals, or a dash when there is no number yet.
 * @param {number | null | undefined} value
 */
function fixed3(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return '–';
  return Math.abs(value) < 1e4 ? value.toFixed(3) : value.toExponential(2);
}

export class MetricsView {
  /**
   * @param {{testLoss: HTMLElement, trainLoss: HTMLElement, accuracy: HTMLElement,
   *   accuracyLine: HTMLElement, confusion: HTMLElement}} elements
   */
  constructor(elements) {
    this.elements = elements;
    this.confusionKey = '';
  }

  /**
   * Show the latest metrics of a frame.
   * @param {FrameHeader} header
   */
  update(header) {
    const { testLoss, trainLoss, accuracy, accuracyLine, confusion } = this.elements;
    const m = header.metrics ?? {};
    testLoss.textContent = fixed3(m.test_loss);
    trainLoss.textContent = fixed3(m.train_loss);
    const metric = header.metric ?? 'accuracy';
    const label = /** @type {ChildNode} */ (accuracyLine.firstChild);
    label.textContent = metric === 'accuracy' ? 'Test accuracy ' : `Test ${metric} `;
    const value = m.test_metric ?? m.test_accuracy;
    accuracy.textContent =
      value === null || value === undefined || Number.isNaN(value)
        ? '–'
        : metric === 'accuracy' ? `${(value * 100).toFixed(1)}%` : fixed3(value);

    const matrix = header.confusion?.test;
    const key = JSON.stringify(matrix ?? null);
    if (key === this.confusionKey) return;
    this.confusionKey = key;
    if (!matrix) {
      confusion.textContent = 'Regression: no classes.';
      return;
    }
    confusion.replaceChildren(this.table(matrix, header.problem));
  }

  /**
   * A table: rows are true classes, columns predicted, cells shaded by their share of the row.
   * @param {number[][]} matrix
   * @param {string} problem
   */
  table(matrix, problem) {
    const table = document.createElement('table');
    const caption = document.createElement('caption');
    caption.className = 'visually-hidden';
    caption.textContent = 'Rows: true class; columns: predicted class';
    const head = table.insertRow();
    head.append(Object.assign(document.createElement('th'), { textContent: 'true \\ pred' }));
    matrix.forEach((_, k) => {
      const th = document.createElement('th');
      th.textContent = String(k);
      th.style.color = classColor(problem, k);
      head.append(th);
    });
    matrix.forEach((row, k) => {
      const tr = table.insertRow();
      const th = document.createElement('th');
      th.textContent = String(k);
      th.style.color = classColor(problem, k);
      tr.append(th);
      const total = row.reduce((a, b) => a + b, 0) || 1;
      row.forEach((count, p) => {
        const td = tr.insertCell();
        td.textContent = String(count);
        const share = count / total;
        // Diagonal cells shade blue (right), off-diagonal orange (wrong), by share of the row.
        td.style.background = p === k ? `rgba(8,119,189,${share * 0.6})` : `rgba(245,147,34,${share * 0.8})`;
      });
    });
    table.prepend(caption);
    return table;
  }
}
