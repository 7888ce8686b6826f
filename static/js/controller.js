/**
 * The controller decides: it starts the page, and turns each user intent (play, step, an edited
 * knob, layer or weight, a clicked point, a file) into a state change or a session command. What
 * the page runs (state, session, frames, diagram) is its base class, Playground (playground.js).
 */
import * as api from './api.js';
import * as owner from './owner.js';
import { Playground, featureList } from './playground.js';
import { defaultState, parseState } from './state.js';

/** @typedef {import('./types.js').Registry} Registry */
/** @typedef {import('./types.js').LayerSpec} LayerSpec */
/** @typedef {import('./views/network.js').WeightEdit} WeightEdit */
/** @typedef {import('./types.js').SessionPublic} SessionPublic */

/** A create refused by a limit (429) is tried again after its Retry-After at most this often. */
const MAX_LIMIT_RETRIES = 3;

/**
 * @param {number} ms
 * @returns {Promise<void>}
 */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The seconds a 429 (or 503) asks to wait, else null (not a limit).
 * @param {unknown} error
 * @returns {number | null}
 */
function limitWait(error) {
  if (!(error instanceof api.ApiError) || (error.status !== 429 && error.status !== 503)) return null;
  return Math.max(1, error.retryAfter);
}

export class Controller extends Playground {
  /** Load the registry, read the URL, start a session. */
  async start() {
    this.registry = await api.fetchRegistry();
    const defaults = defaultState(this.registry.defaults ?? {});
    this.defaults = defaults;
    this.state = parseState(location.hash, defaults);
    const { controls, data } = this.views;
    this.notices.bindUseRate((learningRate) => this.setState({ learning_rate: learningRate }));
    controls.build(this.registry);
    data.build(this.registry.datasets, (name) => this.selectDataset(name));
    data.select(this.state.points ? null : this.state.dataset);
    this.renderStructure();
    controls.update(this.state, this.resolvedProblem());
    this.writeHash();
    window.addEventListener('hashchange', () => this.applyHash());
    // A share link (/r/{slug}) shows its saved run at once (run_view.js, wired by main.js).
    const runView = /** @type {any} */ (this).runView;
    if (runView && await runView.openFromLocation()) {
      this.drawer.afterFirstFrame = () => this.loadThumbnails();
      return;
    }
    if (await this.reopen()) {
      this.drawer.afterFirstFrame = () => this.loadThumbnails();
      return;
    }
    const opened = await this.openWithinLimits();
    if (!opened && limitWait(this.link.lastError) !== null) {
      // A limit (quota, rate): its detail stays on screen; the defaults would be refused too.
      this.drawer.afterFirstFrame = () => this.loadThumbnails();
      return;
    }
    if (!opened) {
      // A link the server refuses (e.g. limits lowered since it was shared): keep the page
      // usable with the defaults, and leave the reason on screen.
      const reason = this.views.error.textContent;
      this.state = structuredClone(defaults);
      this.renderStructure();
      controls.update(this.state, this.resolvedProblem());
      data.select(this.state.dataset);
      this.writeHash();
      await this.openFromState();
      this.showError(`The link's settings were refused (${reason}); started with the defaults.`, 0);
    }
    // Thumbnails wait for the first frame so their requests never delay it.
    this.drawer.afterFirstFrame = () => this.loadThumbnails();
  }

  /**
   * The session to show on load, if one exists: `?session=ID` (ours, or someone else's watched
   * read-only), else our own from before (a reload) while the URL still describes it. A link with
   * other settings starts a new session instead (this tab's old one is deleted).
   * @returns {Promise<boolean>} whether a session was attached
   */
  async reopen() {
    const wanted = new URLSearchParams(location.search).get('session');
    const remembered = owner.rememberedSession();
    const sameLink = !location.hash || location.hash === '#' || location.hash === remembered?.hash;
    const id = wanted ?? (remembered && sameLink ? remembered.id : null);
    if (!id) {
      if (remembered?.tab) api.deleteSession(remembered.id).catch(() => {});
      if (remembered) owner.rememberSession(null);
      return false;
    }
    /** @type {SessionPublic} */
    let session;
    try {
      session = await api.fetchSession(id);
    } catch (error) {
      if (id === remembered?.id) owner.rememberSession(null);
      if (wanted) {
        this.showError(`Session ${wanted} could not be opened (${/** @type {Error} */ (error).message}); started a new one.`, 0);
        this.dropSessionParam();
      }
      return false;
    }
    let mine = false;
    if (owner.token()) {
      try {
        mine = (await api.listSessions()).some((s) => s.id === id);
      } catch {
        // An older server without owners: the websocket's auth answer decides.
        mine = !wanted;
      }
    }
    if (!mine && !wanted) {
      // Not ours any more (a new token, a restarted server): start our own.
      owner.rememberSession(null);
      return false;
    }
    this.link.attach(session, !mine);
    this.adoptConfig(session);
    if (mine && remembered && remembered.id !== id && remembered.tab) {
      // This tab moved to another of our sessions: the one it drove before is done.
      api.deleteSession(remembered.id).catch(() => {});
    }
    if (mine) owner.rememberSession(id, location.hash);
    return true;
  }

