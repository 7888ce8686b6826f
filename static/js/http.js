/**
 * The page's one way to call the REST API: the owner token on every request, the server's
 * readable detail on every failure (with `Retry-After` kept from a 429), and the `owner_token`
 * of a create adopted. Jobs (202) are jobs.js's business, built on this.
 */
import * as owner from './owner.js';

/** At most this many distinct problems of a 422 are listed; the rest are counted. */
const MAX_PROBLEMS = 8;

/** An Error that keeps the HTTP status, the server's readable detail and its Retry-After apart. */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} detail
   * @param {number} [retryAfter] seconds the server asked us to wait (429, 503), else 0
   */
  constructor(status, detail, retryAfter = 0) {
    super(retryAfter > 0 ? `${status}: ${detail} (try again in ${retryAfter} s)` : `${status}: ${detail}`);
    this.status = status;
    this.detail = detail;
    this.retryAfter = retryAfter;
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
 * Seconds of a `Retry-After` header (a number of seconds or an HTTP date); 0 when absent.
 * @param {Response} response
 * @returns {number}
 */
export function retryAfterSeconds(response) {
  const value = response.headers.get('Retry-After');
  if (!value) return 0;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return Math.max(0, Math.ceil(seconds));
  const date = Date.parse(value);
  return Number.isFinite(date) ? Math.max(0, Math.ceil((date - Date.now()) / 1000)) : 0;
}

/**
 * @typedef {object} CallOptions
 * @property {(detail: unknown) => string} [describe] how the failure's detail is written
 * @property {boolean} [create] a create: a token the server no longer knows (401) is dropped and
 *   the request sent once more without it, so the server hands out a new one
 */

/**
 * `fetch` with the owner token; throws an ApiError for a non-2xx answer.
 * @param {string} url
 * @param {RequestInit} [init]
 * @param {CallOptions} [options]
 * @returns {Promise<Response>}
 */
export async function authorizedFetch(url, init = {}, options = {}) {
  const sentToken = owner.token();
  const headers = owner.withAuth(init.headers);
  if (init.body && !headers.has('Content-Type')) headers.set('Content-Type', 'application/json');
  const response = await fetch(url, { ...init, headers });
  if (response.ok) return response;
  if (response.status === 401 && sentToken && options.create) {
    owner.forgetToken();
    return authorizedFetch(url, init, { ...options, create: false });
  }
  const body = await response.json().catch(() => null);
  const explain = options.describe ?? describe;
  const detail = body && typeof body === 'object' && 'detail' in body ? explain(body.detail) : response.statusText;
  throw new ApiError(response.status, detail, retryAfterSeconds(response));
}

/**
 * A JSON request: the status and the body (null for 204); an `owner_token` in it is adopted.
 * @param {string} url
 * @param {RequestInit} [init]
 * @param {CallOptions} [options]
 * @returns {Promise<{status: number, body: any, location: string | null}>}
 */
export async function callJson(url, init = {}, options = {}) {
  const response = await authorizedFetch(url, init, options);
  const body = response.status === 204 ? null : await response.json().catch(() => null);
  if (body && typeof body === 'object' && typeof body.owner_token === 'string') owner.adoptToken(body.owner_token);
  return { status: response.status, body, location: response.headers.get('Location') };
}
