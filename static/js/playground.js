/**
 * What the page runs: the state (mirrored in the URL), the registry, the live session and the
 * frames it streams, and the network diagram kept in step with the state. The controller
 * (controller.js) builds on this and decides what each user intent does.
 */
import * as api from './api.js';
import * as owner from './owner.js';
import { FrameDrawer } from './frame_drawer.js';
import { SessionLink } from './session_link.js';
import {
  PROPERTIES, STRUCTURAL_KEYS, defaultState, parseState, serializeState, sessionConfig,
} from './state.js';
import { TrainingCurves } from './training_curves.js';
import { NoticesView } from './views/notices.js';
import { PythonPanelView } from './views/python_panel.js';

/** @typedef {import('./types.js').PageState} PageState */
/** @typedef {import('./types.js').Registry} Registry */
/** @typedef {import('./types.js').SessionPublic} SessionPublic */
/** @typedef {import('./types.js').Frame} Frame */
/** @typedef {import('./types.js').DataPoints} DataPoints */
/** @typedef {import('./types.js').TrainingWarning} TrainingWarning */

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

const CONFIG_KEYS = new Set(PROPERTIES.filter((p) => p.config).map((p) => p.key));
/** State keys that change what the network diagram shows. */
const DIAGRAM_KEYS = ['layers', 'features', 'dataset', 'points', 'problem'];
/** State keys that change which data the session trains on (the points are read again). */
const DATA_KEYS = ['dataset', 'points', 'test_points', 'n_samples', 'noise', 'train_ratio', 'seed'];
/** State keys that only change how the points and the charts are drawn. */
const DISPLAY_KEYS = ['show_test', 'discretize', 'log_scale'];

/**
 * The registry's features as [{name, label}] in menu order (an older server sent a name list).
 * @param {Registry} registry
 * @returns {{name: string, label: string}[]}
 */
export function featureList(registry) {
  const features = registry.features ?? [];
  if (Array.isArray(features)) return features.map((name) => ({ name, label: name }));
  return Object.entries(features).map(([name, spec]) => ({ name, label: spec.label ?? name }));
}

export class Playground {
  /** @param {Views} views */
  constructor(views) {
    this.views = views;
    /** @type {Registry | null} */
    this.registry = null;
    /** @type {PageState} */
    this.state = defaultState();
    /** @type {PageState | null} the defaults (server's SessionConfig defaults), once known */
    this.defaults = null;
    this.status = 'paused';
    /** @type {DataPoints} */
    this.points = { train: [], test: [] };
    /** @type {SessionPublic | null} */
    this.liveSession = null;
    this.notices = new NoticesView(views.diverged, views.error, document.getElementById('warning'));
    const panel = document.getElementById('python-panel');
    /** @type {PythonPanelView | null} */
    this.pythonPanel = panel
      ? new PythonPanelView(
        /** @type {HTMLDetailsElement} */ (panel),
        /** @type {HTMLElement} */ (document.getElementById('python-session-id')),
        /** @type {HTMLElement} */ (document.getElementById('python-body')),
      )
      : null;
    /** whether the session on show is someone else's: watched, its controls disabled */
    this.readOnly = false;
    this.curves = new TrainingCurves();
    this.drawer = new FrameDrawer(this);
    this.link = new SessionLink(this);
    this.pythonPanel?.bindToggle((open) => this.link.poll(open));
  }

  // What lessons_main.js, the browser tests and the page benchmark read on window.playground.

  /** @returns {SessionPublic | null} the live session as the server last described it */
  get session() {
    return this.liveSession;
  }

  /** The "Use from Python" panel follows every new session. */
  set session(session) {
    this.liveSession = session;
    this.pythonPanel?.update(session?.id ?? null, this.readOnly ? null : owner.token());
  }

  /**
   * Watch someone else's session (on) or drive our own (off): the controls that would change
   * the session are disabled and a note says so; the display toggles stay.
   * @param {boolean} on
   */
  setReadOnly(on) {
    this.readOnly = on;
    document.body.classList.toggle('read-only', on);
    const note = document.getElementById('read-only');
    if (note) {
      note.hidden = !on;
      const id = note.querySelector('#read-only-id');
      if (id) id.textContent = this.session?.id ?? '';
    }
    // Inputs a watcher may not use; display-only ones (log scale, show test, discretize) stay.
    const fields = document.querySelectorAll(
      '#controls .controls-row :is(input, select, button), #controls .controls-more :is(input, select, button),'
      + ' .data-column :is(input, select, button), .layer-buttons button',
    );
    for (const field of /** @type {NodeListOf<HTMLInputElement>} */ (fields)) {
      if (on && !field.disabled) {
        field.disabled = true;
        field.dataset.readOnly = 'true';
      } else if (!on && field.dataset.readOnly) {
        field.disabled = false;
        delete field.dataset.readOnly;
      }
    }
    for (const id of ['network', 'datasets', 'output-points', 'csv-download']) {
      const node = document.getElementById(id);
      if (node) node.inert = on;
    }
    this.pythonPanel?.update(this.session?.id ?? null, on ? null : owner.token());
  }

  /** @returns {Set<string> | null} the config fields the server knows (null: not known yet) */
  get serverFields() {
    const defaults = this.registry?.defaults;
    return defaults ? new Set(Object.keys(defaults)) : null;
  }

