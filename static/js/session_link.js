/**
 * The page's link to its live session: creating or importing it (or attaching to one that exists:
 * the learner's own after a reload, someone else's to watch read-only), its websocket stream with
 * the owner's `auth` message first, the messages the server sends back, commands out, and a fresh
 * session when the connection is lost.
 */
import * as api from './api.js';
import { ApiError } from './http.js';
import * as jobs from './jobs.js';
import * as owner from './owner.js';
import { SessionStream } from './stream.js';

/** @typedef {import('./types.js').SessionPublic} SessionPublic */
/** @typedef {import('./playground.js').Playground} Playground */

/** A lost connection starts a new session this many times in a row, then asks for a reload. */
const MAX_RECONNECTS = 3;
/** Wait before watching a session again after its socket closed (a server closing at once is not hammered). */
const RESUBSCRIBE_MS = 300;
/**
 * How long a session that cannot be read (a server error, no answer) is asked for again before
 * the page gives up on it: behind nginx, a replica that died can leave it with no live replica
 * for its fail_timeout (5 s, deploy/nginx.conf), and a restarting shard answers 503 meanwhile.
 */
const UNREACHABLE_MS = 15000;
/** The longest wait between two of those reads. */
const RETRY_MAX_MS = 2000;
/** How often the page re-reads its session while someone may drive it from a script. */
const POLL_MS = 2000;

export class SessionLink {
  /**
   * @param {Playground} page told about frames, acks, refusals and errors; its `session` is the
   *   one this link streams, kept as the server last described it
   */
  constructor(page) {
    this.page = page;
    /** @type {SessionStream | null} */
    this.stream = null;
    this.reconnects = 0;
    /** @type {Map<number, boolean>} ids of `set` commands in flight: structural or not */
    this.pendingSets = new Map();
    /** commands sent so far (a poll started before one of ours is stale) */
    this.sent = 0;
    this.pollTimer = 0;
    /** @type {import('./types.js').FrameHeader | null} the newest drawable frame's header */
    this.lastHeader = null;
    /** whether our `auth` message awaits its answer (an error with no id is its refusal) */
    this.authPending = false;
    /** @type {Error | null} why the last open failed (an ApiError keeps status and Retry-After) */
    this.lastError = null;
  }

  /**
   * Create (or import) a session and subscribe to it, replacing the current one.
   * @param {() => Promise<SessionPublic>} create
   * @returns {Promise<boolean>} whether a session was opened
   */
  async open(create) {
    const page = this.page;
    let session;
    try {
      session = await create();
    } catch (error) {
      this.lastError = /** @type {Error} */ (error);
      page.showError(/** @type {Error} */ (error).message);
      return false;
    }
    this.lastError = null;
    const previous = page.session;
    // Only our own session is deleted when replaced (a watched one is its owner's).
    if (previous && !page.readOnly && previous.id !== session.id) api.deleteSession(previous.id).catch(() => {});
    this.attach(session, false);
    return true;
  }

  /**
   * Show a session that exists: ours (a reload, a create) or someone else's, watched read-only.
   * Its hello frame brings the history so far, so the curves are whole again.
   * @param {SessionPublic} session
   * @param {boolean} readOnly
   */
  attach(session, readOnly) {
    const page = this.page;
    this.stream?.close();
    this.lastHeader = null;
    page.session = session;
    page.setReadOnly(readOnly);
    page.curves.reset();
    page.views.data.updateDownload(api.dataCsvUrl(session.id));
    if (!readOnly) owner.rememberSession(session.id, location.hash);
    this.stream = this.subscribe(session.ws_url);
    page.refreshPoints();
  }

  /**
   * Open the stream of a session; its hello frame carries the history so far.
   * @param {string} wsPath
   * @returns {SessionStream}
   */
  subscribe(wsPath) {
    const stream = new SessionStream(wsPath, {
      onFrame: (frame) => {
        this.page.drawer.receive(frame);
        // A rows-only frame's light header says nothing about the status or the warning.
        if (frame.header.rows_only) return;
        this.lastHeader = frame.header;
        this.page.updateWarning(frame.header.warning ?? null);
      },
      onMessage: (message) => this.receiveMessage(message),
      onClose: () => this.streamClosed(),
    });
    // The owner's token first: without it the server refuses commands (read-only).
    const token = owner.token();
    this.authPending = Boolean(token);
    if (token) stream.authenticate(token);
    return stream;
  }

  /**
   * The socket closed without us asking. The server also closes a client it found too slow
   * while the session goes on training: watch the same session again while it answers, so its
   * model and curves are kept; only a session that is gone is replaced by a new one.
   */
  async streamClosed() {
    const session = this.page.session;
    this.stream = null;
    if (session && this.reconnects < MAX_RECONNECTS) {
      this.reconnects += 1;
      await new Promise((resolve) => setTimeout(resolve, RESUBSCRIBE_MS));
      const there = await this.stillThere(session.id);
      // The page may have moved on (a new session) while we waited.
      if (this.page.session?.id !== session.id || this.stream) return;
      if (there) {
        this.page.notices.clearError('reconnect');
        this.stream = this.subscribe(session.ws_url);
        return;
      }
    }
    this.lostConnection();
  }

