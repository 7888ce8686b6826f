/** Notices view: the banner that says a run diverged or finished, and the transient error box. */

export class NoticesView {
  /**
   * @param {HTMLElement} banner the #diverged element
   * @param {HTMLElement} errorBox the #error element
   */
  constructor(banner, errorBox) {
    this.banner = banner;
    this.errorBox = errorBox;
    this.errorTimer = 0;
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
   * Show an error for a while (0: until replaced).
   * @param {string} text
   * @param {number} [ms]
   */
  showError(text, ms = 8000) {
    const box = this.errorBox;
    box.textContent = text;
    box.hidden = false;
    clearTimeout(this.errorTimer);
    if (ms) this.errorTimer = window.setTimeout(() => { box.hidden = true; }, ms);
  }
}
