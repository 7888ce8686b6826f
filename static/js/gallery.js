/**
 * The gallery page (/gallery): public runs from GET /api/runs, ranked by test loss, filtered by
 * dataset and problem (kept in the URL's query), each with its boundary thumbnail and a link to
 * its share page. docs/protocol.md "Runs and the gallery".
 */
import { CLASS_COLORS, hexToRgb, writeDiverging } from './colors.js';
import { describe } from './http.js';

/** @typedef {import('./run_view.js').RunSummary} RunSummary */

const CLASS_RGB = CLASS_COLORS.map(hexToRgb);

/**
 * A loss for a caption: 3 significant digits, "–" when unknown.
 * @param {number | null} value
 */
const formatLoss = (value) => (value === null || value === undefined ? '–' : Number(value).toPrecision(3));
const byId = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/**
 * Draw a run's thumbnail into a canvas at its grid size (CSS scales it up).
 * binary and regression: 0..255 is the diverging scale's -1..1; multiclass: a class index.
 * @param {HTMLCanvasElement} canvas
 * @param {RunSummary} run
 */
export function drawThumbnail(canvas, run) {
  const { size, base64 } = run.thumbnail;
  const codes = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  canvas.width = size;
  canvas.height = size;
  const context = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d'));
  const image = context.createImageData(size, size);
  for (let i = 0; i < size * size; i++) {
    const at = i * 4;
    if (run.problem === 'multiclass') {
      const [r, g, b] = CLASS_RGB[codes[i] % CLASS_RGB.length];
      image.data[at] = r;
      image.data[at + 1] = g;
      image.data[at + 2] = b;
    } else {
      writeDiverging((codes[i] / 255) * 2 - 1, image.data, at);
    }
    image.data[at + 3] = 255;
  }
  context.putImageData(image, 0, 0);
}

/**
 * One run's card.
 * @param {RunSummary} run
 * @param {number} rank
 * @returns {HTMLLIElement}
 */
function card(run, rank) {
  const item = document.createElement('li');
  item.className = 'gallery-card';
  item.dataset.slug = run.slug;
  const link = document.createElement('a');
  link.href = run.url;
  const canvas = document.createElement('canvas');
  canvas.setAttribute('aria-label', `Decision boundary of ${run.title}`);
  drawThumbnail(canvas, run);
  const title = document.createElement('div');
  title.className = 'gallery-title';
  title.textContent = run.title;
  const place = document.createElement('div');
  place.className = 'gallery-rank';
  place.textContent = `#${rank} · test loss ${formatLoss(run.test_loss)}`;
  link.append(canvas, place, title);
  const facts = document.createElement('dl');
  facts.className = 'gallery-facts';
  for (const [name, value] of [
    ['data', `${run.dataset} (${run.problem})`],
    ['shape', run.shape],
    ['parameters', String(run.parameters)],
    ['epochs', String(run.epochs)],
    ['optimizer', run.optimizer],
    ['train loss', formatLoss(run.train_loss)],
  ]) {
    const term = document.createElement('dt');
    term.textContent = name;
    const detail = document.createElement('dd');
    detail.textContent = value;
    facts.append(term, detail);
  }
  item.append(link, facts);
  return item;
}

/** Read the filters, ask the server, draw the cards. */
async function load() {
  const form = /** @type {HTMLFormElement} */ (byId('gallery-filters'));
  const params = new URLSearchParams();
  for (const [key, value] of new FormData(form)) if (value) params.set(key, String(value));
  history.replaceState(null, '', `/gallery${params.size ? `?${params}` : ''}`);
  const status = byId('gallery-status');
  const list = byId('gallery-runs');
  status.textContent = 'Loading…';
  try {
    const response = await fetch(`/api/runs?${params}`);
    const body = await response.json();
    if (!response.ok) throw new Error(describe(body?.detail ?? response.statusText));
    /** @type {RunSummary[]} */
    const runs = body;
    list.replaceChildren(...runs.map((run, i) => card(run, i + 1)));
    status.textContent = runs.length ? '' : 'No public runs yet for these filters. Save one from the playground with “list it in the gallery”.';
  } catch (error) {
    status.textContent = `Could not load the runs: ${/** @type {Error} */ (error).message}`;
  }
}

/** Fill the dataset menu from the registry, apply the URL's filters, load. */
async function start() {
  const query = new URLSearchParams(location.search);
  const datasets = /** @type {HTMLSelectElement} */ (byId('gallery-dataset'));
  try {
    const registry = await (await fetch('/api/registry')).json();
    for (const name of [...Object.keys(registry.datasets ?? {}), 'user']) {
      const option = document.createElement('option');
      option.value = name;
      option.textContent = name;
      datasets.append(option);
    }
  } catch {
    // The menu keeps "all"; the list still loads.
  }
  for (const key of ['dataset', 'problem', 'sort']) {
    const select = /** @type {HTMLSelectElement} */ (byId(`gallery-${key}`));
    const wanted = query.get(key);
    if (wanted && [...select.options].some((o) => o.value === wanted)) select.value = wanted;
    select.addEventListener('change', () => load());
  }
  await load();
}

start();
