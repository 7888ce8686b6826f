/** Backprop trace view: the lecture's example phase by phase, or one step of the live network. */
import { divergingCss } from './colors.js';
import { el } from './dom.js';

/** Entries shown per parameter array: enough to read, bounded for a 2,000-weight net. */
const MAX_ENTRIES = 48;
const SVG_NS = 'http://www.w3.org/2000/svg';

/** The lecture's 2-2-2 network: node positions and which slide weight joins which nodes. */
const NODES = {
  x1: [60, 60], x2: [60, 210], h1: [300, 60], h2: [300, 210], o1: [540, 60], o2: [540, 210],
};
const EDGES = [
  ['w1', 'x1', 'h1'], ['w2', 'x2', 'h1'], ['w3', 'x1', 'h2'], ['w4', 'x2', 'h2'],
  ['w5', 'h1', 'o1'], ['w6', 'h2', 'o1'], ['w7', 'h1', 'o2'], ['w8', 'h2', 'o2'],
];

/**
 * @param {string} tag
 * @param {Record<string, string | number>} attributes
 * @param {string} [text]
 */
function svg(tag, attributes, text = '') {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attributes)) node.setAttribute(k, String(v));
  if (text) node.textContent = text;
  return node;
}

/** @param {number | null | undefined} v */
function fmt(v) {
  if (v === null || v === undefined) return '–';
  if (v === 0) return '0';
  const a = Math.abs(v);
  return a >= 1e-3 && a < 1e4 ? v.toFixed(5).replace(/0+$/, '').replace(/\.$/, '') : v.toExponential(3);
}

/**
 * Flatten nested lists with their index paths.
 * @param {any} value
 * @param {number[]} [path]
 * @returns {{path: number[], value: number}[]}
 */
function entries(value, path = []) {
  if (!Array.isArray(value)) return [{ path, value }];
  return value.flatMap((v, i) => entries(v, [...path, i]));
}

/**
 * @param {string[]} headers
 * @param {(string | number | null)[][]} rows
 * @param {string} label
 */
function table(headers, rows, label) {
  const node = el('table', { class: 'trace-table', 'aria-label': label });
  const head = el('tr');
  for (const h of headers) head.append(el('th', {}, h));
  node.append(head);
  for (const row of rows) {
    const tr = el('tr');
    for (const cell of row) tr.append(el('td', {}, typeof cell === 'number' ? fmt(cell) : String(cell ?? '–')));
    node.append(tr);
  }
  return node;
}

export class TraceView {
  /** @param {HTMLElement} container */
  constructor(container) {
    this.container = container;
    const bar = el('div', { class: 'trace-bar' });
    this.lectureButton = el('button', { type: 'button', id: 'trace-lecture' }, "The lecture's 2-2-2 example");
    this.sessionButton = el('button', { type: 'button', id: 'trace-session' }, 'Trace the live network now');
    this.lrInput = /** @type {HTMLInputElement} */ (el('input', { type: 'number', id: 'trace-lr', step: '0.1', min: '0.01', value: '0.5', 'aria-label': 'Learning rate of the example' }));
    this.batchStart = /** @type {HTMLInputElement} */ (el('input', { type: 'number', id: 'trace-start', min: '0', step: '1', value: '0', 'aria-label': 'First training point of the batch' }));
    bar.append(this.lectureButton, el('label', { for: 'trace-lr' }, 'η'), this.lrInput, this.sessionButton,
      el('label', { for: 'trace-start' }, 'batch from point'), this.batchStart);
    this.body = el('div', { class: 'trace-body', role: 'region', 'aria-live': 'polite', 'aria-label': 'Backprop trace' });
    const intro = el('p', { class: 'instrument-intro' },
      'One training step, number by number: forward values, deltas, gradients (each beside its numeric estimate) and the update. Trace the playground\'s network as it is now, or the lecture\'s worked example.');
    container.append(intro, bar, this.body);
    /** @type {any} */
    this.example = null;
    this.phase = 0;
  }

  /** Whether a trace or the example is on show. */
  get shown() {
    return this.body.childElementCount > 0;
  }

  /** @param {{lecture: (learningRate: number) => void, session: (batchStart: number) => void}} handlers */
  bind(handlers) {
    this.lectureButton.addEventListener('click', () => handlers.lecture(Number(this.lrInput.value) || 0.5));
    this.sessionButton.addEventListener('click', () => handlers.session(Math.max(0, Math.floor(Number(this.batchStart.value) || 0))));
  }

