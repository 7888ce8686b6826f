/**
 * Notices view: the banner that says a run diverged or finished, the instability warning (the
 * loss misbehaves while training goes on), and the transient error box.
 */

/** @typedef {import('../types.js').TrainingWarning} TrainingWarning */

/** A heading per warning kind: what the learner sees, in plain words. */
const WARNING_TITLES = {
  unstable: 'The loss is jumping around',
  rising: 'The loss is rising',
};

export class NoticesView {
  /**
   * @param {HTMLElement} banner the #diverged element
   * @param {HTMLElement} errorBox the #error element
   * @param {HTMLElement | null} [warningBox] the #warning element
   */
  constructor(banner, errorBox, warningBox = null) {
    this.banner = banner;
    this.errorBox = errorBox;
    this.warningBox = warningBox;
    this.errorTimer = 0;
    /** what the shown error is about ('' when none or when it is general) */
    this.errorTopic = '';
    /** the warning shown, as JSON (to touch the DOM only when it changes) */
    this.warningKey = 'null';
    /** @type {(learningRate: number) => void} */
    this.onUseRate = () => {};
    /** @type {{title: HTMLElement, text: HTMLElement, use: HTMLButtonElement} | null} */
    this.warningParts = null;
  }

  /**
   * Call `handler(rate)` when the learner takes the warning's suggested learning rate.
   * @param {(learningRate: number) => void} handler
   */
  bindUseRate(handler) {
    this.onUseRate = handler;
  }

  /**
   * Show the banner for a diverged or finished run, hide it otherwise.
   * @param {string} status
   * @param {string | null} reason
   */
  updateStatus(status, reason) {
    const banner = this.banner;
    if (status === 'diverged') {
      banner.textContent = `Training diverged: ${reason ?? 'a loss or weight became NaN or infinite'}. Lower the learning rate and press reset.`;
      banner.classList.remove('finished');
      banner.hidden = false;
    } else if (status === 'finished') {
      banner.textContent = `Training stopped: ${reason ?? 'the run is finished'}. Press reset, or change a setting, to train again.`;
      banner.classList.add('finished');
      banner.hidden = false;
    } else {
      banner.hidden = true;
    }
  }

  /**
   * Show the server's instability warning (null: hide it). Training goes on meanwhile, so this is
   * a notice with an explanation and a one-click remedy, not an error. The message's numbers
   * move with every frame: the text is updated in place, so the button stays clickable.
   * @param {TrainingWarning | null} warning
   */
  updateWarning(warning) {
    const box = this.warningBox;
    const key = JSON.stringify(warning ?? null);
    if (!box || key === this.warningKey) return;
    this.warningKey = key;
    if (!warning) {
      box.hidden = true;
      return;
    }
    if (!this.warningParts) this.warningParts = this.buildWarning(box);
    const { title, text, use } = this.warningParts;
    title.textContent = `${WARNING_TITLES[warning.kind] ?? 'Training is unstable'} (since epoch ${warning.since_epoch}).`;
    text.textContent = ` ${warning.message} Training goes on meanwhile.`;
    const rate = warning.suggested_learning_rate;
    const usable = typeof rate === 'number' && Number.isFinite(rate);
    use.hidden = !usable;
    use.dataset.rate = String(rate);
    use.textContent = `Use learning rate ${rate}`;
    box.hidden = false;
  }

  /**
   * The warning's parts, made once: a heading, the server's explanation, the remedy button.
   * @param {HTMLElement} box
   */
  buildWarning(box) {
    const title = document.createElement('strong');
    const text = document.createElement('span');
    text.className = 'warning-message';
    const use = document.createElement('button');
    use.type = 'button';
    use.className = 'mini-button';
    use.id = 'use-suggested-rate';
    use.addEventListener('click', () => this.onUseRate(Number(use.dataset.rate)));
    box.replaceChildren(title, text, use);
    return { title, text, use };
  }

  /**
   * Show an error for a while (0: until replaced).
   * @param {string} text
   * @param {number} [ms]
   * @param {string} [topic] what it is about (e.g. "set"), so it can be cleared when that is fixed
   */
  showError(text, ms = 8000, topic = '') {
    const box = this.errorBox;
    box.textContent = text;
    box.hidden = false;
    this.errorTopic = topic;
    clearTimeout(this.errorTimer);
    if (ms) this.errorTimer = window.setTimeout(() => this.clearError(), ms);
  }

  /**
   * Hide the error (only one about `topic` when a topic is given).
   * @param {string} [topic]
   */
  clearError(topic) {
    if (topic !== undefined && topic !== this.errorTopic) return;
    clearTimeout(this.errorTimer);
    this.errorBox.hidden = true;
    this.errorTopic = '';
  }
}
