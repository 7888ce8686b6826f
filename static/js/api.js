/** REST calls to the server (docs/protocol.md); every failure becomes an Error with its detail. */

/** @typedef {import('./types.js').Registry} Registry */
/** @typedef {import('./types.js').SessionPublic} SessionPublic */
/** @typedef {import('./types.js').DataPoints} DataPoints */

/** At most this many distinct problems of a 422 are listed; the rest are counted. */
const MAX_PROBLEMS = 8;

/** An Error that keeps the HTTP status and the server's readable detail apart. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} detail
   */
  constructor(status, detail) {
    super(`${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
  }
}

/**
 * The server's `detail` as one readable line. A 422 detail is FastAPI's list of {loc, msg}:
 * missing fields are named in one "missing fields a, b, c", every other problem is written
 * "loc: msg" once (a list of 11 "Field required" says which 11 fields).
 * @param {unknown} detail
 * @returns {string}
 */
export function describe(detail) {
  if (!Array.isArray(detail)) return typeof detail === 'string' ? detail : JSON.stringify(detail);
  /** @type {string[]} */
  const missing = [];
  /** @type {string[]} */
  const problems = [];
  for (const item of detail) {
    if (!item || typeof item !== 'object' || !('msg' in item)) {
      problems.push(JSON.stringify(item));
      continue;
    }
    // "body" is where FastAPI found the field, not part of its name.
    const loc = (Array.isArray(item.loc) ? item.loc : []).filter((part, i) => !(i === 0 && part === 'body'));
    const where = loc.join('.');
    if (item.type === 'missing' && where) missing.push(where);
    else problems.push(where ? `${where}: ${item.msg}` : String(item.msg));
  }
  const lines = missing.length ? [`missing fields ${[...new Set(missing)].join(', ')}`] : [];
  const distinct = [...new Set(problems)];
  lines.push(...distinct.slice(0, MAX_PROBLEMS));
  if (distinct.length > MAX_PROBLEMS) lines.push(`and ${distinct.length - MAX_PROBLEMS} more`);
  return lines.join('; ');
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
    throw new ApiError(response.status, detail);
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