  /**
   * The worked example, revealed one phase at a time.
   * @param {any} result POST /api/instruments/backprop with preset "lecture"
   */
  showLecture(result) {
    this.example = result;
    this.phase = 0;
    this.lrInput.value = String(result.trace.optimizer.learning_rate);
    this.renderPhase();
  }

  renderPhase() {
    const phases = this.example.phases;
    const nav = el('div', { class: 'phase-nav' });
    const prev = el('button', { type: 'button', id: 'phase-prev' }, '◀ Previous phase');
    const next = el('button', { type: 'button', id: 'phase-next' }, 'Next phase ▶');
    prev.toggleAttribute('disabled', this.phase === 0);
    next.toggleAttribute('disabled', this.phase === phases.length - 1);
    prev.addEventListener('click', () => { this.phase -= 1; this.renderPhase(); });
    next.addEventListener('click', () => { this.phase += 1; this.renderPhase(); });
    nav.append(prev, el('span', { class: 'phase-title', id: 'phase-title' }, `Phase ${this.phase + 1} of ${phases.length}: ${phases[this.phase].title}`), next);
    const shown = phases.slice(0, this.phase + 1).map((/** @type {any} */ phase, /** @type {number} */ i) => {
      const section = el('section', { class: 'phase', 'data-phase': phase.id });
      if (i === this.phase) section.classList.add('current');
      section.append(
        el('h4', {}, phase.title),
        table(['quantity', 'value', 'how'], phase.quantities.map((/** @type {any} */ q) => [q.symbol, q.value, q.formula]), phase.title),
      );
      return section;
    });
    const check = this.example.trace.gradient_check;
    this.body.replaceChildren(nav, this.diagram(), ...shown.reverse(), this.checkBadge(check));
  }

  /**
   * The 2-2-2 network with what the phases so far have computed written on it: weights on the
   * links (then their gradients, then their new values), net/out, errors and deltas by the units.
   */
  diagram() {
    const phases = this.example.phases.slice(0, this.phase + 1);
    /** @type {Map<string, number>} */
    const known = new Map();
    for (const phase of phases) for (const q of phase.quantities) known.set(q.symbol, q.value);
    const reached = new Set(phases.map((/** @type {any} */ p) => p.id));
    const { weights, inputs, targets } = this.example.example;
    const root = svg('svg', { class: 'backprop-diagram', width: 720, height: 290, viewBox: '0 0 720 290', role: 'img', 'aria-label': 'The 2-2-2 network with the current phase written on it' });
    for (const [name, from, to] of EDGES) {
      const [x0, y0] = NODES[/** @type {keyof typeof NODES} */ (from)];
      const [x1, y1] = NODES[/** @type {keyof typeof NODES} */ (to)];
      root.append(svg('line', { x1: x0 + 18, y1: y0, x2: x1 - 18, y2: y1, class: 'diagram-link' }));
      // Labels a third of the way along, so the two crossing links keep theirs apart.
      const lx = x0 + (x1 - x0) * 0.33;
      const ly = y0 + (y1 - y0) * 0.33 - 4;
      let label = `${name} ${fmt(weights[name])}`;
      if (reached.has('gradients')) label += `  ∂E ${fmt(known.get(`dE/d${name}`))}`;
      if (reached.has('new_weights')) label = `${name}' ${fmt(known.get(`${name}'`))}`;
      root.append(svg('text', { x: lx, y: ly, class: 'diagram-weight', 'data-weight': name }, label));
    }
    const lines = /** @type {Record<string, string[]>} */ ({
      x1: [`x1 = ${inputs[0]}`], x2: [`x2 = ${inputs[1]}`],
      h1: [], h2: [], o1: [`target ${targets[0]}`], o2: [`target ${targets[1]}`],
    });
    for (const unit of ['h1', 'h2', 'o1', 'o2']) {
      if (reached.has('forward')) lines[unit].push(`net ${fmt(known.get(`net_${unit}`))}`, `out ${fmt(known.get(`out_${unit}`))}`);
      if (unit[0] === 'o' && reached.has('error')) lines[unit].push(`E ${fmt(known.get(`E_${unit}`))}`);
      const deltaPhase = unit[0] === 'o' ? 'output_deltas' : 'hidden_deltas';
      if (reached.has(deltaPhase)) lines[unit].push(`δ ${fmt(known.get(`delta_${unit}`))}`);
    }
    for (const [unit, [x, y]] of Object.entries(NODES)) {
      const current = (unit[0] === 'o' && ['error', 'output_deltas'].includes(this.example.phases[this.phase].id))
        || (unit[0] === 'h' && this.example.phases[this.phase].id === 'hidden_deltas');
      root.append(svg('circle', { cx: x, cy: y, r: 18, class: `diagram-unit${current ? ' current' : ''}` }));
      root.append(svg('text', { x, y: y + 4, class: 'diagram-name' }, unit));
      // Outputs are annotated to their right, the other units below themselves.
      const right = unit[0] === 'o';
      lines[unit].forEach((line, i) => {
        const at = right ? { x: x + 26, y: y - 12 + i * 13 } : { x, y: y + 32 + i * 13 };
        root.append(svg('text', { ...at, class: `diagram-value${right ? ' right' : ''}`, 'data-unit': unit }, line));
      });
    }
    if (reached.has('error')) {
      root.append(svg('text', { x: 566, y: 140, class: 'diagram-total' }, `E_total ${fmt(known.get('E_total'))}`));
    }
    return root;
  }

