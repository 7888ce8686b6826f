/**
 * "Export code" (issue 11, docs/protocol.md "Export code"): the session on show, or the saved
 * run on show, as one stand-alone Python script that retrains it with numpy, Keras 3 or
 * PyTorch. Opening the panel (or picking another framework) asks the server for the script
 * (GET /api/sessions/{id}/code or /api/runs/{slug}/code); the preview is highlighted by
 * highlight.js (vendored under static/vendor/highlight: the core and its Python grammar only),
 * and Copy / Download hand out the very text the server wrote.
 */
import { ApiError, authorizedFetch } from './http.js';

/** @type {Promise<any> | null} highlight.js with Python, loaded on the first script shown */
let highlighter = null;

/** highlight.js's core with its Python grammar (loaded once, on first use: not at page start). */
export function loadHighlighter() {
  highlighter ??= Promise.all([
    import('../vendor/highlight/core.min.js'),
    import('../vendor/highlight/python.min.js'),
  ]).then(([core, python]) => {
    core.default.registerLanguage('python', python.default);
    return core.default;
  });
  return highlighter;
}

// A longer script (thousands of embedded points) is shown as plain text: highlighting it would
// hold the page for a noticeable moment, and the numbers gain nothing from colour.
export const HIGHLIGHT_LIMIT = 200_000;
export const FRAMEWORKS = /** @type {const} */ (['numpy', 'keras', 'pytorch']);

/** @typedef {import('./playground.js').Playground} Playground */

/**
 * Where the script of a session (or of a saved run, when `slug` is set) comes from.
 * @param {{sessionId: string | null, slug: string | null, framework: string}} what
 * @returns {string | null} null when there is nothing to export yet
 */
export function codeUrl({ sessionId, slug, framework }) {
  const query = `?framework=${encodeURIComponent(framework)}`;
  if (slug) return `/api/runs/${encodeURIComponent(slug)}/code${query}`;
  if (sessionId) return `/api/sessions/${encodeURIComponent(sessionId)}/code${query}`;
  return null;
}

/**
 * The file name a Content-Disposition header gives, else `fallback`.
 * @param {string | null} header e.g. 'attachment; filename="circle_2-4-2-1_numpy.py"'
 * @param {string} fallback
 */
export function fileNameOf(header, fallback) {
  const match = header ? /filename="([^"]+)"/.exec(header) : null;
  return match ? match[1] : fallback;
}

export class CodeExportView {
  /** @param {Playground & {runView?: {run: {slug: string} | null}}} page */
  constructor(page) {
    this.page = page;
    const byId = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
    this.panel = /** @type {HTMLDetailsElement} */ (byId('code-panel'));
    this.picker = /** @type {HTMLSelectElement} */ (byId('code-framework'));
    this.preview = byId('code-preview');
    this.status = byId('code-status');
    this.copyButton = /** @type {HTMLButtonElement} */ (byId('code-copy'));
    this.downloadButton = /** @type {HTMLButtonElement} */ (byId('code-download'));
    /** @type {{text: string, fileName: string, exact: boolean} | null} the script on show */
    this.script = null;
    this.loads = 0; // a newer load makes an older answer stale
  }

  /** Wire the panel: opening it loads the script; the picker reloads; copy and download. */
  bind() {
    if (!this.panel) return;
    this.panel.addEventListener('toggle', () => {
      if (this.panel.open) this.load();
    });
    this.picker.addEventListener('change', () => this.load());
    document.getElementById('code-refresh')?.addEventListener('click', () => this.load());
    this.copyButton.addEventListener('click', () => this.copy());
    this.downloadButton.addEventListener('click', () => this.download());
  }

  /** Fetch the script of what the page shows now, for the picked framework, and show it. */
  async load() {
    const page = this.page;
    const slug = page.runView?.run?.slug ?? null;
    const url = codeUrl({ sessionId: page.session?.id ?? null, slug, framework: this.picker.value });
    const load = ++this.loads;
    this.setScript(null, null);
    if (!url) {
      this.status.textContent = 'No session yet.';
      return;
    }
    if (!slug && page.readOnly) {
      this.status.textContent = 'Only the session\'s owner can export its code (or save it as a run: a run\'s code is public).';
      return;
    }
    this.status.textContent = 'Writing the script…';
    try {
      const response = await authorizedFetch(url);
      const text = await response.text();
      const hljs = text.length <= HIGHLIGHT_LIMIT ? await loadHighlighter() : null;
      if (load !== this.loads) return;
      this.setScript(hljs, {
        text,
        fileName: fileNameOf(response.headers.get('Content-Disposition'), `model_${this.picker.value}.py`),
        exact: response.headers.get('X-Code-Exact') === 'true',
      });
    } catch (error) {
      if (load !== this.loads) return;
      const message = error instanceof ApiError ? error.message : String(error);
      this.status.textContent = `Could not export: ${message}`;
    }
  }

  /**
   * Show a script (null: none), highlighted when `hljs` is given.
   * @param {any} hljs highlight.js, or null to show plain text
   * @param {{text: string, fileName: string, exact: boolean} | null} script
   */
  setScript(hljs, script) {
    this.script = script;
    this.copyButton.disabled = this.downloadButton.disabled = script === null;
    this.preview.removeAttribute('data-highlighted');
    if (script === null) {
      this.preview.textContent = '';
      return;
    }
    if (hljs) {
      this.preview.innerHTML = hljs.highlight(script.text, { language: 'python' }).value;
      this.preview.classList.add('hljs');
    } else {
      this.preview.textContent = script.text;
      this.preview.classList.remove('hljs');
    }
    const lines = script.text.split('\n').length;
    this.status.textContent = `${script.fileName}: ${lines} lines; `
      + (script.exact
        ? 'it lands on the playground\'s weights.'
        : 'it cannot land on the playground\'s weights exactly (its first lines say why).');
  }

  /** Copy the script to the clipboard (a selection copy where the clipboard API is refused). */
  async copy() {
    const script = this.script;
    if (!script) return;
    try {
      await navigator.clipboard.writeText(script.text);
    } catch {
      const range = document.createRange();
      range.selectNodeContents(this.preview);
      const selection = window.getSelection();
      selection?.removeAllRanges();
      selection?.addRange(range);
      document.execCommand('copy');
    }
    this.copyButton.textContent = 'Copied';
    window.setTimeout(() => { this.copyButton.textContent = 'Copy'; }, 1500);
  }

  /** Save the script as a .py file named as the server named it. */
  download() {
    const script = this.script;
    if (!script) return;
    const link = document.createElement('a');
    link.href = URL.createObjectURL(new Blob([script.text], { type: 'text/x-python' }));
    link.download = script.fileName;
    document.body.append(link);
    link.click();
    link.remove();
    window.setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  }
}
