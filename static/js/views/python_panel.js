/**
 * "Use from Python" panel: the live session's id and a ready snippet (REST with httpx, the
 * websocket with websockets) that drives the very session this page shows, with Copy buttons.
 */
import { el } from '../dom.js';

/**
 * The REST part: read the session, then send commands; the page follows at once.
 * @param {string} origin e.g. "http://127.0.0.1:8000"
 * @param {string} id the session's id
 * @returns {string}
 */
export function restSnippet(origin, id) {
  return `# pip install httpx  (the page shows every change at once)
import httpx

BASE = ${JSON.stringify(origin)}
SESSION = ${JSON.stringify(id)}

with httpx.Client(base_url=BASE) as client:
    session = client.get(f"/api/sessions/{SESSION}").raise_for_status().json()
    print(session["status"], session["epoch"], session["weights_hash"])

    def command(**body):
        """One command (play, pause, step, reset, set, ...); returns the session."""
        reply = client.post(f"/api/sessions/{SESSION}/commands", json=body)
        return reply.raise_for_status().json()

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
 * @returns {string}
 */
export function websocketSnippet(origin, id) {
  const wsOrigin = origin.replace(/^http/, 'ws');
  return `# pip install websockets
import asyncio
import json

import websockets

URL = ${JSON.stringify(`${wsOrigin}/ws/sessions/${id}`)}


async def watch(frames: int = 10) -> None:
    async with websockets.connect(URL) as socket:
        await socket.send(json.dumps({"type": "play", "id": 1}))
        while frames:
            message = await socket.recv()
            if isinstance(message, str):  # hello, ack, error: JSON text
                print(json.loads(message)["type"])
                continue
            # A binary frame: 4-byte big-endian header length, JSON header, sections.
            size = int.from_bytes(message[:4], "big")
            header = json.loads(message[4 : 4 + size])
            if header.get("rows_only"):  # only older epochs' loss rows, ahead of a full frame
                continue
            print("epoch", header["epoch"], "test loss", header["metrics"]["test_loss"])
            frames -= 1
        await socket.send(json.dumps({"type": "pause", "id": 2}))


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
    body.replaceChildren(
      box('p', { class: 'hint' }, [
        'This page trains session ', this.bodyId, ' on the server. A script can drive the very same ',
        'session: what it sends shows here. While this panel is open the page re-reads the session ',
        'every 2 s, so settings a script changes show in the controls too.',
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
   * Show a session (null: none yet); the snippets follow its id.
   * @param {string | null} id
   */
  update(id) {
    if (id === this.sessionId) return;
    this.sessionId = id;
    const shown = id ?? '…';
    this.idLabel.textContent = shown;
    this.bodyId.textContent = shown;
    this.restCode.textContent = id ? restSnippet(location.origin, id) : '';
    this.wsCode.textContent = id ? websocketSnippet(location.origin, id) : '';
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
