/**
 * The teacher's classroom page (templates/class.html): create a class, or open a class's
 * dashboard: one websocket for the whole class (`WS /ws/classes/{code}`, the teacher token
 * first), one small tile per learner drawn from their session's low-resolution boundary, with
 * name, epoch, test loss and status; a click opens that learner's session read-only
 * (`/?session=ID`). "Pause all" and "Push a preset" are REST calls with the teacher token.
 * docs/protocol.md "Classroom".
 */
import { classRgb, writeDiverging } from './colors.js';
import { describe } from './http.js';

/** localStorage key of a class's teacher token. */
const tokenKey = (/** @type {string} */ code) => `nn-playground.class.${code}`;
/** Wait before opening the dashboard's socket again after it closed unasked. */
const RECONNECT_MS = 1000;

const byId = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * @typedef {object} Tile one learner's tile (docs/protocol.md "Classroom")
 * @property {string} session
 * @property {string} name
 * @property {number} [epoch]
 * @property {string} status
 * @property {number | null} [test_loss]
 * @property {string} [kind] "value" (bytes: 2 b / 255 - 1 in [-1, 1]) or "class" (class index)
 * @property {number} [size]
 * @property {string | null} [grid] base64 of size x size bytes
 */

/** @param {string} key @returns {string | null} */
function stored(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

/** @param {string} key @param {string | null} value */
function store(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    // Storage refused (a private window): the token lives for this visit only.
  }
}

/**
 * Draw a tile's bytes into its canvas (one pixel per cell; CSS scales it up).
 * @param {HTMLCanvasElement} canvas
 * @param {Tile} tile
 */
function drawTile(canvas, tile) {
  if (!tile.grid || !tile.size) return;
  const bytes = Uint8Array.from(atob(tile.grid), (c) => c.charCodeAt(0));
  const size = tile.size;
  if (canvas.width !== size) canvas.width = canvas.height = size;
  const context = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
  const image = context.createImageData(size, size);
  for (let i = 0; i < size * size; i++) {
    if (tile.kind === 'class') {
      const [r, g, b] = classRgb(bytes[i]);
      image.data.set([r, g, b, 255], i * 4);
    } else {
      writeDiverging((bytes[i] / 255) * 2 - 1, image.data, i * 4);
    }
  }
  context.putImageData(image, 0, 0);
}

/** The dashboard of one class: its socket, its tiles, its buttons. */
class Dashboard {
  /**
   * @param {string} code
   * @param {string} token the teacher token
   */
  constructor(code, token) {
    this.code = code;
    this.token = token;
    /** @type {Map<string, HTMLAnchorElement>} tile element per learner's session */
    this.tiles = new Map();
    /** @type {WebSocket | null} */
    this.socket = null;
    this.refused = false;
    byId('class-pause').addEventListener('click', () => this.pauseAll());
    byId('class-preset-push').addEventListener('click', () => this.pushPreset());
    byId('class-token-text').textContent = token;
  }

