/**
 * Who this page is to the server: its owner token and the session it last drove, kept in
 * localStorage so a reload reopens the learner's own session (docs/protocol.md "Owners").
 *
 * One token per browser profile and origin: the first create hands it out (`owner_token`), every
 * later create, command and change presents it (`Authorization: Bearer`, the websocket's first
 * `auth` message). Storage that is refused (a private window's quota) leaves the page working for
 * this visit only.
 */

/** localStorage key of the owner token. */
export const TOKEN_KEY = 'nn-playground.owner';
/** localStorage key of the page's own session: {id, hash} (the URL hash it last wrote). */
export const SESSION_KEY = 'nn-playground.session';

/** @type {string | null} the token when storage refuses it */
let memoryToken = null;

/**
 * @param {string} key
 * @returns {string | null}
 */
function read(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null;
  }
}

/**
 * @param {string} key
 * @param {string | null} value null removes it
 */
function write(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    // Storage refused: this visit keeps it in memory.
  }
}

/** @returns {string | null} the owner token, if the server has handed one out */
export function token() {
  return read(TOKEN_KEY) ?? memoryToken;
}

/**
 * Keep the token a create answered with (the same one again when we presented it).
 * @param {string} value
 */
export function adoptToken(value) {
  if (!value || value === token()) return;
  memoryToken = value;
  write(TOKEN_KEY, value);
}

/** The server does not know our token (it restarted, or the token was mangled): drop it. */
export function forgetToken() {
  memoryToken = null;
  write(TOKEN_KEY, null);
}

/**
 * Headers with `Authorization: Bearer <token>` added when the page has a token.
 * @param {HeadersInit} [headers]
 * @returns {Headers}
 */
export function withAuth(headers) {
  const result = new Headers(headers);
  const value = token();
  if (value) result.set('Authorization', `Bearer ${value}`);
  return result;
}

/**
 * @param {string | null} text
 * @returns {{id: string, hash: string} | null}
 */
function parseRemembered(text) {
  if (!text) return null;
  try {
    const value = JSON.parse(text);
    return value && typeof value.id === 'string' ? { id: value.id, hash: String(value.hash ?? '') } : null;
  } catch {
    return null;
  }
}

/**
 * The page's own session when it was last shown: this tab's (sessionStorage survives a reload)
 * or, in a new tab, the browser's last one (localStorage).
 * @returns {{id: string, hash: string, tab: boolean} | null} `tab`: this very tab drove it
 */
export function rememberedSession() {
  let tabText = null;
  try {
    tabText = sessionStorage.getItem(SESSION_KEY);
  } catch {
    // No sessionStorage: the browser's memory below.
  }
  const tab = parseRemembered(tabText);
  if (tab) return { ...tab, tab: true };
  const browser = parseRemembered(read(SESSION_KEY));
  return browser ? { ...browser, tab: false } : null;
}

/**
 * Remember the page's own session and the URL hash that describes it (null: forget).
 * @param {string | null} id
 * @param {string} [hash]
 */
export function rememberSession(id, hash = '') {
  const text = id === null ? null : JSON.stringify({ id, hash });
  write(SESSION_KEY, text);
  try {
    if (text === null) sessionStorage.removeItem(SESSION_KEY);
    else sessionStorage.setItem(SESSION_KEY, text);
  } catch {
    // No sessionStorage: localStorage alone.
  }
}