  /** @param {any} check */
  checkBadge(check) {
    if (!check) return el('span');
    return el(
      'p',
      { class: `grad-check ${check.passed ? 'passed' : 'failed'}`, id: 'grad-check' },
      `Numeric gradient check (central differences, h = ${check.step}): largest difference ${fmt(check.max_abs_difference)} — ${check.passed ? 'passed' : 'FAILED'}`,
    );
  }

  /**
   * One step of a network: per layer the units' z, a, delta; per parameter the gradients, the
   * numeric estimate and the optimizer's state and update.
   * @param {any} result GET /api/sessions/{id}/trace
   */
  showTrace(result) {
    const trace = result.trace;
    const n = trace.x.length;
    const intro = el('p', { class: 'trace-intro' },
      `Epoch ${result.epoch}, batch of ${n} training points from index ${result.batch_start}; loss ${fmt(trace.loss)} + penalty ${fmt(trace.penalty)}; ` +
      `optimizer ${trace.optimizer.name} (lr ${trace.optimizer.learning_rate}, ${trace.optimizer.iterations} steps so far). Unit values are for the batch's first point.`);
    const layers = trace.layers.map((/** @type {any} */ layer) => {
      const rows = layer.z[0].map((/** @type {number} */ z, /** @type {number} */ j) => [j + 1, z, layer.a[0][j], layer.delta[0][j]]);
      const block = el('section', { class: 'trace-layer' });
      block.append(
        el('h4', {}, `Layer ${layer.index}: ${layer.kind}${layer.grad_norm === null ? '' : ` — gradient norm ${fmt(layer.grad_norm)}`}`),
        table(['unit', 'z', 'a', 'delta = dJ/dz'], rows, `layer ${layer.index} units`),
      );
      return block;
    });
    const params = trace.parameters.map((/** @type {any} */ p) => this.parameterBlock(p));
    const legend = el('p', { class: 'trace-legend' },
      'Links: blue where the step raises the weight, orange where it lowers it, thicker for a larger |gradient| (scaled per layer). ' +
      'Units: filled by their delta (orange positive, blue negative). Hover any link or unit for its numbers.');
    this.body.replaceChildren(intro, this.checkBadge(trace.gradient_check), this.networkDiagram(trace), legend, ...layers, ...params);
  }

