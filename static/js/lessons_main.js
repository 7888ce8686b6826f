/**
 * Wires the lessons and instruments (issue 5) onto the playground page, and decides what each
 * lesson, try-this step and instrument button does. It drives the page's own controller
 * (window.playground) for live sessions, so a lesson's preset shows in every panel of the page.
 *
 * Mounts itself on #lessons-panel (created before the page's columns when the template has none).
 */
import * as api from './lessons_api.js';
import { el } from './dom.js';
import { LessonsView } from './lessons_view.js';
import { PerceptronView } from './perceptron_view.js';
import { RaceView } from './race_view.js';
import { decodeFrame } from './stream.js';
import { sessionConfig } from './state.js';
import { TimeTravelView } from './timetravel_view.js';
import { TraceView } from './trace_view.js';
import { outputToUnit } from './views/output.js';

/** Epochs per race request: small enough to redraw the race often, large enough to be cheap. */
const RACE_CHUNK = 10;

/**
 * Resolve once `test()` is truthy (polling each animation frame).
 * @param {() => any} test
 * @returns {Promise<any>}
 */
function until(test) {
  return new Promise((resolve) => {
    const poll = () => {
      const value = test();
      if (value) resolve(value);
      else requestAnimationFrame(poll);
    };
    poll();
  });
}

/** The panel: the lessons always in view, then one tab per instrument (none open at first). */
function mountPanel() {
  let panel = document.getElementById('lessons-panel');
  if (!panel) {
    panel = el('section', { id: 'lessons-panel', 'aria-label': 'Lessons and instruments' });
    const columns = document.querySelector('main');
    if (columns) columns.before(panel);
    else document.body.append(panel);
  }
  panel.classList.add('lessons-panel');
  // The playground stays the page's main view: the whole panel folds away to one line.
  const fold = el('button', { type: 'button', id: 'lessons-fold', class: 'lessons-fold', 'aria-expanded': 'true', title: 'Fold the lessons and instruments away' }, 'Hide lessons ▴');
  fold.addEventListener('click', () => {
    const open = panel.classList.toggle('folded') === false;
    fold.setAttribute('aria-expanded', String(open));
    fold.textContent = open ? 'Hide lessons ▴' : 'Lessons and instruments ▾';
  });
  panel.append(fold);
  const lessons = el('div', { id: 'lessons-pane', class: 'instrument-pane' });
  const tabs = el('div', { class: 'instrument-tabs', role: 'tablist' });
  /** @type {Record<string, HTMLElement>} */
  const panes = { lessons };
  for (const [id, title] of [['perceptron', 'Perceptron'], ['trace', 'Backprop trace'], ['race', 'Optimizer race'], ['timetravel', 'Time travel']]) {
    const tab = el('button', { type: 'button', role: 'tab', id: `tab-${id}`, 'aria-controls': `${id}-pane`, 'aria-selected': 'false' }, title);
    tab.addEventListener('click', () => showPane(id));
    tabs.append(tab);
    panes[id] = el('div', { id: `${id}-pane`, role: 'tabpanel', class: 'instrument-pane', hidden: '' });
  }
  panel.append(lessons, tabs, ...Object.values(panes).slice(1));
  /** @param {string} id an instrument's pane to show (the lessons stay) */
  function showPane(id) {
    for (const [key, pane] of Object.entries(panes)) {
      if (key === 'lessons') continue;
      pane.hidden = key !== id;
      document.getElementById(`tab-${key}`)?.setAttribute('aria-selected', String(key === id));
    }
  }
  return { panes, showPane };
}

class LessonsController {
  constructor() {
    const { panes, showPane } = mountPanel();
    this.showPane = showPane;
    this.lessons = new LessonsView(panes.lessons);
    this.perceptron = new PerceptronView(panes.perceptron);
    this.trace = new TraceView(panes.trace);
    this.race = new RaceView(panes.race);
    this.timetravel = new TimeTravelView(panes.timetravel);
    /** @type {any} the open lesson */
    this.lesson = null;
    /** @type {string | null} */
    this.raceId = null;
    /** @type {Record<string, unknown>} the race's base config */
    this.raceConfig = {};
    this.racing = Promise.resolve();
    this.forkTimer = 0;
    this.scrubTicket = 0;
    /** @type {Record<string, unknown>} perceptron parameters of the open lesson */
    this.perceptronParams = {};

    this.lessons.bindSelect((id) => this.open(id));
    this.lessons.bindTry((index) => this.tryStep(index));
    this.trace.bind({ lecture: (lr) => this.traceLecture(lr), session: (start) => this.traceSession(start) });
    this.race.bind({ start: () => this.startRace(this.race.racers()), run: (n) => this.runRace(n) });
    this.timetravel.bind({
      record: () => this.record(),
      scrub: (epoch) => this.scrub(epoch),
      now: () => this.backToNow(),
      fork: (epoch, changes) => this.fork(epoch, changes),
    });
  }