  /** @returns {Map<number, boolean>} ids of `set` commands in flight: structural or not */
  get pendingSets() {
    return this.link.pendingSets;
  }

  /** @returns {Frame | null} the last frame drawn */
  get frame() {
    return this.drawer.frame;
  }

  /** @returns {Frame | null} the newest frame not drawn yet */
  get pending() {
    return this.drawer.pending;
  }

  set pending(frame) {
    this.drawer.pending = frame;
  }

  /** Counters the page benchmark reads (frames received and drawn, main-thread ms drawing). */
  get stats() {
    return this.drawer.stats;
  }

  /** The train and test loss curves. */
  get losses() {
    return this.curves.losses;
  }

  /** The newest epoch recorded (-1: none). */
  get lastEpoch() {
    return this.curves.lastEpoch;
  }

  /** Ask for one draw on the next animation frame. */
  scheduleDraw() {
    this.drawer.schedule();
  }

  /**
   * Create (or import) a session and subscribe to it, replacing the current one.
   * @param {() => Promise<SessionPublic>} create
   * @returns {Promise<boolean>} whether a session was opened
   */
  openSession(create) {
    return this.link.open(create);
  }

  /** Open a new session with the state's config. */
  openFromState() {
    return this.openSession(() => api.createSession(sessionConfig(this.state, this.serverFields)));
  }

  /**
   * Send a command to the session.
   * @param {Record<string, unknown>} command
   * @returns {number} its id
   */
  command(command) {
    return this.link.send(command);
  }

  /** Done: close the stream and delete our session so it stops using the server's CPU. */
  dispose() {
    this.link.close();
  }

  /** The page goes away (pagehide): stop watching, keep our session for a reload to reopen. */
  leave() {
    this.link.leave();
  }

  /** Fetch the session's points (after creation and after every data change). */
  async refreshPoints() {
    const session = this.session;
    if (!session) return;
    try {
      const fresh = this.readOnly ? await api.fetchWatchedPoints(session) : await api.fetchPoints(session);
      if (this.session?.id !== session.id) return;
      this.points = fresh;
      this.drawer.pointsChanged();
    } catch (error) {
      // A watcher may not read the owner's data (the owner's token): the boundary still shows.
      if (!this.readOnly) this.showError(/** @type {Error} */ (error).message);
    }
  }

  /**
   * Make the state's config keys those of a session (refused change, imported model).
   * @param {SessionPublic} session
   */
  adoptConfig(session) {
    const config = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (session.config));
    /** @type {Record<string, unknown>} */
    const patch = {};
    for (const key of CONFIG_KEYS) if (key in config) patch[key] = config[key];
    this.setState(patch, false);
    this.renderStructure();
  }

  /**
   * A session read from the server (the "Use from Python" panel polls it): adopt config changes
   * someone else made, e.g. a script. Only config keys the page knows; none of its own in flight.
   * @param {SessionPublic} session
   */
  adoptExternal(session) {
    if (this.session?.id !== session.id) return;
    const config = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (session.config));
    const record = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (this.state));
    const changed = [...CONFIG_KEYS].filter(
      (key) => key in config && JSON.stringify(config[key]) !== JSON.stringify(record[key]),
    );
    this.session = session;
    if (changed.length === 0) return;
    this.adoptConfig(session);
    if (changed.some((key) => DATA_KEYS.includes(key))) this.refreshPoints();
  }

  /**
   * Show the server's instability warning (null: none).
   * @param {TrainingWarning | null} warning
   */
  updateWarning(warning) {
    this.notices.updateWarning(warning);
  }

  /**
   * Show the status on the play button and the diverged banner.
   * @param {string} status
   * @param {string | null} reason
   */
  setStatus(status, reason) {
    this.status = status;
    this.views.controls.updateStatus(status);
    this.notices.updateStatus(status, reason);
  }

  /**
   * Show an error for a while (0: until replaced).
   * @param {string} text
   * @param {number} [ms]
   * @param {string} [topic] what it is about, so it can be cleared once that is fixed
   */
  showError(text, ms = 8000, topic = '') {
    this.notices.showError(text, ms, topic);
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
    const known = this.serverFields;
    for (const [key, value] of Object.entries(patch)) {
      if (JSON.stringify(record[key]) === JSON.stringify(value)) continue;
      record[key] = value;
      if (CONFIG_KEYS.has(key) && (!known || known.has(key))) {
        changes[key] = value;
        structural ||= STRUCTURAL_KEYS.has(key);
      }
    }
    this.writeHash();
    this.views.controls.update(this.state, this.resolvedProblem());
    if (DISPLAY_KEYS.some((k) => k in patch)) this.drawer.redrawAll();
    if (DIAGRAM_KEYS.some((k) => k in changes)) this.renderStructure();
    if ('dataset' in changes || 'points' in changes) this.views.data.select(this.state.points ? null : this.state.dataset);
    if (send && Object.keys(changes).length > 0) this.link.sendSet(changes, structural);
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
    // A reload with this hash reopens our session (controller.start compares them).
    if (this.session && !this.readOnly) owner.rememberSession(this.session.id, hash);
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
    this.drawer.redraw();
  }

  /** The window changed size: lay the diagram and the charts out again. */
  relayout() {
    this.renderStructure();
    this.views.lossChart.build(this.state.log_scale, this.curves.losses);
    this.views.gradChart.build(this.curves.gradNames, this.curves.grads);
  }
}
