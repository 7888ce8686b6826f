/**
 * The controller decides: it owns the state, the session and its stream, turns user intents into
 * commands, and draws the newest frame at most once per animation frame.
 */
import * as api from './api.js';
import { SeriesHistory } from './history.js';
import {
  PROPERTIES, STRUCTURAL_KEYS, defaultState, parseState, serializeState, sessionConfig,
} from './state.js';
import { SessionStream } from './stream.js';
import { outputToUnit } from './views/output.js';

/** @typedef {import('./types.js').PageState} PageState */
/** @typedef {import('./types.js').Registry} Registry */
/** @typedef {import('./types.js').SessionPublic} SessionPublic */
/** @typedef {import('./types.js').Frame} Frame */
/** @typedef {import('./types.js').DataPoints} DataPoints */
/** @typedef {import('./types.js').LayerSpec} LayerSpec */
/** @typedef {import('./views/network.js').WeightEdit} WeightEdit */

/**
 * The registry's features as [{name, label}] in menu order (an older server sent a name list).
 * @param {Registry} registry
 * @returns {{name: string, label: string}[]}
 */
function featureList(registry) {
  const features = registry.features ?? [];
  if (Array.isArray(features)) return features.map((name) => ({ name, label: name }));
  return Object.entries(features).map(([name, spec]) => ({ name, label: spec.label ?? name }));
}

/** Least time between two redraws of the charts while training runs. */
const CHART_MS = 100;

const CONFIG_KEYS = new Set(PROPERTIES.filter((p) => p.config).map((p) => p.key));

/**
 * @typedef {object} Views
 * @property {import('./views/controls.js').ControlsView} controls
 * @property {import('./views/data.js').DataView} data
 * @property {import('./views/features.js').FeaturesView} features
 * @property {import('./views/network.js').NetworkView} network
 * @property {import('./views/output.js').OutputView} output
 * @property {import('./views/metrics.js').MetricsView} metrics
 * @property {import('./views/losschart.js').LossChartView} lossChart
 * @property {import('./views/gradchart.js').GradChartView} gradChart
 * @property {HTMLElement} diverged
 * @property {HTMLElement} error
 * @property {HTMLElement} layerCount
 */

export class Controller {
  /** @param {Views} views */
  constructor(views) {
    this.views = views;
    /** @type {Registry | null} */
    this.registry = null;
    /** @type {PageState} */
    this.state = defaultState();
    /** @type {SessionPublic | null} */
    this.session = null;
    /** @type {SessionStream | null} */
    this.stream = null;
    /** @type {Frame | null} newest frame not drawn yet */
    this.pending = null;
    /** @type {Frame | null} last frame drawn */
    this.frame = null;
    this.drawScheduled = false;
    this.chartDrawnAt = -Infinity;
    /** @type {number | null} hidden neuron under the pointer, shown in the output view */
    this.hoveredNeuron = null;
    this.lastEpoch = -1;
    this.status = 'paused';
    this.losses = new SeriesHistory(2);
    this.grads = new SeriesHistory(1);
    /** @type {string[]} */
    this.gradNames = [];
    /** @type {DataPoints} */
    this.points = { train: [], test: [] };
    this.pointsDirty = true;
    this.errorTimer = 0;
    this.reconnects = 0;
    /** Counters the page benchmark reads (frames received and drawn, main-thread ms drawing). */
    this.stats = { received: 0, drawn: 0, drawMs: 0, firstFrameAt: 0 };
    /** Runs once, after the first frame is drawn. */
    this.afterFirstFrame = () => {};
    /** @type {Map<number, boolean>} ids of `set` commands in flight: structural or not */
    this.pendingSets = new Map();
    /** @type {PageState | null} the defaults (server's SessionConfig defaults), once known */
    this.defaults = null;
  }