  /** Open the class's socket; the teacher token goes first. */
  connect() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const socket = new WebSocket(`${scheme}//${location.host}/ws/classes/${encodeURIComponent(this.code)}`);
    this.socket = socket;
    socket.addEventListener('open', () => socket.send(JSON.stringify({ type: 'auth', token: this.token })));
    socket.addEventListener('message', (event) => this.receive(JSON.parse(event.data)));
    socket.addEventListener('close', (event) => this.closed(event.code, event.reason));
  }

  /** @param {any} message */
  receive(message) {
    if (message.type === 'hello') {
      showOnly('class-dashboard');
      byId('class-heading').textContent = message.class.title;
      document.title = `${message.class.title} (${message.class.code}) · Classroom`;
      this.roster(message.learners);
    } else if (message.type === 'learners') {
      this.roster(message.learners);
    } else if (message.type === 'tiles') {
      for (const tile of message.tiles) this.update(tile);
    } else if (message.type === 'error') {
      this.lastError = message.detail;
    } else if (message.type === 'removed') {
      this.refused = true;
      byId('class-result').textContent = message.detail;
    }
  }

  /**
   * The learners, in join order: a tile each (kept across updates), the others removed.
   * @param {{session: string, name: string}[]} learners
   */
  roster(learners) {
    const grid = byId('class-tiles');
    const wanted = new Set(learners.map((l) => l.session));
    for (const [session, element] of this.tiles) {
      if (!wanted.has(session)) {
        element.remove();
        this.tiles.delete(session);
      }
    }
    for (const learner of learners) {
      const element = this.tiles.get(learner.session) ?? this.newTile(learner.session);
      /** @type {HTMLElement} */ (element.querySelector('.tile-name')).textContent = learner.name;
      element.title = `Open ${learner.name}'s session (read-only)`;
      grid.append(element);  // keeps join order
    }
    byId('class-empty').hidden = learners.length > 0;
    byId('class-count').textContent = `· ${learners.length} learner${learners.length === 1 ? '' : 's'}`;
  }

  /**
   * @param {string} session
   * @returns {HTMLAnchorElement}
   */
  newTile(session) {
    const element = document.createElement('a');
    element.className = 'tile status-offline';
    element.href = `/?session=${encodeURIComponent(session)}`;
    element.target = '_blank';
    element.rel = 'noopener';
    element.dataset.session = session;
    element.innerHTML = '<canvas class="tile-canvas" width="1" height="1"></canvas>'
      + '<span class="tile-name"></span><span class="tile-meta"><span class="tile-epoch">–</span>'
      + '<span class="tile-loss"></span></span><span class="tile-status"></span>';
    this.tiles.set(session, element);
    return element;
  }

  /** @param {Tile} tile */
  update(tile) {
    const element = this.tiles.get(tile.session);
    if (!element) return;
    const field = (/** @type {string} */ name) => /** @type {HTMLElement} */ (element.querySelector(name));
    drawTile(/** @type {HTMLCanvasElement} */ (field('.tile-canvas')), tile);
    field('.tile-name').textContent = tile.name;
    if (tile.epoch !== undefined) field('.tile-epoch').textContent = `epoch ${tile.epoch.toLocaleString('en-US')}`;
    const loss = tile.test_loss;
    field('.tile-loss').textContent = typeof loss === 'number' ? `test loss ${loss.toFixed(3)}` : '';
    field('.tile-status').textContent = tile.status;
    element.className = `tile status-${tile.status}`;
    element.dataset.epoch = String(tile.epoch ?? '');
  }

  /**
   * The socket closed: a refusal asks for the token again; anything else reconnects.
   * @param {number} code
   * @param {string} reason
   */
  closed(code, reason) {
    this.socket = null;
    if (code === 4403 || code === 4404) {
      store(tokenKey(this.code), null);
      askForToken(this.code, this.lastError ?? reason);
      return;
    }
    if (this.refused) return;
    setTimeout(() => this.connect(), RECONNECT_MS);
  }

  /**
   * A teacher's REST call; the result line says what it did.
   * @param {string} path
   * @param {string} body
   * @returns {Promise<any>}
   */
  async post(path, body) {
    const response = await fetch(`/api/classes/${encodeURIComponent(this.code)}/${path}`, {
      method: 'POST', body, headers: { Authorization: `Bearer ${this.token}`, 'Content-Type': 'application/json' },
    });
    const answer = await response.json().catch(() => null);
    if (!response.ok) throw new Error(`${response.status}: ${describe(answer?.detail ?? response.statusText)}`);
    return answer;
  }

  /**
   * @param {string} what
   * @param {{done: string[], failed: {name: string, detail: unknown}[]}} action
   */
  report(what, action) {
    const failed = action.failed.map((f) => `${f.name}: ${describe(f.detail)}`).join('; ');
    byId('class-result').textContent = `${what} ${action.done.length} session${action.done.length === 1 ? '' : 's'}`
      + (failed ? ` (refused: ${failed})` : '.');
  }

  async pauseAll() {
    try {
      this.report('Paused', await this.post('pause', '{}'));
    } catch (error) {
      byId('class-result').textContent = `Pause all: ${/** @type {Error} */ (error).message}`;
    }
  }

  async pushPreset() {
    const text = /** @type {HTMLTextAreaElement} */ (byId('class-preset-json')).value;
    try {
      JSON.parse(text);
    } catch (error) {
      byId('class-result').textContent = `The preset is not JSON: ${/** @type {Error} */ (error).message}`;
      return;
    }
    try {
      this.report('Preset pushed to', await this.post('preset', text));
    } catch (error) {
      byId('class-result').textContent = `Preset: ${/** @type {Error} */ (error).message}`;
    }
  }
}

/** @param {string} id show this section of the page, hide the others */
function showOnly(id) {
  for (const section of ['class-create', 'class-auth', 'class-dashboard']) byId(section).hidden = section !== id;
}

/**
 * The dashboard needs the teacher token: ask for it, saying why.
 * @param {string} code
 * @param {string} why
 */
function askForToken(code, why) {
  showOnly('class-auth');
  byId('class-refusal').textContent = why;
  const form = /** @type {HTMLFormElement} */ (byId('class-auth-form'));
  form.onsubmit = (event) => {
    event.preventDefault();
    const token = /** @type {HTMLInputElement} */ (byId('class-token')).value.trim();
    if (!token) return;
    store(tokenKey(code), token);
    new Dashboard(code, token).connect();
  };
}

/** The page without a class: create one (its token kept here), or open one by its code. */
function startPage() {
  showOnly('class-create');
  /** @type {HTMLFormElement} */ (byId('class-create-form')).addEventListener('submit', async (event) => {
    event.preventDefault();
    const title = /** @type {HTMLInputElement} */ (byId('class-title')).value;
    const response = await fetch('/api/classes', {
      method: 'POST', body: JSON.stringify({ title }), headers: { 'Content-Type': 'application/json' },
    });
    const answer = await response.json().catch(() => null);
    if (!response.ok) {
      alert(`Could not create the class: ${describe(answer?.detail ?? response.statusText)}`);
      return;
    }
    store(tokenKey(answer.code), answer.teacher_token);
    location.assign(answer.url);
  });
  /** @type {HTMLFormElement} */ (byId('class-open-form')).addEventListener('submit', (event) => {
    event.preventDefault();
    const code = /** @type {HTMLInputElement} */ (byId('class-open-code')).value.toUpperCase().replace(/[\s-]/g, '');
    if (code) location.assign(`/class/${encodeURIComponent(code)}`);
  });
}

const code = document.body.dataset.code ?? '';
if (!code) {
  startPage();
} else {
  // A link with the token in its fragment (never sent to the server) is kept, then hidden.
  const fromLink = new URLSearchParams(location.hash.slice(1)).get('token');
  if (fromLink) {
    store(tokenKey(code), fromLink);
    history.replaceState(null, '', location.pathname);
  }
  const token = fromLink ?? stored(tokenKey(code));
  if (token) new Dashboard(code, token).connect();
  else askForToken(code, `Only the teacher of class ${code} sees its dashboard: enter the teacher token.`);
}
// For the browser tests (read-only use).
/** @type {any} */ (window).classroom = { code };