  /**
   * The live network with this step on it: each link drawn in the direction its update moves
   * the weight (blue up, orange down) with a width from |gradient|, each unit filled by its delta;
   * hovering a link or a unit shows its numbers (value, gradient, numeric, optimizer state).
   * @param {any} trace
   */
  networkDiagram(trace) {
    const byName = new Map(trace.parameters.map((/** @type {any} */ p) => [p.name, p]));
    const dense = trace.layers.filter((/** @type {any} */ l) => byName.has(`layers.${l.index}.kernel`));
    const widths = [trace.x[0].length, ...dense.map((/** @type {any} */ l) => l.z[0].length)];
    const ROW = 30;
    const height = Math.max(...widths) * ROW + 30;
    const width = Math.max(360, 150 * widths.length);
    const xAt = (/** @type {number} */ c) => 30 + (c * (width - 60)) / Math.max(widths.length - 1, 1);
    const yAt = (/** @type {number} */ c, /** @type {number} */ r) => 20 + r * ROW + ((Math.max(...widths) - widths[c]) * ROW) / 2;
    const root = svg('svg', { class: 'trace-diagram', width, height, viewBox: `0 0 ${width} ${height}`, role: 'img', 'aria-label': 'The network with each weight’s gradient and update' });
    dense.forEach((/** @type {any} */ layer, /** @type {number} */ c) => {
      const kernel = /** @type {any} */ (byName.get(`layers.${layer.index}.kernel`));
      const grads = kernel.gradient.flat();
      const biggest = Math.max(...grads.map(Math.abs), 1e-12);
      const slots = Object.keys(kernel.state_after);
      kernel.value.forEach((/** @type {number[]} */ row, /** @type {number} */ i) => {
        row.forEach((value, j) => {
          const g = kernel.gradient[i][j];
          const line = svg('line', {
            x1: xAt(c) + 9, y1: yAt(c, i), x2: xAt(c + 1) - 9, y2: yAt(c + 1, j),
            stroke: divergingCss(g === 0 ? 0 : -Math.sign(g) * (0.35 + 0.65 * Math.abs(g) / biggest)),
            'stroke-width': (0.5 + (5 * Math.abs(g)) / biggest).toFixed(2),
            class: 'trace-link', 'data-link': `${layer.index}:${i}:${j}`,
          });
          const state = slots.map((slot) => `${slot} ${fmt(kernel.state_after[slot][i][j])}`).join(', ');
          const numeric = kernel.numeric_gradient ? `, numeric ${fmt(kernel.numeric_gradient[i][j])}` : '';
          line.append(svg('title', {}, `layer ${layer.index} weight [${i}, ${j}] = ${fmt(value)}; gradient ${fmt(g)}${numeric}; ` +
            `update ${fmt(kernel.update[i][j])} → ${fmt(kernel.new_value[i][j])}${state ? `; ${state}` : ''}`));
          root.append(line);
        });
      });
    });
    widths.forEach((count, c) => {
      const layer = c === 0 ? null : dense[c - 1];
      const deltas = layer ? layer.delta[0] : [];
      const biggest = Math.max(...deltas.map(Math.abs), 1e-12);
      for (let r = 0; r < count; r++) {
        const fill = layer ? divergingCss(-deltas[r] / biggest) : '#fff';
        const unit = svg('circle', { cx: xAt(c), cy: yAt(c, r), r: 9, fill, class: 'trace-unit' });
        unit.append(svg('title', {}, layer
          ? `layer ${layer.index} unit ${r + 1}: z ${fmt(layer.z[0][r])}, a ${fmt(layer.a[0][r])}, delta ${fmt(deltas[r])}`
          : `input ${r + 1} = ${fmt(trace.x[0][r])}`));
        root.append(unit);
      }
    });
    return root;
  }

  /** @param {any} p one ParameterValues */
  parameterBlock(p) {
    const slots = Object.keys(p.state_after);
    const values = entries(p.value);
    const grads = entries(p.gradient);
    const numeric = p.numeric_gradient ? entries(p.numeric_gradient) : null;
    const updates = entries(p.update);
    const after = entries(p.new_value);
    const states = slots.map((s) => entries(p.state_after[s]));
    const rows = values.slice(0, MAX_ENTRIES).map((entry, i) => [
      `[${entry.path.join(', ')}]`, entry.value, grads[i].value, numeric ? numeric[i].value : null,
      numeric ? Math.abs(grads[i].value - numeric[i].value) : null,
      ...states.map((s) => s[i].value), updates[i].value, after[i].value,
    ]);
    const block = el('section', { class: 'trace-param', 'data-param': p.name });
    const more = values.length > MAX_ENTRIES ? ` (first ${MAX_ENTRIES} of ${values.length})` : '';
    block.append(
      el('h4', {}, `${p.name}${more}`),
      table(['index', 'value', 'gradient', 'numeric', '|diff|', ...slots, 'update', 'new value'], rows, p.name),
    );
    return block;
  }

  /** @param {string} message */
  showError(message) {
    this.body.replaceChildren(el('p', { class: 'instrument-error', role: 'alert' }, message));
  }
}
