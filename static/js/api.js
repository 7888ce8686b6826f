/** REST calls to the server (docs/protocol.md); every failure becomes an Error with its detail. */

/** @typedef {import('./types.js').Registry} Registry */
/** @typedef {import('./types.js').SessionPublic} SessionPublic */
/** @typedef {import('./types.js').DataPoints} DataPoints */

/**
 * The server's `detail` as one readable line (422 details are lists of {loc, msg}).
 * @param {unknown} detail
 * @returns {string}
 */
function describe(detail) {
  if (Array.isArray(detail)) {
    return detail
      .map((d) => (d && typeof d === 'object' && 'msg' in d ? String(d.msg) : JSON.stringify(d)))
      .join('; ');
  }
  return typeof detail === 'string' ? detail : JSON.stringify(detail);
}

/**
 * Fetch JSON, throwing an Error with the server's detail on a non-2xx answer.
 * @param {string} url
 * @param {RequestInit} [init]
 * @returns {Promise<any>}
 */
async function request(url, init = {}) {
  const response = await fetch(url, {
    ...init,
    headers: init.body ? { 'Content-Type': 'application/json' } : undefined,
  });
  if (response.status === 204) return null;
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = body && 'detail' in body ? describe(body.detail) : response.statusText;
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

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
  return request('/api/sessions', { method: 'POST', body: JSON.stringify(config) });
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

/**
 * A SessionExport as the server wrote it. Kept as text: its generator states are 128-bit
 * integers that JSON.parse would round to doubles, and the import would then be refused.
 * @param {string} id
 * @returns {Promise<string>}
 */
export async function exportSession(id) {
  const response = await fetch(`/api/sessions/${encodeURIComponent(id)}/export`);
  if (!response.ok) throw new Error(`${response.status}: could not export the session`);
  return response.text();
}

/**
 * Continue from a SessionExport, sent exactly as read from the file.
 * @param {string} exportedText
 * @returns {Promise<SessionPublic>}
 */
export function importSession(exportedText) {
  return request('/api/sessions/import', { method: 'POST', body: exportedText });
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
 * The session's points, split into train and test by its n_train.
 * @param {SessionPublic} session
 * @returns {Promise<DataPoints>}
 */
export async function fetchPoints(session) {
  const response = await fetch(dataCsvUrl(session.id));
  if (!response.ok) throw new Error(`${response.status}: could not read the session's data`);
  const rows = (await response.text())
    .split('\n')
    .map((line) => line.split(',').map(Number))
    .filter((row) => row.length === 3 && row.every(Number.isFinite));
  return { train: rows.slice(0, session.n_train), test: rows.slice(session.n_train) };
}