  /** Forget `?session=` in the URL (the hash stays). */
  dropSessionParam() {
    const url = new URL(location.href);
    if (!url.searchParams.has('session')) return;
    url.searchParams.delete('session');
    history.replaceState(null, '', url);
  }

  /**
   * Open a session from the state; a create refused by a limit (429) is tried again only after
   * the server's Retry-After, a few times, never in a tight loop.
   * @returns {Promise<boolean>}
   */
  async openWithinLimits() {
    for (let attempt = 0; ; attempt++) {
      if (await this.openFromState()) {
        if (attempt > 0) this.notices.clearError('limit');
        return true;
      }
      const wait = limitWait(this.link.lastError);
      if (wait === null || attempt >= MAX_LIMIT_RETRIES) return false;
      const detail = this.link.lastError instanceof api.ApiError ? this.link.lastError.detail : '';
      this.showError(`The server is at a limit: ${detail}. Trying again in ${wait} s…`, 0, 'limit');
      await sleep(wait * 1000);
    }
  }

  /** Leave the session watched read-only and drive one of our own (with its settings). */
  async startOwn() {
    this.dropSessionParam();
    if (await this.reopen()) return;
    await this.openWithinLimits();
  }

  /** Save the session's data as CSV (fetched with the owner's token). */
  async downloadData() {
    if (!this.session) return;
    try {
      const text = await api.fetchDataCsv(this.session.id);
      const link = document.createElement('a');
      link.href = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
      link.download = 'data.csv';
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 1000);
    } catch (error) {
      this.showError(`Download: ${/** @type {Error} */ (error).message}`);
    }
  }

  /** Draw every dataset's thumbnail, one request each, after the first frame has priority. */
  async loadThumbnails() {
    const datasets = Object.keys(this.registry?.datasets ?? {});
    for (const name of datasets) {
      for (let attempt = 0; ; attempt++) {
        try {
          const preview = await api.fetchPreview(name);
          this.views.data.drawThumbnail(name, preview.kind, [...preview.train, ...preview.test]);
        } catch (error) {
          // A rate limit: wait as long as the server says, then go on (a few times at most).
          const wait = limitWait(error);
          if (wait !== null && attempt < MAX_LIMIT_RETRIES) {
            await sleep(wait * 1000);
            continue;
          }
          this.showError(`Could not preview ${name}: ${/** @type {Error} */ (error).message}`);
        }
        break;
      }
    }
  }

  /** Play, or pause when running (space does the same). */
  togglePlay() {
    if (this.status === 'running') {
      this.command({ type: 'pause' });
    } else if (this.status === 'diverged' || this.status === 'finished') {
      this.showError(`The session is ${this.status}; press reset (or change a setting) to train again.`);
    } else {
      this.command({ type: 'play' });
      // Show "running" at once; the ack and the frames confirm it.
      this.views.controls.updateStatus('running');
      this.status = 'running';
    }
  }

  /** Train one epoch. */
  step() {
    if (this.status === 'running') this.command({ type: 'pause' });
    this.command({ type: 'step', n: 1 });
  }

  /** Re-roll: the next draw of initial weights from the seed (the ack moves init_draw), same data. */
  reset() {
    this.command({ type: 'reset' });
  }

  /** Restart from the same start: the initial weights this run started with, same data. */
  restart() {
    this.command({ type: 'reset', same_start: true });
  }

  /** New data with the next seed. */
  regenerate() {
    this.command({ type: 'regenerate', seed: null });
  }

  /**
   * Set one weight or bias live.
   * @param {WeightEdit} edit
   */
  editWeight(edit) {
    this.command({ type: 'edit_weight', layer: edit.layer, param: edit.param, index: edit.index, value: edit.value });
  }

  /**
   * Show a hidden neuron's map in the output view (null: the output again).
   * @param {number | null} neuron
   */
  hoverNeuron(neuron) {
    this.drawer.hoverNeuron(neuron);
  }

  /**
   * One input changed.
   * @param {string} key
   * @param {unknown} value
   */
  change(key, value) {
    this.setState({ [key]: value });
  }

  /**
   * Choose a built-in dataset (drops user points).
   * @param {string} name
   */
  selectDataset(name) {
    this.setState({ dataset: name, points: null, test_points: null, problem: null, loss: null });
  }

  /**
   * Toggle an input feature (the last one stays: the server needs at least one).
   * @param {string} name
   */
  toggleFeature(name) {
    const features = this.state.features.includes(name)
      ? this.state.features.filter((f) => f !== name)
      : featureList(/** @type {Registry} */ (this.registry))
          .map((f) => f.name)
          .filter((f) => f === name || this.state.features.includes(f));
    if (features.length === 0) {
      this.showError('At least one input feature is needed.');
      return;
    }
    this.setState({ features });
  }

  /**
   * Change one hidden layer.
   * @param {number} index
   * @param {Partial<LayerSpec>} patch
   */
  changeLayer(index, patch) {
    const layers = this.state.layers.map((l, i) => (i === index ? { ...l, ...patch } : { ...l }));
    this.setState({ layers });
  }

  /**
   * Add (+1) or remove (−1) the last hidden layer.
   * @param {number} delta
   */
  changeLayerCount(delta) {
    const layers = this.state.layers.map((l) => ({ ...l }));
    const max = this.registry?.limits?.max_hidden_layers ?? 6;
    if (delta > 0 && layers.length < max) {
      const last = layers[layers.length - 1];
      layers.push({ units: 2, activation: last?.activation ?? 'tanh', dropout: 0, batch_norm: false });
    } else if (delta < 0 && layers.length > 0) {
      layers.pop();
    } else {
      return;
    }
    this.setState({ layers });
  }

  /**
   * Add a training point of the chosen class where the user clicked. The data becomes the user's
   * points with the test set kept as shown, so the point is visible and, the problem staying the
   * same, the server keeps the model (weights, epoch and curves go on).
   * @param {number} x1
   * @param {number} x2
   */
  addPoint(x1, x2) {
    const label = this.views.data.chosenLabel();
    const copy = (/** @type {number[][]} */ points) => points.map((p) => [p[0], p[1], p[2]]);
    // Explicit sets in the state are the newest (a click before the last one's ack); else the
    // split the server made.
    const explicit = this.state.points && this.state.test_points;
    const train = copy(explicit ? /** @type {number[][]} */ (this.state.points) : this.points.train);
    const test = copy(explicit ? /** @type {number[][]} */ (this.state.test_points) : this.points.test);
    train.push([x1, x2, label]);
    // Drawn at once; the ack's refresh brings the server's copy.
    this.points = { train: copy(train), test: copy(test) };
    this.drawer.pointsChanged();
    // Only the points change (the problem stays as the labels say): the server keeps the model.
    this.setState({ points: train, test_points: test });
  }

  /**
   * Use the rows of an uploaded CSV as the data.
   * @param {string} text
   */
  async uploadCsv(text) {
    try {
      const parsed = await api.parseCsv(text);
      this.setState({ points: parsed.points, test_points: null, problem: null, loss: null });
    } catch (error) {
      this.showError(`CSV upload: ${/** @type {Error} */ (error).message}`);
    }
  }

  /** Download the trained model (the compact export: any length imports back). */
  async exportModel() {
    if (!this.session) return;
    try {
      const blob = await api.exportSession(this.session.id);
      const link = document.createElement('a');
      link.href = URL.createObjectURL(blob);
      link.download = `nn-playground-epoch-${this.lastEpoch}.nnpg.gz`;
      link.click();
      setTimeout(() => URL.revokeObjectURL(link.href), 1000);
    } catch (error) {
      this.showError(`Export: ${/** @type {Error} */ (error).message}`);
    }
  }

  /**
   * Continue from an exported model: a new session, and the state becomes its config.
   * @param {File} file
   */
  async importModel(file) {
    const magic = new Uint8Array(await file.slice(0, 2).arrayBuffer());
    /** @type {string | Blob} */
    let exported = file; // the compact export (gzip), sent as is
    if (magic[0] !== 0x1f || magic[1] !== 0x8b) {
      exported = await file.text();
      try {
        JSON.parse(exported); // only to say "not JSON" here rather than as a server error
      } catch {
        this.showError(`Import: ${file.name} is neither an export (.nnpg.gz) nor JSON.`);
        return;
      }
    }
    await this.openSession(async () => {
      try {
        const session = await api.importSession(exported);
        this.adoptConfig(session);
        return session;
      } catch (error) {
        const detail = error instanceof api.ApiError ? error.detail : /** @type {Error} */ (error).message;
        throw new Error(`Import: ${file.name} was refused: ${detail}`);
      }
    });
  }
}
