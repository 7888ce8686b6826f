/**
 * Wires the lessons and instruments (issue 5) onto the playground page, and decides what each
 * lesson, try-this step and instrument button does. It drives the page's own controller
 * (window.playground) for live sessions, so a lesson's preset shows in every panel of the page,
 * beside the lesson: the lessons live in a side panel (lessons_panel.js), the playground stays in
 * view, and the steps about watching train at the lesson's pace (its config's `speed`).
 *
 * Mounts itself on the template's #lessons-panel and #lessons-toggle (created when missing).
 */
import * as api from './lessons_api.js';
import { el } from './dom.js';
import { LessonsPanel } from './lessons_panel.js';
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
/** How often a running step's progress line is refreshed (ms). */
const PROGRESS_MS = 250;

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

/**
 * @param {number} ms
 * @returns {Promise<void>}
 */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The panel on the template's aside and Lessons button (made here for a page without them). */
function mountPanel() {
  let panel = document.getElementById('lessons-panel');
  if (!panel) {
    panel = el('aside', { id: 'lessons-panel', 'aria-label': 'Lessons and instruments', hidden: '' });
    document.body.append(panel);
  }
  let toggle = /** @type {HTMLButtonElement | null} */ (document.getElementById('lessons-toggle'));
  if (!toggle) {
    toggle = /** @type {HTMLButtonElement} */ (el('button', { type: 'button', id: 'lessons-toggle', class: 'lessons-toggle', 'aria-expanded': 'false', 'aria-controls': 'lessons-panel' }, 'Lessons'));
    (document.querySelector('header') ?? document.body).append(toggle);
  }
  return new LessonsPanel(panel, toggle);
}

class LessonsController {
  constructor() {
    this.panel = mountPanel();
    const panes = this.panel.panes;
    this.lessons = new LessonsView(this.panel.lessons);
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
    this.panel.onTab = (id) => this.firstLook(id);
    this.perceptron.bind((params) => this.runPerceptron(params));
    this.trace.bind({ lecture: (lr) => this.traceLecture(lr), session: (start) => this.traceSession(start) });
    this.race.bind({
      start: (epochs) => this.startRace(this.race.racers()).then(() => this.runRace(epochs)),
      run: (n) => this.runRace(n),
    });
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

  /** @param {string} id an instrument pane to show */
  showPane(id) {
    this.panel.showPane(id);
  }

  /**
   * An instrument's tab opened by the user: never an empty box. The perceptron runs its default
   * table, the trace follows the live network; the race and time travel say what to press.
   * @param {string} id
   */
  async firstLook(id) {
    if (id === 'perceptron' && !this.perceptron.run) await this.runPerceptron(this.perceptron.params());
    if (id === 'trace' && !this.trace.shown) await this.traceSession(0);
    if (id === 'timetravel') {
      const pg = await this.playground();
      this.timetravel.showHint(pg.lastEpoch);
    }
  }

  /**
   * Run the perceptron rule and replay it.
   * @param {Record<string, unknown>} params
   */
  async runPerceptron(params) {
    this.showPane('perceptron');
    try {
      const run = await api.runPerceptron(params);
      this.perceptron.show(run);
      return run;
    } catch (error) {
      this.perceptron.showError(/** @type {Error} */ (error).message);
      throw error;
    }
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
    this.panel.open(false);
    // A lesson about the playground folds the instruments away, so the playground keeps its room.
    if (lesson.kind === 'session') this.panel.hidePanes();
    this.lessons.show(lesson);
    this.panel.body.scrollTop = 0;
    if (Object.keys(lesson.config).length) await this.applyConfig(lesson.config);
    if (lesson.kind === 'perceptron') {
      this.perceptronParams = { ...lesson.instrument };
      this.perceptron.setParams(this.perceptronParams);
    }
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
    // The preset's own first weights (init_draw 0), at the page's pace unless the lesson sets one.
    const full = { ...sessionConfig(pg.defaults), ...config };
    if ('init_draw' in full) full.init_draw = 0;
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
      const message = await this.runStep(lesson, step, index);
      this.lessons.markStep(index, 'done', message);
    } catch (error) {
      this.lessons.markStep(index, 'error', /** @type {Error} */ (error).message);
    }
  }

