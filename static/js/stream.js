/**
 * The websocket to one session: sends commands, decodes binary frames (docs/protocol.md).
 *
 * Frames are handed on as they arrive; drawing at most once per animation frame is the
 * controller's job, so this module never touches the DOM.
 */

/** @typedef {import('./types.js').Frame} Frame */
/** @typedef {import('./types.js').FrameHeader} FrameHeader */
/** @typedef {import('./types.js').SectionEntry} SectionEntry */

const decoder = new TextDecoder();

/** The `epochs` columns when a frame does not name them (the protocol's first four). */
const EPOCH_COLUMNS = ['train_loss', 'test_loss', 'train_metric', 'test_metric'];

/**
 * A typed view on one section, copied so the frame's buffer can be released.
 * @param {ArrayBuffer} buffer
 * @param {number} base payload start
 * @param {SectionEntry} entry
 */
function sectionView(buffer, base, entry) {
  const at = base + entry.offset;
  if (entry.dtype === 'float32') return new Float32Array(buffer, at, entry.length);
  if (entry.dtype === 'float64') return new Float64Array(buffer, at, entry.length);
  return new Uint8Array(buffer, at, entry.length);
}

/**
 * q/255 scaled into [min, max], the protocol's quantization.
 * @param {Uint8Array} bytes
 * @param {number} min
 * @param {number} max
 * @param {Float32Array} out
 * @param {number} outOffset
 */
function dequantize(bytes, min, max, out, outOffset) {
  const scale = (max - min) / 255;
  for (let i = 0; i < bytes.length; i++) out[outOffset + i] = min + bytes[i] * scale;
}

/**
 * Decode one binary frame.
 * @param {ArrayBuffer} buffer
 * @returns {Frame}
 */
export function decodeFrame(buffer) {
  const headerLength = new DataView(buffer).getUint32(0);
  /** @type {FrameHeader} */
  const header = JSON.parse(decoder.decode(new Uint8Array(buffer, 4, headerLength)));
  const base = 4 + headerLength;
  const sections = header.sections ?? {};
  /** @type {Frame} */
  const frame = {
    header,
    epochs: null,
    epochColumns: EPOCH_COLUMNS,
    output: null,
    outputClass: null,
    neurons: null,
    neuronResolution: 0,
  };
  if (sections.epochs) {
    frame.epochs = /** @type {Float32Array} */ (sectionView(buffer, base, sections.epochs));
    frame.epochColumns = sections.epochs.columns ?? EPOCH_COLUMNS;
  }
  if (sections.output) {
    const entry = sections.output;
    const bytes = /** @type {Uint8Array} */ (sectionView(buffer, base, entry));
    frame.output = new Float32Array(bytes.length);
    dequantize(bytes, entry.min ?? 0, entry.max ?? 1, frame.output, 0);
  }
  if (sections.output_class) {
    frame.outputClass = /** @type {Uint8Array} */ (sectionView(buffer, base, sections.output_class));
  }
  if (sections.neurons) {
    const entry = sections.neurons;
    const bytes = /** @type {Uint8Array} */ (sectionView(buffer, base, entry));
    const [m, g] = entry.shape;
    const cells = g * g;
    frame.neurons = new Float32Array(bytes.length);
    frame.neuronResolution = g;
    const ranges = entry.ranges ?? [];
    for (let n = 0; n < m; n++) {
      const [lo, hi] = ranges[n] ?? [0, 1];
      dequantize(bytes.subarray(n * cells, (n + 1) * cells), lo, hi, frame.neurons, n * cells);
    }
  }
  return frame;
}

/**
 * @typedef {object} StreamHandlers
 * @property {(frame: Frame) => void} onFrame
 * @property {(message: any) => void} onMessage  hello, auth, ack, prediction, job, error, removed, lost
 * @property {(event: CloseEvent) => void} onClose
 */

export class SessionStream {
  /**
   * Open the websocket of a session.
   * @param {string} wsPath e.g. "/ws/sessions/abc"
   * @param {StreamHandlers} handlers
   */
  constructor(wsPath, handlers) {
    const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
    this.socket = new WebSocket(`${scheme}://${location.host}${wsPath}`);
    this.socket.binaryType = 'arraybuffer';
    /** @type {string[]} messages sent before the socket opened */
    this.queue = [];
    this.closedByUs = false;
    this.nextId = 1;
    this.socket.addEventListener('open', () => {
      for (const text of this.queue) this.socket.send(text);
      this.queue = [];
    });
    this.socket.addEventListener('message', (event) => {
      if (typeof event.data === 'string') handlers.onMessage(JSON.parse(event.data));
      else handlers.onFrame(decodeFrame(event.data));
    });
    this.socket.addEventListener('close', (event) => {
      if (!this.closedByUs) handlers.onClose(event);
    });
  }

  /**
   * Send a command; returns the id echoed in its ack or error.
   * @param {Record<string, unknown>} command
   * @returns {number}
   */
  send(command) {
    const id = this.nextId++;
    const text = JSON.stringify({ ...command, id });
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(text);
    else this.queue.push(text);
    return id;
  }

  /**
   * Prove ownership with the owner token: `{"type": "auth", "token": ...}`, sent before any
   * command (first in the queue when the socket is not open yet). The server answers
   * `{"type": "auth", "owner": true}` or an error; without it the session is watched read-only.
   * @param {string} token
   */
  authenticate(token) {
    const text = JSON.stringify({ type: 'auth', token });
    if (this.socket.readyState === WebSocket.OPEN) this.socket.send(text);
    else this.queue.unshift(text);
  }

  /** Close without reporting it as a lost connection. */
  close() {
    this.closedByUs = true;
    this.socket.close();
  }
}