  /**
   * Whether the session is still there to watch again. A 404 (or another refusal: 4xx) says it
   * is gone; a server error or no answer says nothing about it (a proxy without a live replica
   * for a moment, a restarting shard), so it is asked again, backing off, for UNREACHABLE_MS.
   * @param {string} id
   * @returns {Promise<boolean>}
   */
  async stillThere(id) {
    const deadline = Date.now() + UNREACHABLE_MS;
    for (let wait = RESUBSCRIBE_MS; ; wait = Math.min(2 * wait, RETRY_MAX_MS)) {
      let retryAfter = 0;
      try {
        await api.fetchSession(id);
        return true;
      } catch (error) {
        const status = error instanceof ApiError ? error.status : 0; // 0: no answer at all
        if (status >= 400 && status < 500 && status !== 408 && status !== 429) return false;
        retryAfter = error instanceof ApiError ? error.retryAfter * 1000 : 0;
      }
      const pause = Math.max(wait, retryAfter);
      if (Date.now() + pause > deadline || this.page.session?.id !== id) return false;
      this.page.showError('Lost the connection to the server; reconnecting…', 0, 'reconnect');
      await new Promise((resolve) => setTimeout(resolve, pause));
    }
  }

  /** The session went away (server restart, idle expiry): start a fresh one from the state. */
  lostConnection() {
    const page = this.page;
    // "removed" is followed by a close: stop listening so one loss starts one new session.
    this.stream?.close();
    this.stream = null;
    if (page.readOnly) {
      page.showError('The session you were watching is gone (its owner deleted it, or it expired).', 0);
      return;
    }
    if (this.reconnects >= MAX_RECONNECTS) {
      page.showError('Lost the connection to the server. Reload the page to start again.', 0);
      return;
    }
    this.reconnects += 1;
    page.showError('Lost the connection to the server; starting a new session…');
    page.session = null;
    setTimeout(() => page.openFromState(), 500);
  }

  /**
   * The server lost the worker process that ran this session (`{"type": "lost"}`, then close
   * 1011): the session is gone, not deleted by anyone. Say so, then start afresh as for a loss.
   * @param {string | undefined} detail
   */
  workerLost(detail) {
    const page = this.page;
    this.stream?.close();
    this.stream = null;
    const why = `The server lost this session's worker${detail ? ` (${detail})` : ''}`;
    if (page.readOnly) {
      page.showError(`${why}: the session you were watching is gone.`, 0, 'lost');
      return;
    }
    if (this.reconnects >= MAX_RECONNECTS) {
      page.showError(`${why}. Reload the page to start again.`, 0, 'lost');
      return;
    }
    this.reconnects += 1;
    page.showError(`${why}; starting a new session…`, 15000, 'lost');
    page.session = null;
    owner.rememberSession(null);
    setTimeout(() => page.openFromState(), 500);
  }

  /**
   * The server lost this session's worker and brought the session back from its last checkpoint
   * (`{"type": "restored", "epoch": N}`), paused, on the same connection: a fresh hello and a
   * full-history frame follow. Keep the session (no new one): clear the curves so that frame
   * redraws them from epoch 1, and say what happened.
   * @param {number} epoch
   */
  restored(epoch) {
    const page = this.page;
    this.lastHeader = null;
    page.curves.reset();
    page.showError(`The server restarted this session's worker: it is back at epoch ${epoch}, paused. Press play to go on.`, 10000, 'restored');
  }

