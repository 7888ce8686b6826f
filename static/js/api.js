/**
 * REST calls to the server (docs/protocol.md); every failure becomes an ApiError with its detail.
 * Every call carries the page's owner token (owner.js); a long one answered with a job (202)
 * shows its progress and resolves to the usual answer (jobs.js).
 */
import { authorizedFetch } from './http.js';
import { request } from './jobs.js';

/** @typedef {import('./types.js').Registry} Registry */
/** @typedef {import('./types.js').SessionPublic} SessionPublic */
/** @typedef {import('./types.js').DataPoints} DataPoints */

export { ApiError, describe } from './http.js';

/** @returns {Promise<Registry>} */
export function fetchRegistry() {
  return request('/api/registry');
}

/**
 * A dataset's points for a thumbnail.
 * @param {string} name
 * @returns {Promise<{kind: string, n_classes: number, train: number[][], test: number[][]}>}
 */
export function fetchPreview(name) {
  return request(`/api/datasets/${encodeURIComponent(name)}/preview`);
}

/**
 * @param {Record<string, unknown>} config
 * @returns {Promise<SessionPublic>}
 */
export function createSession(config) {
  return request('/api/sessions', { method: 'POST', body: JSON.stringify(config) }, { create: true });
}

/**
 * The sessions of the page's owner token ([] without one).
 * @returns {Promise<SessionPublic[]>}
 */
export function listSessions() {
  return request('/api/sessions');
}

/**
 * @param {string} id
 * @returns {Promise<SessionPublic>}
 */
export function fetchSession(id) {
  return request(`/api/sessions/${encodeURIComponent(id)}`);
}

/**
 * @param {string} id
 * @returns {Promise<null>}
 */
export function deleteSession(id) {
  return request(`/api/sessions/${encodeURIComponent(id)}`, { method: 'DELETE' });
}

/** The compact export's media type (docs/protocol.md "Export and import"). */
export const COMPACT_EXPORT_TYPE = 'application/vnd.nn-playground.session+gzip';

/**
 * The session in the compact export format (gzip, the history as binary columns: any length
 * the server trains imports back), kept as the bytes the server wrote.
 * @param {string} id
 * @returns {Promise<Blob>}
 */
export async function exportSession(id) {
  const response = await authorizedFetch(`/api/sessions/${encodeURIComponent(id)}/export?format=compact`);
  return response.blob();
}

/**
 * Continue from an export, sent exactly as read from the file: a SessionExport JSON text
 * (kept as text: its 128-bit generator states would not survive JSON.parse), or a compact
 * export (a Blob; the server tells the formats apart by their first bytes).
 * @param {string | Blob} exported
 * @returns {Promise<SessionPublic>}
 */
export function importSession(exported) {
  /** @type {RequestInit} */
  const init = typeof exported === 'string'
    ? { method: 'POST', body: exported }
    : { method: 'POST', body: exported, headers: { 'Content-Type': COMPACT_EXPORT_TYPE } };
  return request('/api/sessions/import', init, { create: true, label: 'Importing the model' });
}

/**
 * @param {string} text CSV with rows x1,x2,label
 * @returns {Promise<{points: number[][], n_points: number}>}
 */
export function parseCsv(text) {
  return request('/api/datasets/parse-csv', { method: 'POST', body: JSON.stringify({ text }) });
}

/**
 * The session's data URL (train rows then test rows).
 * @param {string} id
 * @returns {string}
 */
export function dataCsvUrl(id) {
  return `/api/sessions/${encodeURIComponent(id)}/data.csv`;
}

/**
 * The session's data as CSV text (its owner's token: a plain link could not send it).
 * @param {string} id
 * @returns {Promise<string>}
 */
export async function fetchDataCsv(id) {
  return (await authorizedFetch(dataCsvUrl(id))).text();
}

/**
 * The session's points, split into train and test by its n_train.
 * @param {SessionPublic} session
 * @returns {Promise<DataPoints>}
 */
export async function fetchPoints(session) {
  const response = await authorizedFetch(dataCsvUrl(session.id));
  const rows = (await response.text())
    .split('\n')
    .map((line) => line.split(',').map(Number))
    .filter((row) => row.length === 3 && row.every(Number.isFinite));
  return { train: rows.slice(0, session.n_train), test: rows.slice(session.n_train) };
}

/**
 * The points of a session we only watch (its data.csv needs the owner's token): its own points
 * when the config holds them, else its dataset's preview drawn with the same parameters.
 * @param {SessionPublic} session
 * @returns {Promise<DataPoints>}
 */
export async function fetchWatchedPoints(session) {
  const config = /** @type {Record<string, any>} */ (/** @type {unknown} */ (session.config));
  if (Array.isArray(config.points)) {
    return { train: config.points, test: Array.isArray(config.test_points) ? config.test_points : [] };
  }
  const params = new URLSearchParams();
  for (const key of ['n_samples', 'noise', 'train_ratio', 'seed']) {
    if (config[key] !== null && config[key] !== undefined) params.set(key, String(config[key]));
  }
  const preview = await request(`/api/datasets/${encodeURIComponent(config.dataset)}/preview?${params}`);
  return { train: preview.train, test: preview.test };
}
