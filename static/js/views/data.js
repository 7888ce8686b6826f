/**
 * Data view: dataset thumbnails, regenerate, CSV upload/download, the class a click adds.
 *
 * The thumbnails are a radio group with a roving tabindex, like native radios: one Tab stop (the
 * chosen dataset), arrow keys move to the next or previous one and choose it, Home/End the ends.
 */
import { classColor, divergingCss } from '../colors.js';

/** @typedef {import('../types.js').DatasetEntry} DatasetEntry */

const THUMB = 56;
/** Arrow keys of a radio group: how far each moves. */
const ARROW_STEPS = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 };

export class DataView {
  /** @param {Document} doc */
  constructor(doc) {
    const byId = (/** @type {string} */ id) => /** @type {HTMLElement} */ (doc.getElementById(id));
    this.list = byId('datasets');
    this.regenerate = /** @type {HTMLButtonElement} */ (byId('regenerate'));
    this.upload = /** @type {HTMLInputElement} */ (byId('csv-upload'));
    this.download = /** @type {HTMLAnchorElement} */ (byId('csv-download'));
    this.addClass = /** @type {HTMLSelectElement} */ (byId('add-class'));
    /** @type {Map<string, HTMLButtonElement>} */
    this.buttons = new Map();
    this.classKey = '';
    /** @type {(name: string) => void} */
    this.onSelect = () => {};
    this.list.addEventListener('keydown', (event) => this.arrowKey(event));
  }

  /**
   * One thumbnail button per dataset of the registry.
   * @param {Record<string, DatasetEntry>} datasets
   * @param {(name: string) => void} onSelect
   */
  build(datasets, onSelect) {
    this.list.replaceChildren();
    this.buttons.clear();
    this.onSelect = onSelect;
    for (const [name, spec] of Object.entries(datasets)) {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'dataset';
      button.setAttribute('role', 'radio');
      button.setAttribute('aria-checked', 'false');
      button.setAttribute('aria-label', `Dataset ${name}`);
      button.title = `${name}: ${spec.description}`;
      button.dataset.name = name;
      button.tabIndex = -1;
      const canvas = document.createElement('canvas');
      canvas.width = THUMB * 2;
      canvas.height = THUMB * 2;
      const caption = document.createElement('span');
      caption.textContent = name;
      button.append(canvas, caption);
      button.addEventListener('click', () => onSelect(name));
      this.list.append(button);
      this.buttons.set(name, button);
    }
    this.select(null);
  }

  /**
   * An arrow key in the group: move to the next (previous) dataset, wrapping, and choose it.
   * @param {KeyboardEvent} event
   */
  arrowKey(event) {
    const buttons = [...this.buttons.values()];
    const at = buttons.indexOf(/** @type {HTMLButtonElement} */ (event.target));
    if (at < 0) return;
    const step = /** @type {Record<string, number>} */ (ARROW_STEPS)[event.key];
    let next;
    if (step !== undefined) next = (at + step + buttons.length) % buttons.length;
    else if (event.key === 'Home') next = 0;
    else if (event.key === 'End') next = buttons.length - 1;
    else return;
    event.preventDefault();
    const name = /** @type {string} */ (buttons[next].dataset.name);
    this.select(name);
    buttons[next].focus();
    this.onSelect(name);
  }

  /**
   * Draw a dataset's points into its thumbnail.
   * @param {string} name
   * @param {string} kind
   * @param {number[][]} points
   */
  drawThumbnail(name, kind, points) {
    const canvas = this.buttons.get(name)?.querySelector('canvas');
    if (!canvas) return;
    const ctx = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
    const size = canvas.width;
    ctx.fillStyle = '#f5f6f7';
    ctx.fillRect(0, 0, size, size);
    // Truth tables live on [0, 1]²; everything else on TFP's [-6, 6]².
    const span = Math.max(6, ...points.map(([x, y]) => Math.max(Math.abs(x), Math.abs(y)))) ;
    const small = points.length <= 8;
    const [lo, hi] = small ? [-0.5, 1.5] : [-span, span];
    for (const [x1, x2, label] of points) {
      ctx.fillStyle = kind === 'regression' ? divergingCss(label) : classColor(kind, label);
      const px = ((x1 - lo) / (hi - lo)) * size;
      const py = ((hi - x2) / (hi - lo)) * size;
      ctx.beginPath();
      ctx.arc(px, py, small ? 8 : 2.2, 0, 2 * Math.PI);
      ctx.fill();
    }
  }

  /**
   * Mark the chosen dataset (none when the data is the user's own points).
   * @param {string | null} name
   */
  select(name) {
    // The one Tab stop: the chosen dataset, or the first when the data is the user's own.
    const stop = name !== null && this.buttons.has(name) ? name : this.buttons.keys().next().value;
    for (const [key, button] of this.buttons) {
      button.setAttribute('aria-checked', String(key === name));
      button.tabIndex = key === stop ? 0 : -1;
    }
  }

  /**
   * The classes a click can add, for the problem of the session.
   * @param {string} problem
   * @param {number} nClasses
   */
  updateClasses(problem, nClasses) {
    const key = `${problem}:${nClasses}`;
    if (key === this.classKey) return;
    this.classKey = key;
    /** @type {[string, string][]} */
    const options =
      problem === 'regression'
        ? [-1, -0.5, 0, 0.5, 1].map((v) => [String(v), `target ${v}`])
        : problem === 'binary'
          ? [['1', 'class 1 (blue)'], ['0', 'class 0 (orange)']]
          : Array.from({ length: nClasses }, (_, k) => [String(k), `class ${k}`]);
    this.addClass.replaceChildren(
      ...options.map(([value, text]) => Object.assign(document.createElement('option'), { value, textContent: text })),
    );
  }

  /** The label a click on the output adds. */
  chosenLabel() {
    return Number(this.addClass.value);
  }

  /**
   * @param {{regenerate: () => void, upload: (text: string) => void, download?: () => void}} handlers
   */
  bind(handlers) {
    this.regenerate.addEventListener('click', handlers.regenerate);
    // The data needs the owner's token, which a plain link cannot send: the page fetches it.
    const download = handlers.download;
    if (download) {
      this.download.addEventListener('click', (event) => {
        event.preventDefault();
        download();
      });
    }
    this.upload.addEventListener('change', async () => {
      const file = this.upload.files?.[0];
      this.upload.value = '';
      if (file) handlers.upload(await file.text());
    });
  }

  /**
   * Point the download link at the session's data.
   * @param {string} url
   */
  updateDownload(url) {
    this.download.href = url;
  }
}