  /**
   * @param {any} lesson
   * @param {any} step
   * @param {number} index
   * @returns {Promise<string>} what happened, in a few words
   */
  async runStep(lesson, step, index) {
    const instrument = { ...lesson.instrument, ...step.instrument };
    if (lesson.kind === 'perceptron') {
      await this.applyConfig({ ...lesson.config, ...step.config });
      this.perceptron.setParams(instrument);
      const run = await this.runPerceptron(this.perceptron.params());
      return run.converged ? `converged in ${run.epochs.length} passes` : `no convergence in ${run.epochs.length} passes`;
    }
    if (lesson.kind === 'backprop') {
      await this.traceLecture(instrument.learning_rate);
      return 'see the Backprop trace tab';
    }
    if (lesson.kind === 'race') {
      this.race.setRacers(instrument.racers);
      this.raceConfig = lesson.config;
      const epochs = instrument.epochs ?? 100;
      this.race.setEpochs(epochs);
      await this.startRace(instrument.racers);
      await this.runRace(epochs);
      return `raced ${epochs} epochs`;
    }
    await this.applyConfig({ ...lesson.config, ...step.config });
    if (step.command) return this.watchStep(step.command, index);
    return 'applied';
  }

  /**
   * Run a step's command from the preset's first weights, at the session's pace, reporting the
   * epochs as they pass: the learner watches the network and the output change beside the lesson.
   * @param {Record<string, any>} command
   * @param {number} index the try-this step's index (its progress line)
   * @returns {Promise<string>}
   */
  async watchStep(command, index) {
    const pg = await this.playground();
    const id = pg.session.id;
    // Same start, whatever ran before (a plain reset would re-roll the weights); then the step,
    // over REST: it answers when its epochs are done while the page watches them stream.
    if (pg.status === 'running') await api.sessionCommand(id, { type: 'pause' });
    await api.sessionCommand(id, { type: 'reset', same_start: true });
    const speed = pg.state.speed;
    const n = command.n ?? 1;
    this.revealOutput();
    const progress = window.setInterval(() => {
      const epoch = Math.max(0, pg.lastEpoch);
      this.lessons.markStep(index, 'running', `training${speed ? ` at ${speed} epochs/s` : ''}: epoch ${epoch} of ${n}`);
    }, PROGRESS_MS);
    try {
      const session = await api.sessionCommand(id, command);
      if (pg.session?.id === id) pg.session = session;
      const { train_loss: train, test_loss: test } = session.metrics ?? {};
      return `epoch ${session.epoch}: train loss ${train?.toFixed(3) ?? '–'}, test loss ${test?.toFixed(3) ?? '–'}`;
    } finally {
      clearInterval(progress);
    }
  }

  /**
   * Scroll the page so the output heatmap is whole in the part of the window the panel leaves
   * (on a phone the panel is a bottom sheet over the lower half; beside the page it covers none).
   */
  revealOutput() {
    const heatmap = document.getElementById('output-heatmap');
    if (!heatmap) return;
    const shown = heatmap.getBoundingClientRect();
    const sheet = this.panel.isOpen ? this.panel.panel.getBoundingClientRect() : null;
    const bottom = sheet && sheet.left <= 0 ? sheet.top : window.innerHeight;
    if (shown.top >= 0 && shown.bottom <= bottom) return;
    // The heatmap with its metrics line and loss chart above it when they fit, else the heatmap.
    const column = heatmap.closest('.output-column')?.getBoundingClientRect() ?? shown;
    const top = shown.bottom - column.top <= bottom ? column.top : shown.top - 8;
    window.scrollBy({ top, behavior: 'auto' });
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
   * Run `epochs` more in chunks, redrawing after each, one run at a time, no faster than the
   * page's pace (the Speed control, epochs per second; max: as fast as the server answers).
   * @param {number} epochs
   */
  runRace(epochs) {
    this.racing = this.racing.then(async () => {
      const pg = await this.playground();
      let left = epochs;
      while (left > 0 && this.raceId) {
        const n = Math.min(RACE_CHUNK, left);
        const due = performance.now() + (pg.state.speed ? (1000 * n) / pg.state.speed : 0);
        try {
          this.race.append(await api.stepRace(this.raceId, n));
        } catch (error) {
          this.race.showError(/** @type {Error} */ (error).message);
          return;
        }
        left -= n;
        if (left > 0) await sleep(due - performance.now());
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
