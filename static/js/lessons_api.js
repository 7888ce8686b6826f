/** REST calls of the lessons and instruments (docs/lessons.md); failures become Errors with the detail. */
import { authorizedFetch } from './http.js';
import { request as jobRequest } from './jobs.js';

/**
 * The server's `detail` as one readable line (422 details are lists of {loc, msg}).
 * @param {unknown} detail
 * @returns {string}
 */
function describe(detail) {
  if (Array.isArray(detail)) {
    return detail.map((d) => (d && typeof d === 'object' && 'msg' in d ? String(d.msg) : JSON.stringify(d))).join('; ');
  }
  return typeof detail === 'string' ? detail : JSON.stringify(detail);
}

/**
 * A JSON request with the page's owner token; a job (202) is followed to its answer (jobs.js).
 * @param {string} url
 * @param {RequestInit} [init]
 * @param {{create?: boolean, label?: string}} [options]
 * @returns {Promise<any>}
 */
const request = (url, init = {}, options = {}) => jobRequest(url, init, { describe, ...options });

/** @param {unknown} body */
const post = (body) => ({ method: 'POST', body: JSON.stringify(body) });
const enc = encodeURIComponent;

/** @returns {Promise<{id: string, number: number, title: string, section: string, kind: string}[]>} */
export const fetchLessons = () => request('/api/lessons');
/** @param {string} id */
export const fetchLesson = (id) => request(`/api/lessons/${enc(id)}`);
/** @param {Record<string, unknown>} params */
export const runPerceptron = (params) => request('/api/instruments/perceptron', post(params));
/** @param {Record<string, unknown>} body preset or config, learning_rate, batch_start... */
export const backprop = (body) => request('/api/instruments/backprop', post(body));
/**
 * @param {string} sessionId
 * @param {{batch_start?: number, batch_size?: number, training?: boolean}} [query]
 */
export function sessionTrace(sessionId, query = {}) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null) params.set(k, String(v));
  return request(`/api/sessions/${enc(sessionId)}/trace?${params}`);
}
/** @param {{config: Record<string, unknown>, racers: Record<string, unknown>[]}} body */
export const createRace = (body) => request('/api/races', post(body));
/**
 * @param {string} id
 * @param {number} epochs
 */
export const stepRace = (id, epochs) => request(`/api/races/${enc(id)}/step`, post({ epochs }), { label: `Racing ${epochs} epochs` });
/** @param {string} id */
export const deleteRace = (id) => request(`/api/races/${enc(id)}`, { method: 'DELETE' });
/** @param {string} sessionId */
export const createReplay = (sessionId) => request(`/api/sessions/${enc(sessionId)}/timetravel`, { method: 'POST' }, { label: 'Replaying the run' });
/**
 * The frame of a past epoch, as the bytes the page's frame decoder reads.
 * @param {string} sessionId
 * @param {number} epoch
 * @returns {Promise<ArrayBuffer>}
 */
export async function fetchPastFrame(sessionId, epoch) {
  const response = await authorizedFetch(`/api/sessions/${enc(sessionId)}/timetravel/${epoch}`, {}, { describe });
  return response.arrayBuffer();
}
/**
 * @param {string} sessionId
 * @param {number} epoch
 * @param {Record<string, unknown>} config
 */
export const fork = (sessionId, epoch, config) => request(`/api/sessions/${enc(sessionId)}/timetravel/fork`, post({ epoch, config }), { label: 'Forking' });
/**
 * Change a session's config (PATCH); structural fields rebuild it (docs/protocol.md).
 * @param {string} sessionId
 * @param {Record<string, unknown>} changes
 */
export const patchSession = (sessionId, changes) => request(`/api/sessions/${enc(sessionId)}`, { method: 'PATCH', body: JSON.stringify(changes) });
/**
 * A session command over REST: a `step` answers once its epochs are trained.
 * @param {string} sessionId
 * @param {Record<string, unknown>} command
 */
export const sessionCommand = (sessionId, command) => request(`/api/sessions/${enc(sessionId)}/commands`, post(command));
/**
 * The training points a config's dataset gives (GET /api/datasets/{name}/preview).
 * @param {Record<string, any>} config
 * @returns {Promise<number[][]>}
 */
export async function previewPoints(config) {
  const params = new URLSearchParams();
  for (const key of ['n_samples', 'noise', 'train_ratio', 'seed']) {
    if (config[key] !== null && config[key] !== undefined) params.set(key, String(config[key]));
  }
  const preview = await request(`/api/datasets/${enc(config.dataset)}/preview?${params}`);
  return preview.train;
}
