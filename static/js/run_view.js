/**
 * Saved runs in the page (docs/protocol.md "Runs and the gallery"). "Save run" stores the
 * session as an immutable run behind a share link; `/r/{slug}` opens the page on a saved run at
 * once (the diagram, the boundary and the whole loss and gradient curves as saved: the server
 * sends a hello and the websocket's full-history frame, nothing is retrained); "Continue" forks
 * it into a new session of our own that trains on from there.
 */
import { authorizedFetch } from './http.js';
import { request } from './jobs.js';
import { decodeFrame } from './stream.js';

/** @typedef {import('./playground.js').Playground} Playground */
/** @typedef {import('./types.js').Frame} Frame */
/** @typedef {import('./types.js').SessionPublic} SessionPublic */

/**
 * @typedef {object} RunSummary
 * @property {string} slug
 * @property {string} url  "/r/{slug}"
 * @property {string} title
 * @property {boolean} public
 * @property {string} dataset
 * @property {string} problem
 * @property {string} shape  e.g. "2-4-2-1"
 * @property {number} parameters
 * @property {number} epochs
 * @property {string} optimizer
 * @property {number | null} train_loss
 * @property {number | null} test_loss
 * @property {number} created_at
 * @property {{size: number, base64: string}} thumbnail
 */

const decoder = new TextDecoder();

/**
 * The slug of a share link's path ("/r/AbC123xyz_-0"), else null.
 * @param {string} path
 * @returns {string | null}
 */
export function runSlug(path) {
  const match = /^\/r\/([A-Za-z0-9_-]{1,16})\/?$/.exec(path);
  return match ? match[1] : null;
}

/**
 * Split a run view (GET /api/runs/{slug}/view): length-prefixed messages, the first a hello
 * JSON ({run, session}), the others binary frames exactly as the websocket sends them.
 * @param {ArrayBuffer} buffer
 * @returns {{hello: {run: RunSummary, session: SessionPublic}, frames: Frame[]}}
 */
export function parseView(buffer) {
  const view = new DataView(buffer);
  /** @type {ArrayBuffer[]} */
  const messages = [];
  for (let at = 0; at + 4 <= buffer.byteLength;) {
    const length = view.getUint32(at);
    messages.push(buffer.slice(at + 4, at + 4 + length));
    at += 4 + length;
  }
  const hello = JSON.parse(decoder.decode(messages[0]));
  return { hello, frames: messages.slice(1).map((message) => decodeFrame(message)) };
}

/**
 * A loss for a caption: 3 significant digits, "–" when unknown.
 * @param {number | null} value
 */
export function formatLoss(value) {
  return value === null || value === undefined ? '–' : Number(value).toPrecision(3);
}

export class RunView {
  /** @param {Playground} page */
  constructor(page) {
    this.page = page;
    /** @type {RunSummary | null} the saved run on show (null: a live session of ours) */
    this.run = null;
    const byId = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));
    this.banner = byId('run-banner');
    this.bar = byId('run-bar');
    this.saved = byId('run-saved');
    this.title = /** @type {HTMLInputElement} */ (byId('run-title'));
    this.listed = /** @type {HTMLInputElement} */ (byId('run-public'));
  }

  /** Wire the save bar and the banner's Continue. */
  bind() {
    document.getElementById('run-save-button')?.addEventListener('click', () => this.save());
    document.getElementById('run-continue')?.addEventListener('click', () => this.continueRun());
  }

  /**
   * On a share link, show its run; else do nothing.
   * @returns {Promise<boolean>} whether the page shows a saved run
   */
  async openFromLocation() {
    const slug = runSlug(location.pathname);
    if (!slug) return false;
    try {
      await this.open(slug);
      return true;
    } catch (error) {
      this.page.showError(`Run ${slug} could not be opened (${/** @type {Error} */ (error).message}); started a new session.`, 0);
      history.replaceState(null, '', `/${location.hash}`);
      return false;
    }
  }

  /**
   * Draw a saved run at once: its hello makes it the page's session (read-only: nothing may
   * command it), its frame brings the grids, the weights and every epoch's row.
   * @param {string} slug
   */
  async open(slug) {
    const page = this.page;
    const response = await authorizedFetch(`/api/runs/${encodeURIComponent(slug)}/view`);
    const { hello, frames } = parseView(await response.arrayBuffer());
    this.run = hello.run;
    page.session = hello.session;
    page.setReadOnly(true);
    const note = document.getElementById('read-only');
    if (note) note.hidden = true; // the banner says what this is instead
    page.adoptConfig(hello.session);
    page.setStatus(hello.session.status, hello.session.status_reason);
    page.curves.reset();
    for (const frame of frames) page.drawer.receive(frame);
    page.refreshPoints();
    this.showBanner(hello.run);
  }

  /**
   * The banner over a saved run: its title and facts, Continue.
   * @param {RunSummary} run
   */
  showBanner(run) {
    document.body.classList.add('run-view');
    document.title = `${run.title} · nn-playground`;
    this.banner.hidden = false;
    this.bar.hidden = true;
    const title = document.getElementById('run-banner-title');
    if (title) title.textContent = run.title;
    const facts = document.getElementById('run-banner-facts');
    if (facts) {
      facts.textContent = `${run.dataset} · ${run.shape} (${run.parameters} parameters) · `
        + `${run.epochs} epochs · ${run.optimizer} · test loss ${formatLoss(run.test_loss)}`;
    }
  }

  /** Fork the saved run into a session of our own and drive it: the page becomes the playground. */
  async continueRun() {
    const page = this.page;
    const run = this.run;
    if (!run) return;
    /** @type {SessionPublic} */
    let session;
    try {
      session = await request(`/api/runs/${encodeURIComponent(run.slug)}/fork`, { method: 'POST' }, { create: true });
    } catch (error) {
      page.showError(`Continue: ${/** @type {Error} */ (error).message}`, 0);
      return;
    }
    this.run = null;
    document.body.classList.remove('run-view');
    document.title = 'nn-playground';
    this.banner.hidden = true;
    this.bar.hidden = false;
    // Leave the share link: a reload reopens our own session from the playground's address.
    history.replaceState(null, '', `/${location.hash}`);
    page.link.attach(session, false);
    page.adoptConfig(session);
    page.setStatus(session.status, session.status_reason);
  }

  /** Save the session on show as a run; show its share link. */
  async save() {
    const page = this.page;
    const session = page.session;
    if (!session || page.readOnly) {
      page.showError('Only your own session can be saved as a run.');
      return;
    }
    this.saved.textContent = 'Saving…';
    try {
      /** @type {RunSummary} */
      const run = await request(`/api/sessions/${encodeURIComponent(session.id)}/runs`, {
        method: 'POST',
        body: JSON.stringify({ title: this.title.value, public: this.listed.checked }),
      });
      const link = document.createElement('a');
      link.href = run.url;
      link.id = 'run-link';
      link.textContent = `${location.origin}${run.url}`;
      const copy = document.createElement('button');
      copy.type = 'button';
      copy.className = 'mini-button';
      copy.textContent = 'Copy link';
      copy.addEventListener('click', () => {
        navigator.clipboard?.writeText(link.href).then(() => { copy.textContent = 'Copied'; }, () => {});
      });
      this.saved.replaceChildren('Saved: ', link, ' ', copy, run.public ? ' (listed in the gallery)' : ' (unlisted: only the link reaches it)');
    } catch (error) {
      this.saved.textContent = '';
      page.showError(`Save run: ${/** @type {Error} */ (error).message}`);
    }
  }
}