  /**
   * A JSON message from the stream.
   * @param {any} message
   */
  receiveMessage(message) {
    const page = this.page;
    if (message.type === 'hello' || message.type === 'ack') {
      this.reconnects = 0;
      page.session = message.session;
      // An ack describes the session when the command was applied; frames may already be past it
      // (a fast run that finished before the ack of its play): then the frames tell the status.
      const frame = this.lastHeader;
      const stale = frame?.session_id === message.session.id && frame.epoch > message.session.epoch;
      if (!stale) {
        page.setStatus(message.session.status, message.session.status_reason);
        page.updateWarning(message.session.warning ?? null);
      }
      if (message.type !== 'ack') return;
      const structuralSet = this.pendingSets.get(message.id);
      this.pendingSets.delete(message.id);
      if (structuralSet !== undefined) page.notices.clearError('set');
      if (message.command === 'regenerate' || message.command === 'reset') {
        // The server moved the seed (regenerate) or the initial weights' draw (reset): keep the
        // URL able to reproduce this start.
        const { seed, init_draw: initDraw } = message.session.config;
        page.setState(initDraw === undefined ? { seed } : { seed, init_draw: initDraw }, false);
        if (message.command === 'regenerate') page.refreshPoints();
      } else if (structuralSet) {
        page.refreshPoints();
      }
    } else if (message.type === 'auth') {
      this.authPending = false;
      if (message.owner) page.setReadOnly(false);
    } else if (message.type === 'error' && message.id == null && this.authPending) {
      // Our token was refused: the session is someone else's (or the token is unknown).
      this.authPending = false;
      page.setReadOnly(true);
    } else if (message.type === 'error' && typeof message.detail === 'string' && message.detail.startsWith('read-only')) {
      this.pendingSets.delete(message.id);
      page.setReadOnly(true);
      page.showError('Refused: you are watching this session read-only; only its owner can change it.', 8000, 'read-only');
      if (page.session) page.adoptConfig(page.session);
    } else if (message.type === 'error') {
      const refusedSet = this.pendingSets.has(message.id);
      // A refused setting stays on screen until a setting is accepted (or 15 s pass).
      if (refusedSet) page.showError(message.detail, 15000, 'set');
      else page.showError(message.detail);
      if (refusedSet) {
        // The server refused a change: show what it actually runs.
        this.pendingSets.delete(message.id);
        if (page.session) page.adoptConfig(page.session);
      }
    } else if (message.type === 'removed') {
      this.lostConnection();
    } else if (message.type === 'restored') {
      this.restored(message.epoch);
    } else if (message.type === 'lost') {
      this.workerLost(message.detail);
    } else if (message.type === 'class') {
      // The session's class (docs/protocol.md "Classroom"): a preset pushed, the class paused or deleted.
      if (message.session) page.adoptExternal(message.session);
      const said = { preset: 'Your teacher pushed a preset', pause: 'Your teacher paused the class' };
      page.showError(said[/** @type {'preset' | 'pause'} */ (message.event)] ?? message.detail ?? 'Class message', 8000, 'class');
      window.dispatchEvent(new CustomEvent('nn-class', { detail: message }));
    } else if (message.type === 'job') {
      jobs.receive(message.job);
      if (message.job?.state !== 'running') this.jobEnded(message.job);
    }
  }

  /**
   * A job of this session ended (done, cancelled, failed): no frame may follow to say the session
   * paused (a cancelled step trains no further epoch), so read its status once.
   * @param {{target?: string}} job
   */
  async jobEnded(job) {
    const page = this.page;
    const session = page.session;
    if (!session || job.target !== session.id) return;
    try {
      const fresh = await api.fetchSession(session.id);
      if (page.session?.id !== fresh.id) return;
      page.session = fresh;
      page.setStatus(fresh.status, fresh.status_reason);
    } catch {
      // Gone: the stream says so.
    }
  }

  /**
   * Send a command to the session.
   * @param {Record<string, unknown>} command
   * @returns {number} its id (0: no stream to send it on)
   */
  send(command) {
    if (!this.stream) return 0;
    this.sent += 1;
    return this.stream.send(command);
  }

  /**
   * Re-read the session every POLL_MS while `on` (the "Use from Python" panel is open), so
   * config a script changes shows in the controls; frames already show its status and weights.
   * @param {boolean} on
   */
  poll(on) {
    clearTimeout(this.pollTimer);
    if (!on) return;
    const tick = async () => {
      const page = this.page;
      const session = page.session;
      const sentBefore = this.sent;
      if (session && this.pendingSets.size === 0) {
        try {
          const fresh = await api.fetchSession(session.id);
          // Skip an answer that may predate a command of ours.
          if (this.sent === sentBefore && this.pendingSets.size === 0) page.adoptExternal(fresh);
        } catch {
          // A gone session is the stream's business (it starts a new one).
        }
      }
      this.pollTimer = window.setTimeout(tick, POLL_MS);
    };
    this.pollTimer = window.setTimeout(tick, POLL_MS);
  }

  /**
   * Send a config change, remembering it until the server acks or refuses it.
   * @param {Record<string, unknown>} changes
   * @param {boolean} structural whether it changes the data or the architecture
   */
  sendSet(changes, structural) {
    const id = this.send({ type: 'set', config: changes });
    this.pendingSets.set(id, structural);
  }

  /**
   * The page goes away (pagehide, a reload): stop watching but keep the session, so a reload
   * reopens it; unwatched, the server pauses it after a while.
   */
  leave() {
    this.poll(false);
    this.stream?.close();
    this.stream = null;
  }

  /** Done with it: close the stream and delete our session so it stops using the server. */
  close() {
    const page = this.page;
    this.leave();
    if (page.session && !page.readOnly) {
      // keepalive lets the request outlive the page.
      fetch(`/api/sessions/${encodeURIComponent(page.session.id)}`, {
        method: 'DELETE', keepalive: true, headers: owner.withAuth(),
      }).catch(() => {});
      owner.rememberSession(null);
    }
    page.session = null;
  }
}
