/**
 * "Use from Python" panel: the live session's id and a ready snippet (REST with httpx, the
 * websocket with websockets) that drives the very session this page shows, with Copy buttons.
 * The snippets carry the page's owner token (the `Authorization: Bearer` header, the websocket's
 * first `auth` message); watching someone else's session, they only read.
 */
import { el } from '../dom.js';

/**
 * The REST part: read the session, then send commands; the page follows at once.
 * @param {string} origin e.g. "http://127.0.0.1:8000"
 * @param {string} id the session's id
 * @param {string | null} [token] the owner token (null: watching, reads only)
 * @returns {string}
 */
export function restSnippet(origin, id, token = null) {
  if (!token) {
    return `# pip install httpx  (watching: only the session's owner may change it)
import httpx

BASE = ${JSON.stringify(origin)}
SESSION = ${JSON.stringify(id)}

with httpx.Client(base_url=BASE) as client:
    session = client.get(f"/api/sessions/{SESSION}").raise_for_status().json()
    print(session["status"], session["epoch"], session["weights_hash"])
`;
  }
  return `# pip install httpx  (the page shows every change at once)
import time

import httpx

BASE = ${JSON.stringify(origin)}
SESSION = ${JSON.stringify(id)}
# This page's owner token: it lets a script change your sessions, so keep it private.
TOKEN = ${JSON.stringify(token)}

with httpx.Client(base_url=BASE, headers={"Authorization": f"Bearer {TOKEN}"}) as client:
    session = client.get(f"/api/sessions/{SESSION}").raise_for_status().json()
    print(session["status"], session["epoch"], session["weights_hash"])

    def command(**body):
        """One command (play, pause, step, reset, set, ...); returns the session."""
        reply = client.post(f"/api/sessions/{SESSION}/commands", json=body).raise_for_status()
        if reply.status_code == 202:  # long work is a job: wait for it, then read its answer
            job = reply.json()["job"]
            while client.get(f"/api/jobs/{job['id']}").json()["state"] == "running":
                time.sleep(0.25)
            reply = client.get(f"/api/jobs/{job['id']}/result").raise_for_status()
        return reply.json()

    command(type="set", config={"learning_rate": 0.1})
    session = command(type="step", n=20)  # answers when the 20 epochs are done
    command(type="pause")
    print("epoch", session["epoch"], "test loss", session["metrics"]["test_loss"])
`;
}

/**
 * The websocket part: send a command and read the frames the page reads.
 * @param {string} origin
 * @param {string} id
 * @param {string | null} [token] the owner token (null: watching, no commands)
 * @returns {string}
 */
export function websocketSnippet(origin, id, token = null) {
  const wsOrigin = origin.replace(/^http/, 'ws');
  const auth = token
    ? `        # Prove ownership first; without it commands are refused (read-only).
        await socket.send(json.dumps({"type": "auth", "token": TOKEN}))
        await socket.send(json.dumps({"type": "play", "id": 1}))`
    : '        # Watching: only the owner (with its token, the "auth" message) may send commands.';
  const pause = token ? '\n        await socket.send(json.dumps({"type": "pause", "id": 2}))' : '';
  return `# pip install websockets
import asyncio
import json

import websockets

URL = ${JSON.stringify(`${wsOrigin}/ws/sessions/${id}`)}
${token ? `TOKEN = ${JSON.stringify(token)}
` : ''}

async def watch(frames: int = 10) -> None:
    async with websockets.connect(URL) as socket:
${auth}
        while frames:
            message = await socket.recv()
            if isinstance(message, str):  # hello, auth, ack, job, error: JSON text
                print(json.loads(message)["type"])
                continue
            # A binary frame: 4-byte big-endian header length, JSON header, sections.
            size = int.from_bytes(message[:4], "big")
            header = json.loads(message[4 : 4 + size])
            if header.get("rows_only"):  # only older epochs' loss rows, ahead of a full frame
                continue
            print("epoch", header["epoch"], "test loss", header["metrics"]["test_loss"])
            frames -= 1${pause}


asyncio.run(watch())
`;
}

/**
 * An element holding children (strings or nodes).
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {Record<string, string>} attributes
 * @param {(string | Node)[]} children
 */
function box(tag, attributes, children) {
  const node = el(tag, attributes);
  node.append(...children);
  return node;
}

/**
 * A button that runs `onClick`.
 * @param {Record<string, string>} attributes
 * @param {string} text
 * @param {() => void} onClick
 */