  /** Load the registry, read the URL, start a session. */
  async start() {
    this.registry = await api.fetchRegistry();
    const defaults = defaultState(this.registry.defaults ?? {});
    this.defaults = defaults;
    this.state = parseState(location.hash, defaults);
    const { controls, data } = this.views;
    controls.build(this.registry);
    data.build(this.registry.datasets, (name) => this.selectDataset(name));
    data.select(this.state.points ? null : this.state.dataset);
    this.renderStructure();
    controls.update(this.state, this.resolvedProblem());
    this.writeHash();
    window.addEventListener('hashchange', () => this.applyHash());
    const opened = await this.openSession(() => api.createSession(sessionConfig(this.state)));
    if (!opened) {
      // A link the server refuses (e.g. limits lowered since it was shared): keep the page
      // usable with the defaults, and leave the reason on screen.
      const reason = this.views.error.textContent;
      this.state = structuredClone(defaults);
      this.renderStructure();
      controls.update(this.state, this.resolvedProblem());
      data.select(this.state.dataset);
      this.writeHash();
      await this.openSession(() => api.createSession(sessionConfig(this.state)));
      this.showError(`The link's settings were refused (${reason}); started with the defaults.`, 0);
    }
    // Thumbnails wait for the first frame so their requests never delay it.
    this.afterFirstFrame = () => this.loadThumbnails();
  }

  /** Draw every dataset's thumbnail, one request each, after the first frame has priority. */
  async loadThumbnails() {
    const datasets = Object.keys(this.registry?.datasets ?? {});
    for (const name of datasets) {
      try {
        const preview = await api.fetchPreview(name);
        this.views.data.drawThumbnail(name, preview.kind, [...preview.train, ...preview.test]);
      } catch (error) {
        this.showError(`Could not preview ${name}: ${/** @type {Error} */ (error).message}`);
      }
    }
  }

  /**
   * Create (or import) a session and subscribe to it, replacing the current one.
   * @param {() => Promise<SessionPublic>} create
   * @returns {Promise<boolean>} whether a session was opened
   */
  async openSession(create) {
    let session;
    try {
      session = await create();
    } catch (error) {
      this.showError(/** @type {Error} */ (error).message);
      return false;
    }
    const previous = this.session;
    this.stream?.close();
    if (previous) api.deleteSession(previous.id).catch(() => {});
    this.session = session;
    this.resetHistories();
    this.lastEpoch = -1;
    this.views.data.updateDownload(api.dataCsvUrl(session.id));
    this.stream = new SessionStream(session.ws_url, {
      onFrame: (frame) => this.receiveFrame(frame),
      onMessage: (message) => this.receiveMessage(message),
      onClose: () => this.lostConnection(),
    });
    this.refreshPoints();
    return true;
  }

  /** The session went away (server restart, idle expiry): start a fresh one from the state. */
  lostConnection() {
    // "removed" is followed by a close: stop listening so one loss starts one new session.
    this.stream?.close();
    this.stream = null;
    if (this.reconnects >= 3) {
      this.showError('Lost the connection to the server. Reload the page to start again.', 0);
      return;
    }
    this.reconnects += 1;
    this.showError('Lost the connection to the server; starting a new session…');
    this.session = null;
    setTimeout(() => this.openSession(() => api.createSession(sessionConfig(this.state))), 500);
  }

  /**
   * A JSON message from the stream.
   * @param {any} message
   */
  receiveMessage(message) {
    if (message.type === 'hello' || message.type === 'ack') {
      this.reconnects = 0;
      this.session = message.session;
      this.setStatus(message.session.status, message.session.status_reason);
      if (message.type !== 'ack') return;
      const structuralSet = this.pendingSets.get(message.id);
      this.pendingSets.delete(message.id);
      if (message.command === 'regenerate') {
        this.setState({ seed: message.session.config.seed }, false);
        this.refreshPoints();
      } else if (structuralSet) {
        this.refreshPoints();
      }
    } else if (message.type === 'error') {
      this.showError(message.detail);
      if (this.pendingSets.has(message.id)) {
        // The server refused a change: show what it actually runs.
        this.pendingSets.delete(message.id);
        this.revertToSession();
      }
    } else if (message.type === 'removed') {
      this.lostConnection();
    }
  }