  /** The page's controller once its first session exists. */
  playground() {
    return until(() => {
      const pg = /** @type {any} */ (window).playground;
      return pg && pg.session && pg.defaults ? pg : null;
    });
  }

  async start() {
    this.lessons.build(await api.fetchLessons());
    const pg = await this.playground();
    if (pg.registry?.optimizers) this.race.setOptimizers(pg.registry.optimizers);
  }

  /** @param {string} message */
  showError(message) {
    /** @type {any} */ (window).playground?.showError?.(message);
  }

  /**
   * Open a lesson: its card, its preset on the page, and its instrument.
   * @param {string} id
   */
  async open(id) {
    try {
      this.lesson = await api.fetchLesson(id);
    } catch (error) {
      this.showError(/** @type {Error} */ (error).message);
      return;
    }
    const lesson = this.lesson;
    this.lessons.show(lesson);
    if (Object.keys(lesson.config).length) await this.applyConfig(lesson.config);
    if (lesson.kind === 'perceptron') this.perceptronParams = { ...lesson.instrument };
    if (lesson.kind === 'race') {
      this.race.setRacers(lesson.instrument.racers);
      this.raceConfig = lesson.config;
    }
  }

  /**
   * Put a session config on the page: every config field back to its default, then the preset.
   * The session is patched over REST (awaited, so a following command sees the new config);
   * the page's controls follow without sending the change a second time.
   * @param {Record<string, unknown>} config
   */
  async applyConfig(config) {
    const pg = await this.playground();
    const full = { ...sessionConfig(pg.defaults), ...config };
    pg.setState(full, false);
    pg.session = await api.patchSession(pg.session.id, full);
    pg.renderStructure();
    await pg.refreshPoints();
  }

  /**
   * Run one try-this step of the open lesson.
   * @param {number} index
   */
  async tryStep(index) {
    const lesson = this.lesson;
    const step = lesson?.try_this[index];
    if (!step) return;
    this.lessons.markStep(index, 'running');
    try {
      const message = await this.runStep(lesson, step);
      this.lessons.markStep(index, 'done', message);
    } catch (error) {
      this.lessons.markStep(index, 'error', /** @type {Error} */ (error).message);
    }
  }

  /**
   * @param {any} lesson
   * @param {any} step
   * @returns {Promise<string>} what happened, in a few words
   */
  async runStep(lesson, step) {
    const instrument = { ...lesson.instrument, ...step.instrument };
    if (lesson.kind === 'perceptron') {
      await this.applyConfig({ ...lesson.config, ...step.config });
      this.showPane('perceptron');
      const run = await api.runPerceptron(instrument);
      this.perceptron.show(run);
      return run.converged ? `converged in ${run.epochs.length} passes` : `no convergence in ${run.epochs.length} passes`;
    }
    if (lesson.kind === 'backprop') {
      await this.traceLecture(instrument.learning_rate);
      return 'see the Backprop trace tab';
    }
    if (lesson.kind === 'race') {
      this.race.setRacers(instrument.racers);
      this.raceConfig = lesson.config;
      await this.startRace(instrument.racers);
      await this.runRace(instrument.epochs ?? 100);
      return `raced ${instrument.epochs ?? 100} epochs`;
    }
    await this.applyConfig({ ...lesson.config, ...step.config });
    if (step.command) {
      const pg = await this.playground();
      // From the preset's first weights, whatever ran before: reset, then the step's command
      // (over REST, a step answers when its epochs are done; the page watches them stream).
      await api.sessionCommand(pg.session.id, { type: 'reset' });
      const session = await api.sessionCommand(pg.session.id, step.command);
      pg.session = session;
      const { train_loss: train, test_loss: test } = session.metrics ?? {};
      return `epoch ${session.epoch}: train loss ${train?.toFixed(3) ?? '–'}, test loss ${test?.toFixed(3) ?? '–'}`;
    }
    return 'applied';
  }

  // ---- backprop trace ------------------------------------------------------------------------

  /** @param {number} learningRate */
  async traceLecture(learningRate) {
    this.showPane('trace');
    try {
      this.trace.showLecture(await api.backprop({ preset: 'lecture', learning_rate: learningRate }));
    } catch (error) {
      this.trace.showError(/** @type {Error} */ (error).message);
    }
  }

  /** @param {number} [batchStart] the batch's first training point */
  async traceSession(batchStart = 0) {
    this.showPane('trace');
    const pg = await this.playground();
    try {
      this.trace.showTrace(await api.sessionTrace(pg.session.id, { batch_start: batchStart }));
    } catch (error) {
      this.trace.showError(/** @type {Error} */ (error).message);
    }
  }