function button(attributes, text, onClick) {
  const node = el('button', { type: 'button', ...attributes }, text);
  node.addEventListener('click', onClick);
  return node;
}

export class PythonPanelView {
  /**
   * @param {HTMLDetailsElement} panel the <details> element
   * @param {HTMLElement} idLabel where the summary shows the session id
   * @param {HTMLElement} body filled with the snippets
   */
  constructor(panel, idLabel, body) {
    this.panel = panel;
    this.idLabel = idLabel;
    this.restCode = el('code', { id: 'python-rest' });
    this.wsCode = el('code', { id: 'python-ws' });
    this.status = el('span', { class: 'copy-status', role: 'status' });
    this.bodyId = el('code', { id: 'python-session-id-body' });
    /** A link that opens this session for watching (read-only for anyone but its owner). */
    this.watchLink = /** @type {HTMLAnchorElement} */ (el('a', { id: 'watch-link', href: '#', target: '_blank', rel: 'noopener' }, 'watch link'));
    body.replaceChildren(
      box('p', { class: 'hint' }, [
        'This page trains session ', this.bodyId, ' on the server. A script can drive the very same ',
        'session: what it sends shows here. While this panel is open the page re-reads the session ',
        'every 2 s, so settings a script changes show in the controls too.',
      ]),
      box('p', { class: 'hint', id: 'python-token-hint' }, [
        'Only the session\'s owner may change it: the snippets carry this page\'s owner token, as the ',
        el('code', {}, 'Authorization: Bearer …'), ' header and, on the websocket, a first ',
        el('code', {}, '{"type": "auth", "token": …}'), ' message. Keep it private; anyone with the ',
        'session id may watch it, read-only: ', this.watchLink, '.',
      ]),
      box('div', { class: 'python-blocks' }, [
        this.block('REST (httpx)', this.restCode, 'copy-python-rest'),
        this.block('Websocket (websockets)', this.wsCode, 'copy-python-ws'),
      ]),
      box('div', { class: 'copy-row' }, [
        button({ id: 'copy-python' }, 'Copy both', () => this.copy(this.text())),
        this.status,
      ]),
    );
    /** @type {string | null} */
    this.sessionId = null;
    /** @type {string | null} */
    this.token = null;
  }

  /**
   * One titled code block with its own Copy button.
   * @param {string} title
   * @param {HTMLElement} code
   * @param {string} buttonId
   */
  block(title, code, buttonId) {
    const copy = button({ id: buttonId, class: 'mini-button', 'aria-label': `Copy the ${title} snippet` }, 'Copy',
      () => this.copy(code.textContent ?? ''));
    return box('div', { class: 'python-block' }, [
      box('div', { class: 'python-block-head' }, [el('span', { class: 'label' }, title), copy]),
      box('pre', {}, [code]),
    ]);
  }

  /** Both snippets, one script. */
  text() {
    return `${this.restCode.textContent}\n\n${this.wsCode.textContent}`;
  }

  /**
   * Show a session (null: none yet); the snippets follow its id and the owner token.
   * @param {string | null} id
   * @param {string | null} [token] the page's owner token (null: watching someone else's)
   */
  update(id, token = null) {
    if (id === this.sessionId && token === this.token) return;
    this.sessionId = id;
    this.token = token;
    const shown = id ?? '…';
    this.idLabel.textContent = shown;
    this.bodyId.textContent = shown;
    this.watchLink.href = id ? `${location.origin}/?session=${encodeURIComponent(id)}` : '#';
    this.restCode.textContent = id ? restSnippet(location.origin, id, token) : '';
    this.wsCode.textContent = id ? websocketSnippet(location.origin, id, token) : '';
  }

  /**
   * Copy text to the clipboard (the selection-and-execCommand way where the API is refused).
   * @param {string} text
   */
  async copy(text) {
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      const area = el('textarea');
      area.value = text;
      document.body.append(area);
      area.select();
      document.execCommand('copy');
      area.remove();
    }
    this.status.textContent = 'Copied';
    setTimeout(() => { this.status.textContent = ''; }, 2000);
  }

  /**
   * Call `handler(open)` when the panel opens or closes.
   * @param {(open: boolean) => void} handler
   */
  bindToggle(handler) {
    this.panel.addEventListener('toggle', () => handler(this.panel.open));
  }

  /** @returns {boolean} */
  get open() {
    return this.panel.open;
  }
}
