/**
 * Lessons view: the menu of the lecture's eight lessons (their numbers only once one is open, to
 * leave the panel's height to it) and the open lesson's card, with a way on to the next lesson.
 */
import { el } from './dom.js';

/**
 * @typedef {object} TryThis
 * @property {string} action
 * @property {string} expect
 * @property {Record<string, unknown>} config
 * @property {Record<string, unknown> | null} command
 * @property {Record<string, unknown>} instrument
 *
 * @typedef {object} Lesson
 * @property {string} id
 * @property {number} number
 * @property {string} title
 * @property {string} section
 * @property {string} kind   "session" | "perceptron" | "backprop" | "race"
 * @property {string} text
 * @property {Record<string, unknown>} config
 * @property {Record<string, unknown>} instrument
 * @property {TryThis[]} try_this
 * @property {Record<string, any> | null} demo
 */

export class LessonsView {
  /** @param {HTMLElement} container */
  constructor(container) {
    this.container = container;
    this.menu = el('nav', { class: 'lesson-menu', 'aria-label': 'Lessons' });
    this.card = el('article', { class: 'lesson-card', id: 'lesson-card', hidden: '' });
    container.append(this.menu, this.card);
    /** @type {(id: string) => void} */
    this.onSelect = () => {};
    /** @type {(index: number) => void} */
    this.onTry = () => {};
    /** @type {HTMLElement[]} */
    this.stepStatus = [];
    /** @type {string[]} lesson ids in the lecture's order */
    this.order = [];
  }

  /** @param {(id: string) => void} handler */
  bindSelect(handler) {
    this.onSelect = handler;
  }

  /** @param {(index: number) => void} handler called with the try-this step's index */
  bindTry(handler) {
    this.onTry = handler;
  }

  /**
   * One button per lesson, in the lecture's order.
   * @param {{id: string, number: number, title: string}[]} lessons
   */
  build(lessons) {
    this.menu.replaceChildren();
    this.order = lessons.map((lesson) => lesson.id);
    for (const lesson of lessons) {
      const name = `${lesson.number}. ${lesson.title}`;
      const button = el('button', { type: 'button', class: 'lesson-button', 'data-lesson': lesson.id, title: name });
      button.append(el('span', { class: 'lesson-number' }, `${lesson.number}.`), el('span', { class: 'lesson-name' }, ` ${lesson.title}`));
      button.addEventListener('click', () => this.onSelect(lesson.id));
      this.menu.append(button);
    }
  }

  /**
   * Show a lesson: title, lecture section, text, the demo (if any) and its steps.
   * @param {Lesson} lesson
   */
  show(lesson) {
    for (const button of this.menu.querySelectorAll('button')) {
      button.setAttribute('aria-current', String(button.getAttribute('data-lesson') === lesson.id));
    }
    this.menu.classList.add('compact');
    this.card.hidden = false;
    this.card.dataset.lesson = lesson.id;
    const steps = el('ol', { class: 'try-this' });
    this.stepStatus = lesson.try_this.map((step, index) => {
      const item = el('li', { 'data-step': String(index) });
      const button = el('button', { type: 'button', class: 'try-button' }, 'Try');
      button.addEventListener('click', () => this.onTry(index));
      const status = el('span', { class: 'try-status', role: 'status' });
      item.append(button, el('span', { class: 'try-action' }, step.action), el('span', { class: 'try-expect' }, step.expect), status);
      steps.append(item);
      return status;
    });
    this.card.replaceChildren(
      el('h2', {}, `Lesson ${lesson.number}: ${lesson.title}`),
      el('p', { class: 'lesson-section' }, `Lecture: ${lesson.section}`),
      el('p', { class: 'lesson-text' }, lesson.text),
      ...(lesson.demo ? [this.demo(lesson.demo)] : []),
      el('h3', {}, 'Try this'),
      steps,
      ...this.nextButton(lesson.id),
    );
  }

  /**
   * "Next lesson" under the last step (none after the last lesson).
   * @param {string} id the open lesson
   * @returns {HTMLElement[]}
   */
  nextButton(id) {
    const order = this.order ?? [];
    const next = order[order.indexOf(id) + 1];
    if (!next) return [];
    const title = this.menu.querySelector(`[data-lesson="${next}"]`)?.getAttribute('title') ?? next;
    const button = el('button', { type: 'button', class: 'lesson-next', id: 'lesson-next' }, `Next lesson: ${title} →`);
    button.addEventListener('click', () => this.onSelect(next));
    return [button];
  }

  /**
   * Lesson 2's hand-set XOR network: inputs, hidden units and output per row of the table.
   * @param {Record<string, any>} demo
   */
  demo(demo) {
    const table = el('table', { class: 'xor-demo', 'aria-label': 'Hand-set XOR network' });
    const head = el('tr');
    for (const title of ['x1', 'x2', 'net h1', 'net h2', 'h1 (AND)', 'h2 (OR)', 'net out', 'output']) head.append(el('th', {}, title));
    table.append(head);
    demo.inputs.forEach((/** @type {number[]} */ x, /** @type {number} */ i) => {
      const row = el('tr');
      const cells = [...x, ...demo.hidden_net[i], ...demo.hidden[i], demo.output_net[i][0], demo.outputs[i]];
      for (const value of cells) row.append(el('td', {}, String(value)));
      table.append(row);
    });
    const figure = el('figure', { class: 'lesson-demo' });
    figure.append(table, el('figcaption', {}, 'Hidden weights 1, 1 / 1, 1, biases −1.5, −0.5; output weights −1, 1, bias −0.5; step units.'));
    return figure;
  }

  /**
   * Report a step's progress next to it.
   * @param {number} index
   * @param {'running' | 'done' | 'error'} state
   * @param {string} [message]
   */
  markStep(index, state, message = '') {
    const status = this.stepStatus[index];
    if (!status) return;
    status.dataset.state = state;
    status.textContent = message || (state === 'running' ? 'running…' : state === 'done' ? 'done' : 'failed');
  }
}