  // ---- race ----------------------------------------------------------------------------------

  /** @param {Record<string, unknown>[]} racers */
  async startRace(racers) {
    this.showPane('race');
    const pg = await this.playground();
    const config = Object.keys(this.raceConfig).length ? { ...sessionConfig(pg.defaults), ...this.raceConfig } : sessionConfig(pg.state);
    if (this.raceId) api.deleteRace(this.raceId).catch(() => {});
    try {
      const race = await api.createRace({ config: { ...config, frame_rate: undefined }, racers });
      this.raceId = race.id;
      const dataset = pg.registry?.datasets?.[/** @type {string} */ (config.dataset)];
      this.race.setProblem(/** @type {string} */ (config.problem) ?? dataset?.kind ?? 'binary', dataset?.n_classes ?? 2);
      this.race.setPoints(/** @type {number[][] | null} */ (config.points) ?? (await api.previewPoints(config)));
      this.race.showRace(race);
    } catch (error) {
      this.race.showError(/** @type {Error} */ (error).message);
    }
  }

  /**
   * Run `epochs` more in chunks, redrawing after each, one run at a time.
   * @param {number} epochs
   */
  runRace(epochs) {
    this.racing = this.racing.then(async () => {
      let left = epochs;
      while (left > 0 && this.raceId) {
        const n = Math.min(RACE_CHUNK, left);
        try {
          this.race.append(await api.stepRace(this.raceId, n));
        } catch (error) {
          this.race.showError(/** @type {Error} */ (error).message);
          return;
        }
        left -= n;
      }
    });
    return this.racing;
  }

  // ---- time travel ---------------------------------------------------------------------------

  async record() {
    this.showPane('timetravel');
    const pg = await this.playground();
    if (pg.status === 'running') pg.command({ type: 'pause' });
    try {
      this.timetravel.showMessage('Replaying the run…');
      this.timetravel.showSummary(await api.createReplay(pg.session.id));
      await this.scrub(this.timetravel.epoch());
    } catch (error) {
      this.timetravel.showMessage(/** @type {Error} */ (error).message);
    }
  }

  /**
   * Draw a past epoch in the page's own views (network, neurons, boundary, epoch counter).
   * @param {number} epoch
   */
  async scrub(epoch) {
    const pg = await this.playground();
    if (pg.status === 'running') pg.command({ type: 'pause' });
    // Sliding fires many requests: only the newest one may draw.
    const ticket = ++this.scrubTicket;
    try {
      const buffer = await api.fetchPastFrame(pg.session.id, epoch);
      if (ticket !== this.scrubTicket) return;
      const frame = decodeFrame(buffer);
      const { header } = frame;
      const { network, output, controls, metrics } = pg.views;
      output.updateHeatmap(frame, pg.state.discretize);
      network.update(frame, header.n_classes > 2 ? null : frame.output, outputToUnit(header.problem));
      controls.updateEpoch(header.epoch);
      metrics.update(header);
      this.timetravel.showEpoch(header.epoch);
    } catch (error) {
      this.timetravel.showMessage(/** @type {Error} */ (error).message);
    }
  }

  /** Draw the live frame again. */
  async backToNow() {
    const pg = await this.playground();
    pg.pending = pg.frame;
    pg.scheduleDraw();
    this.timetravel.showNow();
  }

  /**
   * Fork a new live session from a past epoch; the page switches to it and the chart compares.
   * @param {number} epoch
   * @param {Record<string, unknown>} changes
   */
  async fork(epoch, changes) {
    const pg = await this.playground();
    let forked;
    try {
      forked = await api.fork(pg.session.id, epoch, changes);
    } catch (error) {
      this.timetravel.showMessage(/** @type {Error} */ (error).message);
      return;
    }
    await pg.openSession(async () => forked);
    pg.setState(changes, false);
    this.timetravel.showNow();
    this.timetravel.showMessage(`Forked at epoch ${forked.epoch} with ${JSON.stringify(changes)}: press play and compare.`);
    clearInterval(this.forkTimer);
    const draw = () => this.timetravel.compare(forked.epoch, pg.losses.columns);
    draw();
    this.forkTimer = window.setInterval(() => {
      if (pg.session?.id !== forked.id) clearInterval(this.forkTimer);
      else draw();
    }, 500);
  }
}

const lessonsController = new LessonsController();
// Exposed for the browser tests (read-only use), as the page exposes window.playground.
/** @type {any} */ (window).lessons = lessonsController;
lessonsController.start().catch((error) => lessonsController.showError(`Could not load the lessons: ${error.message}`));
