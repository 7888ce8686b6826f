/**
 * "Join a class" in the playground's masthead: the learner types the class's code and a name;
 * the page's own session joins the class (`POST /api/classes/{code}/join` with the owner
 * token), so the teacher's dashboard shows it. A class's messages to this session (a preset
 * pushed, the class paused or deleted) arrive on the session's websocket (session_link.js
 * re-dispatches them as the `nn-class` window event). docs/protocol.md "Classroom".
 */
import { callJson } from './http.js';

/** localStorage key of the class this browser's session joined: {code, title, name, session}. */
const KEY = 'nn-playground.classroom';

const byId = (/** @type {string} */ id) => /** @type {HTMLElement} */ (document.getElementById(id));

/** @returns {{code: string, title: string, name: string, session: string} | null} */
function joined() {
  try {
    return JSON.parse(localStorage.getItem(KEY) ?? 'null');
  } catch {
    return null;
  }
}

/** @param {object | null} value */
function remember(value) {
  try {
    if (value === null) localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, JSON.stringify(value));
  } catch {
    // Storage refused: the class is still joined on the server.
  }
}

/** @returns {any} the playground (main.js exposes it), once it has a session */
function playground() {
  return /** @type {any} */ (window).playground;
}

/** Show whether (and where) the page's session is in a class. */
function render() {
  const current = joined();
  const session = playground()?.session?.id;
  const inClass = current && current.session === session;
  byId('class-join-summary').textContent = inClass ? `Class ${current.code}` : 'Join a class';
  byId('class-leave').hidden = !inClass;
  if (inClass) {
    byId('class-join-status').textContent = `You are in “${current.title}” (${current.code}) as ${current.name}.`;
  }
  const name = /** @type {HTMLInputElement} */ (byId('class-join-name'));
  if (current && !name.value) name.value = current.name;
}

/** @param {string} text */
function say(text) {
  byId('class-join-status').textContent = text;
}

async function join(/** @type {SubmitEvent} */ event) {
  event.preventDefault();
  const code = /** @type {HTMLInputElement} */ (byId('class-join-code')).value.toUpperCase().replace(/[\s-]/g, '');
  const name = /** @type {HTMLInputElement} */ (byId('class-join-name')).value.trim();
  const page = playground();
  if (!page?.session || page.readOnly) {
    say('Start your own session first (you are watching someone else’s).');
    return;
  }
  try {
    const { body } = await callJson(`/api/classes/${encodeURIComponent(code)}/join`, {
      method: 'POST', body: JSON.stringify({ session_id: page.session.id, name }),
    });
    remember({ code: body.code, title: body.title, name: body.name, session: body.session_id });
    render();
  } catch (error) {
    say(`Could not join: ${/** @type {Error} */ (error).message}`);
  }
}

async function leave() {
  const current = joined();
  if (!current) return;
  try {
    await callJson(`/api/classes/${encodeURIComponent(current.code)}/learners/${encodeURIComponent(current.session)}`, { method: 'DELETE' });
  } catch {
    // Already out (the class was deleted, or the teacher removed us).
  }
  remember(null);
  say('You left the class.');
  render();
}

/**
 * The page moved to a new session of its own (a lost one replaced, a model imported): it joins
 * the class again under the same name, so the teacher keeps seeing this learner.
 */
async function follow() {
  const current = joined();
  const page = playground();
  const session = page?.session;
  if (!current || !session || page.readOnly || current.session === session.id || following.refused) return;
  try {
    const { body } = await callJson(`/api/classes/${encodeURIComponent(current.code)}/join`, {
      method: 'POST', body: JSON.stringify({ session_id: session.id, name: current.name }),
    });
    remember({ ...current, session: body.session_id });
  } catch (error) {
    const status = /** @type {{status?: number}} */ (error).status;
    if (status === 404) remember(null);  // the class is gone
    else following.refused = true;  // e.g. the class is full: ask no more until a reload
    say(`Could not rejoin class ${current.code}: ${/** @type {Error} */ (error).message}`);
  }
  render();
}

/** How often the page checks that its class follows its session. */
const FOLLOW_MS = 3000;
/** Whether the server refused to move this page's new session into its class. */
const following = { refused: false };

byId('class-join-form').addEventListener('submit', join);
window.setInterval(follow, FOLLOW_MS);
byId('class-leave').addEventListener('click', leave);
byId('class-join').addEventListener('toggle', render);
window.addEventListener('nn-class', (event) => {
  const message = /** @type {CustomEvent} */ (event).detail;
  if (message.event === 'left') {
    remember(null);
    say(message.detail);
    render();
  }
});
