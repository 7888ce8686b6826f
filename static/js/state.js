/**
 * The one state object of the page, serialized to the URL hash from a table of properties.
 *
 * A new knob is one row in PROPERTIES. Rows with `config: true` are SessionConfig fields sent to
 * the server under the same name; the others only change how the page draws.
 */

/** @typedef {import('./types.js').LayerSpec} LayerSpec */
/** @typedef {import('./types.js').PageState} PageState */

/**
 * @typedef {'number' | 'int' | 'bool' | 'string' | 'list' | 'layers' | 'points'} PropertyKind
 * @typedef {object} PropertyRow
 * @property {string} key            hash key, and SessionConfig field when `config`
 * @property {PropertyKind} kind     how the value is written in the hash
 * @property {boolean} config        sent to the server as part of the session config
 * @property {boolean} [nullable]    "null" in the hash means "the server's default"
 * @property {boolean} [structural]  changing it rebuilds the model or the data (the points are read again)
 * @property {boolean} [pageDefault] the page's own default wins over the server's (e.g. the pace:
 *   scripts train as fast as the machine goes, a learner watches at TFP's pace)
 * @property {unknown} fallback      used until the server's registry gives its default
 */

/** @type {PropertyRow[]} */
export const PROPERTIES = [
  { key: 'dataset', kind: 'string', config: true, structural: true, fallback: 'circle' },
  { key: 'points', kind: 'points', config: true, nullable: true, structural: true, fallback: null },
  // An explicit test set (click-to-add keeps the split it was shown); null: train_ratio splits.
  { key: 'test_points', kind: 'points', config: true, nullable: true, structural: true, fallback: null },
  { key: 'n_samples', kind: 'int', config: true, nullable: true, structural: true, fallback: null },
  { key: 'noise', kind: 'number', config: true, structural: true, fallback: 0 },
  { key: 'train_ratio', kind: 'number', config: true, structural: true, fallback: 0.5 },
  { key: 'seed', kind: 'int', config: true, structural: true, fallback: 0 },
  { key: 'features', kind: 'list', config: true, structural: true, fallback: ['x1', 'x2'] },
  {
    key: 'layers', kind: 'layers', config: true, structural: true,
    fallback: [
      { units: 4, activation: 'tanh', dropout: 0, batch_norm: false },
      { units: 2, activation: 'tanh', dropout: 0, batch_norm: false },
    ],
  },
  { key: 'problem', kind: 'string', config: true, nullable: true, structural: true, fallback: null },
  { key: 'loss', kind: 'string', config: true, nullable: true, structural: true, fallback: null },
  { key: 'initializer', kind: 'string', config: true, structural: true, fallback: 'glorot_uniform' },
  { key: 'init_scale', kind: 'number', config: true, structural: true, fallback: 1 },
  // Which draw of the seed's initial weights: reset re-rolls it (+1), so a link reproduces the start.
  { key: 'init_draw', kind: 'int', config: true, structural: true, fallback: 0 },
  { key: 'optimizer', kind: 'string', config: true, fallback: 'sgd' },
  { key: 'learning_rate', kind: 'number', config: true, fallback: 0.03 },
  { key: 'momentum', kind: 'number', config: true, nullable: true, fallback: null },
  { key: 'nesterov', kind: 'bool', config: true, fallback: false },
  { key: 'rho', kind: 'number', config: true, fallback: 0.9 },
  { key: 'beta_1', kind: 'number', config: true, fallback: 0.9 },
  { key: 'beta_2', kind: 'number', config: true, fallback: 0.999 },
  { key: 'epsilon', kind: 'number', config: true, fallback: 1e-7 },
  { key: 'initial_accumulator_value', kind: 'number', config: true, fallback: 0.1 },
  { key: 'batch_size', kind: 'int', config: true, fallback: 10 },
  { key: 'regularization', kind: 'string', config: true, fallback: 'none' },
  { key: 'regularization_rate', kind: 'number', config: true, fallback: 0 },
  { key: 'max_norm', kind: 'number', config: true, nullable: true, fallback: null },
  { key: 'early_stopping_patience', kind: 'int', config: true, nullable: true, fallback: null },
  { key: 'augmentation', kind: 'bool', config: true, fallback: false },
  { key: 'epoch_budget', kind: 'int', config: true, nullable: true, fallback: null },
  { key: 'frame_rate', kind: 'number', config: true, fallback: 30 },
  // Epochs per second (null: as fast as the machine goes); ~60 is TFP's one epoch per frame.
  { key: 'speed', kind: 'number', config: true, nullable: true, pageDefault: true, fallback: 60 },
  { key: 'show_test', kind: 'bool', config: false, fallback: false },
  { key: 'discretize', kind: 'bool', config: false, fallback: false },
  { key: 'log_scale', kind: 'bool', config: false, fallback: false },
];

