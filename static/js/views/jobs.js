/**
 * Progress bars of the jobs the page waits for (race steps, replays, long steps): what runs,
 * done of total, and a Cancel button. Fixed at the bottom of the window, so a job started from
 * the lessons panel is seen wherever the page is scrolled.
 */
import { el } from '../dom.js';

/** @typedef {import('../jobs.js').JobPublic} JobPublic */

/** How long a cancelled or failed job's bar stays to say so (ms). */
const LINGER_MS = 4000;

export class JobsView {
  /**
   * @param {HTMLElement} parent where the bars' box goes (the body)
   * @param {(id: string) => void} onCancel the Cancel button of a job
   */
  constructor(parent, onCancel) {
    this.onCancel = onCancel;
    this.box = el('div', { id: 'jobs', class: 'jobs', role: 'status', 'aria-live': 'polite', 'aria-label': 'Work in progress' });
    parent.append(this.box);
    /** @type {Map<string, {row: HTMLElement, bar: HTMLProgressElement, count: HTMLElement, cancel: HTMLButtonElement}>} */
    this.rows = new Map();
  }

  /**
   * A job started: its bar.
   * @param {JobPublic} job
   * @param {string} label
   */
  show(job, label) {
    const row = el('div', { class: 'job', 'data-job': job.id, 'data-state': job.state });
    const bar = /** @type {HTMLProgressElement} */ (el('progress', { class: 'job-bar', 'aria-label': `${label}: progress` }));
    const count = el('span', { class: 'job-count' });
    const cancel = /** @type {HTMLButtonElement} */ (el('button', { type: 'button', class: 'job-cancel mini-button' }, 'Cancel'));
    cancel.addEventListener('click', () => {
      cancel.disabled = true;
      cancel.textContent = 'Cancelling…';
      this.onCancel(job.id);
    });
    row.append(el('span', { class: 'job-label' }, label), bar, count, cancel);
    this.box.append(row);
    this.rows.set(job.id, { row, bar, count, cancel });
    this.update(job);
  }

  /**
   * New progress of a job.
   * @param {JobPublic} job
   */
  update(job) {
    const parts = this.rows.get(job.id);
    if (!parts) return;
    const total = Math.max(0, Number(job.total) || 0);
    const done = Math.min(total, Math.max(0, Number(job.done) || 0));
    if (total > 0) {
      parts.bar.max = total;
      parts.bar.value = done;
    }
    parts.count.textContent = total > 0 ? `${done.toLocaleString('en')} / ${total.toLocaleString('en')}` : '…';
    parts.row.dataset.state = job.state;
    parts.row.dataset.done = String(done);
    parts.row.dataset.total = String(total);
  }

  /**
   * A line of text under a job's bar (e.g. why Cancel failed).
   * @param {JobPublic} job
   * @param {string} text
   */
  note(job, text) {
    const parts = this.rows.get(job.id);
    if (parts) parts.count.textContent = text;
  }

  /**
   * The job ended: a done job's bar goes at once; a cancelled or failed one says so for a while.
   * @param {JobPublic} job
   */
  finish(job) {
    const parts = this.rows.get(job.id);
    if (!parts) return;
    this.update(job);
    parts.cancel.remove();
    this.rows.delete(job.id);
    if (job.state === 'done') {
      parts.row.remove();
      return;
    }
    const what = job.state === 'cancelled' ? 'cancelled' : job.state === 'failed' ? `failed: ${job.detail ?? ''}` : 'stopped';
    parts.count.textContent = `${what} at ${job.done} / ${job.total}`;
    setTimeout(() => parts.row.remove(), LINGER_MS);
  }
}
