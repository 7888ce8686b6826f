/**
 * The lessons panel: a side panel beside the playground (a bottom sheet on phones) holding the
 * lessons and the instrument tabs. It opens from the masthead's Lessons button, scrolls on its
 * own, and closes with its × button or Escape, giving focus back to where it came from.
 *
 * The page keeps its network and output in view: while the panel is open the body makes room
 * for it (class `lessons-open`, lessons.css), and the playground's columns narrow to what is left.
 */
import { el } from './dom.js';

/** The instruments, in tab order: [id, tab title]. */
export const INSTRUMENTS = [
  ['perceptron', 'Perceptron'],
  ['trace', 'Backprop trace'],
  ['race', 'Optimizer race'],
  ['timetravel', 'Time travel'],
];

/** Instruments whose tables and diagrams need a wider panel (the playground narrows further). */
const WIDE = new Set(['trace']);

export class LessonsPanel {
  /**
   * @param {HTMLElement} panel  the #lessons-panel aside
   * @param {HTMLButtonElement} toggle the button that opens and closes it
   */
  constructor(panel, toggle) {
    this.panel = panel;
    this.toggle = toggle;
    panel.classList.add('lessons-panel');
    panel.setAttribute('role', 'complementary');
    panel.setAttribute('aria-labelledby', 'lessons-title');
    this.title = el('h2', { id: 'lessons-title', tabindex: '-1' }, 'Lessons and instruments');
    this.closeButton = el('button', { type: 'button', id: 'lessons-close', class: 'lessons-close', 'aria-label': 'Close the lessons panel (Escape)', title: 'Close (Escape)' }, '×');
    const head = el('div', { class: 'lessons-head' });
    head.append(this.title, this.closeButton);
    /** The part that scrolls: lessons, then the instruments. */
    this.body = el('div', { class: 'lessons-body', id: 'lessons-body' });
    this.lessons = el('div', { id: 'lessons-pane', class: 'instrument-pane lessons-pane' });
    this.tabs = el('div', { class: 'instrument-tabs', role: 'tablist', 'aria-label': 'Instruments' });
    /** @type {Record<string, HTMLElement>} */
    this.panes = {};
    /** @type {string | null} the instrument shown */
    this.current = null;
    /** @type {(id: string) => void} called when an instrument's tab is chosen by the user */
    this.onTab = () => {};
    INSTRUMENTS.forEach(([id, title], index) => {
      const tab = el('button', {
        type: 'button', role: 'tab', id: `tab-${id}`, 'aria-controls': `${id}-pane`,
        'aria-selected': 'false', tabindex: index === 0 ? '0' : '-1',
      }, title);
      tab.addEventListener('click', () => {
        this.showPane(id);
        this.onTab(id);
      });
      this.tabs.append(tab);
      this.panes[id] = el('div', { id: `${id}-pane`, role: 'tabpanel', class: 'instrument-pane', 'aria-labelledby': `tab-${id}`, hidden: '' });
    });
    // Arrow keys move between tabs (the ARIA tabs pattern); Tab goes on into the pane.
    this.tabs.addEventListener('keydown', (event) => this.arrowKeys(event));
    const instruments = el('section', { class: 'instruments', 'aria-labelledby': 'instruments-title' });
    instruments.append(el('h3', { id: 'instruments-title', class: 'instruments-title' }, 'Instruments'), this.tabs, ...Object.values(this.panes));
    this.body.append(this.lessons, instruments);
    panel.replaceChildren(head, this.body);

    this.toggle.addEventListener('click', () => (this.isOpen ? this.close() : this.open()));
    this.closeButton.addEventListener('click', () => this.close());
    // Escape closes the panel, unless the weight editor is open (its Escape closes only itself):
    // checked while capturing, before the editor's own handler hides it.
    document.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && this.isOpen && !document.querySelector('#weight-editor:not([hidden])')) {
        this.close();
      }
    }, true);
  }

  get isOpen() {
    return !this.panel.hidden;
  }

  /**
   * Open the panel (if closed) and, when `focus`, move the keyboard into it.
   * @param {boolean} [focus]
   */
  open(focus = true) {
    if (!this.isOpen) {
      this.panel.hidden = false;
      document.body.classList.add('lessons-open');
      document.body.classList.toggle('lessons-wide', WIDE.has(this.current ?? ''));
      this.toggle.setAttribute('aria-expanded', 'true');
      this.toggle.classList.add('open');
      this.relayout();
    }
    if (focus) this.title.focus();
  }

  /** Close the panel and give the keyboard back to the Lessons button. */
  close() {
    if (!this.isOpen) return;
    const hadFocus = this.panel.contains(document.activeElement);
    this.panel.hidden = true;
    document.body.classList.remove('lessons-open', 'lessons-wide');
    this.toggle.setAttribute('aria-expanded', 'false');
    this.toggle.classList.remove('open');
    if (hadFocus) this.toggle.focus();
    this.relayout();
  }

  /**
   * Show one instrument's pane (the lessons stay above it) and bring it into the panel's view.
   * @param {string} id
   */
  showPane(id) {
    this.open(false);
    this.current = id;
    for (const [key, pane] of Object.entries(this.panes)) {
      pane.hidden = key !== id;
      const tab = /** @type {HTMLElement} */ (document.getElementById(`tab-${key}`));
      tab.setAttribute('aria-selected', String(key === id));
      tab.tabIndex = key === id ? 0 : -1;
    }
    const wide = WIDE.has(id);
    if (wide !== document.body.classList.contains('lessons-wide')) {
      document.body.classList.toggle('lessons-wide', wide);
      this.relayout();
    }
    this.panes[id].scrollIntoView({ block: 'nearest' });
  }

  /** Fold every instrument away (a lesson about the playground): the panel narrows again. */
  hidePanes() {
    this.current = null;
    for (const [key, pane] of Object.entries(this.panes)) {
      pane.hidden = true;
      const tab = /** @type {HTMLElement} */ (document.getElementById(`tab-${key}`));
      tab.setAttribute('aria-selected', 'false');
      tab.tabIndex = key === INSTRUMENTS[0][0] ? 0 : -1;
    }
    if (document.body.classList.contains('lessons-wide')) {
      document.body.classList.remove('lessons-wide');
      this.relayout();
    }
  }

  /** @param {KeyboardEvent} event */
  arrowKeys(event) {
    const tabs = /** @type {HTMLElement[]} */ ([...this.tabs.querySelectorAll('[role="tab"]')]);
    const at = tabs.indexOf(/** @type {HTMLElement} */ (event.target));
    if (at < 0) return;
    const moves = /** @type {Record<string, number>} */ ({ ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: tabs.length - 1 });
    if (!(event.key in moves)) return;
    event.preventDefault();
    const next = tabs[(moves[event.key] + tabs.length) % tabs.length];
    next.focus();
    next.click();
  }

  /** The playground's width changed: let its diagram and charts lay out again (main.js listens). */
  relayout() {
    window.dispatchEvent(new Event('resize'));
  }
}