  /** Undo a refused change: the state's config keys go back to the session's config. */
  revertToSession() {
    if (!this.session) return;
    const config = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (this.session.config));
    /** @type {Record<string, unknown>} */
    const patch = {};
    for (const key of CONFIG_KEYS) if (key in config) patch[key] = config[key];
    this.setState(patch, false);
    this.renderStructure();
  }

  /** Fetch the session's points (after creation and after every data change). */
  async refreshPoints() {
    const session = this.session;
    if (!session) return;
    try {
      const fresh = await api.fetchPoints(session);
      if (this.session?.id !== session.id) return;
      this.points = fresh;
      this.pointsDirty = true;
      this.scheduleDraw();
    } catch (error) {
      this.showError(/** @type {Error} */ (error).message);
    }
  }

  /**
   * A binary frame: record its epochs now, keep it as the newest, draw on the next animation frame.
   * @param {Frame} frame
   */
  receiveFrame(frame) {
    this.stats.received += 1;
    const { header } = frame;
    if (header.epoch < this.lastEpoch) this.resetHistories(); // reset or rebuild: epoch 0 again
    if (frame.epochs) {
      const rows = frame.epochs.length / 4;
      for (let r = 0; r < rows; r++) {
        const epoch = header.epochs_first + r;
        if (epoch <= this.lastEpoch) continue;
        this.losses.append(epoch, [frame.epochs[r * 4], frame.epochs[r * 4 + 1]]);
      }
    }
    const names = (header.layers ?? []).map((_, i, all) => (i === all.length - 1 ? 'output' : `layer ${i + 1}`));
    if (names.join('|') !== this.gradNames.join('|')) {
      this.gradNames = names;
      this.grads = new SeriesHistory(names.length);
    }
    if (header.epoch > this.lastEpoch && header.epoch > 0) {
      this.grads.append(header.epoch, (header.layers ?? []).map((l) => l.grad_norm));
    }
    this.lastEpoch = header.epoch;
    this.pending = frame;
    this.scheduleDraw();
  }

  /** Forget the curves (new weights or new data). */
  resetHistories() {
    this.losses.reset();
    this.grads.reset();
    this.lastEpoch = -1;
  }

  /** Ask for one draw on the next animation frame; many frames in between cost one draw. */
  scheduleDraw() {
    if (this.drawScheduled) return;
    this.drawScheduled = true;
    requestAnimationFrame(() => {
      this.drawScheduled = false;
      this.draw();
    });
  }

  /** Draw the newest frame and whatever else changed. */
  draw() {
    const started = performance.now();
    const { controls, network, output, metrics, lossChart, gradChart } = this.views;
    const frame = this.pending ?? this.frame;
    const fresh = this.pending !== null;
    this.pending = null;
    if (frame) {
      const { header } = frame;
      if (fresh) {
        controls.updateEpoch(header.epoch);
        this.setStatus(header.status, header.status_reason);
        if (this.hoveredNeuron !== null && frame.neurons) {
          const g = frame.neuronResolution;
          const cells = frame.neurons.subarray(this.hoveredNeuron * g * g, (this.hoveredNeuron + 1) * g * g);
          const [lo, hi] = frame.header.sections.neurons?.ranges?.[this.hoveredNeuron] ?? [-1, 1];
          const scale = 1 / Math.max(1, Math.abs(lo), Math.abs(hi));
          if (cells.length === g * g) output.showNeuron(cells.map((v) => v * scale), g);
        } else {
          output.updateHeatmap(frame, this.state.discretize);
        }
        network.update(frame, header.n_classes > 2 ? null : frame.output, outputToUnit(header.problem));
        metrics.update(header);
        // Curves move little between frames: redraw them at most every CHART_MS while running.
        if (started - this.chartDrawnAt >= CHART_MS || header.status !== 'running') {
          this.chartDrawnAt = started;
          lossChart.update(this.losses, this.state.log_scale);
          gradChart.update(this.gradNames, this.grads);
        }
        this.views.data.updateClasses(header.problem, header.n_classes);
        output.updateLegend(header.problem, header.n_classes);
        const previous = this.frame;
        this.frame = frame;
        // User points decide the problem and classes only once the server has read them.
        if (this.state.points && previous?.header.n_classes !== header.n_classes) this.renderStructure();
      }
      if (this.pointsDirty) {
        this.pointsDirty = false;
        output.updatePoints(this.points, header.problem, this.state.show_test);
      }
    }
    if (fresh) {
      this.stats.drawn += 1;
      this.stats.drawMs += performance.now() - started;
      if (!this.stats.firstFrameAt) {
        this.stats.firstFrameAt = performance.now();
        setTimeout(() => this.afterFirstFrame(), 0);
      }
      document.body.dataset.drawnFrames = String(this.stats.drawn);
    }
  }

  /**
   * Show a hidden neuron's map in the output view (null: the output again).
   * @param {number | null} neuron
   */
  hoverNeuron(neuron) {
    if (neuron === this.hoveredNeuron) return;
    this.hoveredNeuron = neuron;
    if (this.frame) {
      this.pending = this.pending ?? this.frame;
      this.scheduleDraw();
    }
  }

  /**
   * Show the status on the play button and the diverged banner.
   * @param {string} status
   * @param {string | null} reason
   */
  setStatus(status, reason) {
    this.status = status;
    this.views.controls.updateStatus(status);
    const banner = this.views.diverged;
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
    const box = this.views.error;
    box.textContent = text;
    box.hidden = false;
    clearTimeout(this.errorTimer);
    if (ms) this.errorTimer = window.setTimeout(() => { box.hidden = true; }, ms);
  }

  /**
   * Send a command to the session.
   * @param {Record<string, unknown>} command
   * @returns {number} its id
   */
  command(command) {
    if (!this.stream) return 0;
    return this.stream.send(command);
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

  /** New weights from the seed, same data. */
  reset() {
    this.command({ type: 'reset' });
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
   * Change state keys, write the URL, and tell the session about config changes.
   * @param {Record<string, unknown>} patch
   * @param {boolean} [send] false when the change came from the server
   */
  setState(patch, send = true) {
    const record = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (this.state));
    /** @type {Record<string, unknown>} */
    const changes = {};
    let structural = false;
    for (const [key, value] of Object.entries(patch)) {
      if (JSON.stringify(record[key]) === JSON.stringify(value)) continue;
      record[key] = value;
      if (CONFIG_KEYS.has(key)) {
        changes[key] = value;
        structural ||= STRUCTURAL_KEYS.has(key);
      }
    }
    this.writeHash();
    this.views.controls.update(this.state, this.resolvedProblem());
    if ('show_test' in patch || 'discretize' in patch || 'log_scale' in patch) {
      this.pointsDirty = true;
      this.chartDrawnAt = -Infinity;
      if (this.frame) this.pending = this.frame;
      this.scheduleDraw();
    }
    if (['layers', 'features', 'dataset', 'points', 'problem'].some((k) => k in changes)) this.renderStructure();
    if ('dataset' in changes || 'points' in changes) this.views.data.select(this.state.points ? null : this.state.dataset);
    if (send && Object.keys(changes).length > 0) {
      const id = this.command({ type: 'set', config: changes });
      this.pendingSets.set(id, structural);
    }
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
    this.setState({ dataset: name, points: null, problem: null, loss: null });
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

  /** The problem the state asks for: explicit, else the data's (the last frame knows for user points). */
  resolvedProblem() {
    if (this.state.problem) return this.state.problem;
    if (this.state.points) return this.frame?.header.problem ?? 'binary';
    return this.registry?.datasets[this.state.dataset]?.kind ?? 'binary';
  }

  /** Redraw the network diagram for the state's architecture. */
  renderStructure() {
    const registry = this.registry;
    if (!registry) return;
    const dataset = registry.datasets[this.state.dataset];
    const problem = this.resolvedProblem();
    const nClasses = (this.state.points ? this.frame?.header.n_classes : dataset?.n_classes) ?? 2;
    const activations = Object.keys(registry.activations).filter((a) => a !== 'step' && a !== 'softmax');
    this.views.network.render({
      features: featureList(registry).map((f) => ({ ...f, enabled: this.state.features.includes(f.name) })),
      layers: this.state.layers,
      outputUnits: problem === 'multiclass' ? nClasses : 1,
      activations,
      maxLayers: registry.limits?.max_hidden_layers ?? 6,
      maxUnits: registry.limits?.max_units_per_layer ?? 8,
    });
    const n = this.state.layers.length;
    this.views.layerCount.textContent = `${n} hidden layer${n === 1 ? '' : 's'}`;
    if (this.frame) {
      this.pending = this.frame;
      this.scheduleDraw();
    }
  }

  /**
   * Add a point of the chosen class where the user clicked; the data becomes the user's points.
   * @param {number} x1
   * @param {number} x2
   */
  addPoint(x1, x2) {
    const label = this.views.data.chosenLabel();
    const all = [...this.points.train, ...this.points.test].map((p) => [p[0], p[1], p[2]]);
    all.push([x1, x2, label]);
    const problem = this.frame?.header.problem ?? this.state.problem;
    this.setState({ points: all, problem });
  }

  /**
   * Use the rows of an uploaded CSV as the data.
   * @param {string} text
   */
  async uploadCsv(text) {
    try {
      const parsed = await api.parseCsv(text);
      this.setState({ points: parsed.points, problem: null, loss: null });
    } catch (error) {
      this.showError(`CSV upload: ${/** @type {Error} */ (error).message}`);
    }
  }

  /** Download the trained model as JSON. */
  async exportModel() {
    if (!this.session) return;
    try {
      const exported = await api.exportSession(this.session.id);
      const blob = new Blob([exported], { type: 'application/json' });
      const link = document.createElement('a');
      link.href = URL.createObjectURL(blob);
      link.download = `nn-playground-epoch-${this.lastEpoch}.json`;
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
    const exported = await file.text();
    try {
      JSON.parse(exported); // only to say "not JSON" here rather than as a server error
    } catch {
      this.showError(`Import: ${file.name} is not JSON.`);
      return;
    }
    await this.openSession(async () => {
      const session = await api.importSession(exported);
      const config = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (session.config));
      /** @type {Record<string, unknown>} */
      const patch = {};
      for (const key of CONFIG_KEYS) if (key in config) patch[key] = config[key];
      this.setState(patch, false);
      this.renderStructure();
      return session;
    });
  }

  /** The window changed size: lay the diagram and the charts out again. */
  relayout() {
    this.renderStructure();
    this.views.lossChart.build(this.state.log_scale, this.losses);
    this.views.gradChart.build(this.gradNames, this.grads);
  }

  /** Leave: close the stream and delete the session so it stops using the server's CPU. */
  dispose() {
    this.stream?.close();
    this.stream = null;
    if (this.session) {
      // keepalive lets the request outlive the page when this runs on pagehide.
      fetch(`/api/sessions/${encodeURIComponent(this.session.id)}`, { method: 'DELETE', keepalive: true }).catch(() => {});
      this.session = null;
    }
  }

  /** The user edited the URL (or went back): apply what differs. */
  applyHash() {
    if (!this.defaults) return;
    const wanted = parseState(location.hash, this.defaults);
    this.setState(/** @type {Record<string, unknown>} */ (/** @type {unknown} */ (wanted)));
  }

  /** Write the state into the URL without adding a history entry per knob. */
  writeHash() {
    const hash = `#${serializeState(this.state)}`;
    if (location.hash !== hash) history.replaceState(null, '', hash);
  }
}