/** Keys whose change needs a new model; the rest are patched into the running session. */
export const STRUCTURAL_KEYS = new Set(PROPERTIES.filter((p) => p.structural).map((p) => p.key));

/**
 * A state with every property at its default.
 * @param {Record<string, unknown>} [serverDefaults] SessionConfig defaults from the registry
 * @returns {PageState}
 */
export function defaultState(serverDefaults = {}) {
  /** @type {Record<string, unknown>} */
  const state = {};
  for (const row of PROPERTIES) {
    const value = !row.pageDefault && row.key in serverDefaults ? serverDefaults[row.key] : row.fallback;
    state[row.key] = structuredClone(value);
  }
  return /** @type {PageState} */ (state);
}

/**
 * Write one value the way the hash holds it.
 * @param {PropertyRow} row
 * @param {unknown} value
 * @returns {string}
 */
function encodeValue(row, value) {
  if (value === null || value === undefined) return 'null';
  switch (row.kind) {
    case 'bool':
      return value ? 'true' : 'false';
    case 'list':
      return /** @type {string[]} */ (value).join(',');
    case 'layers':
      return /** @type {LayerSpec[]} */ (value)
        .map((l) => [l.units, l.activation, l.dropout, l.batch_norm ? 1 : 0].join(':'))
        .join(',');
    case 'points':
      // Two decimals keep a 5,000-point upload in a URL a browser accepts.
      return /** @type {number[][]} */ (value)
        .map((p) => `${+p[0].toFixed(2)}:${+p[1].toFixed(2)}:${+(+p[2]).toFixed(4)}`)
        .join(',');
    default:
      return String(value);
  }
}

/**
 * Read one value from the hash; returns undefined when it does not parse.
 * @param {PropertyRow} row
 * @param {string} text
 * @returns {unknown}
 */
function decodeValue(row, text) {
  if (text === 'null') return row.nullable ? null : undefined;
  switch (row.kind) {
    case 'number': {
      const n = Number(text);
      return text !== '' && Number.isFinite(n) ? n : undefined;
    }
    case 'int': {
      const n = Number(text);
      return text !== '' && Number.isInteger(n) ? n : undefined;
    }
    case 'bool':
      return text === 'true' ? true : text === 'false' ? false : undefined;
    case 'list':
      return text === '' ? [] : text.split(',');
    case 'layers': {
      if (text === '') return [];
      const layers = text.split(',').map((part) => {
        const [units, activation, dropout, batchNorm] = part.split(':');
        return {
          units: Number(units),
          activation: activation ?? 'tanh',
          dropout: Number(dropout ?? 0),
          batch_norm: batchNorm === '1',
        };
      });
      return layers.every((l) => Number.isInteger(l.units) && Number.isFinite(l.dropout))
        ? layers
        : undefined;
    }
    case 'points': {
      if (text === '') return [];
      const points = text.split(',').map((part) => part.split(':').map(Number));
      return points.every((p) => p.length === 3 && p.every(Number.isFinite)) ? points : undefined;
    }
    default:
      return text;
  }
}

/**
 * The hash for a state: every property, so a link reproduces the run even if defaults move.
 * @param {PageState} state
 * @returns {string}
 */
export function serializeState(state) {
  const record = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (state));
  return PROPERTIES.map(
    (row) => `${row.key}=${encodeURIComponent(encodeValue(row, record[row.key]))}`,
  ).join('&');
}

/**
 * A state from a hash; missing or unreadable keys keep the given defaults.
 * @param {string} hash with or without the leading "#"
 * @param {PageState} defaults
 * @returns {PageState}
 */
export function parseState(hash, defaults) {
  const record = /** @type {Record<string, unknown>} */ (structuredClone(defaults));
  const params = new Map();
  for (const pair of hash.replace(/^#/, '').split('&')) {
    const eq = pair.indexOf('=');
    if (eq > 0) params.set(pair.slice(0, eq), decodeURIComponent(pair.slice(eq + 1)));
  }
  for (const row of PROPERTIES) {
    if (!params.has(row.key)) continue;
    const value = decodeValue(row, params.get(row.key));
    if (value !== undefined) record[row.key] = value;
  }
  return /** @type {PageState} */ (/** @type {unknown} */ (record));
}

/**
 * The SessionConfig the server gets for a state (only `config` rows).
 * @param {PageState} state
 * @param {Set<string> | null} [known] the fields the server knows (its registry's defaults), so a
 *   page newer than its server leaves out fields the server would refuse
 * @returns {Record<string, unknown>}
 */
export function sessionConfig(state, known = null) {
  const record = /** @type {Record<string, unknown>} */ (/** @type {unknown} */ (state));
  /** @type {Record<string, unknown>} */
  const config = {};
  for (const row of PROPERTIES) {
    if (row.config && (!known || known.has(row.key))) config[row.key] = record[row.key];
  }
  return config;
}
