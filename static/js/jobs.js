/**
 * Long work as jobs (docs/protocol.md "Jobs"): a route that may take long answers
 * `202 {"job": JobPublic}` when its work is not done within the server's wait. `request` turns
 * that back into the route's usual answer: it shows a progress bar with a Cancel button, follows
 * the job (the session's websocket `{"type": "job"}` messages, or GET /api/jobs/{id} about four
 * times a second when none came), then reads GET /api/jobs/{id}/result. Every REST call of the
 * page goes through here, so races, time travel, long steps and imports all show their progress.
 */
import { ApiError, callJson } from './http.js';
import { JobsView } from './views/jobs.js';

/** @typedef {import('./http.js').CallOptions} CallOptions */

/**
 * @typedef {object} JobPublic
 * @property {string} id
 * @property {string} kind race_step, replay, step, ...
 * @property {string} target the session or race it works for
 * @property {'running' | 'done' | 'failed' | 'cancelled'} state
 * @property {number} done
 * @property {number} total
 * @property {string | null} detail
 */

/** Poll a job this often (ms) when no websocket message told us about it meanwhile. */
const POLL_MS = 250;
/** A result the server is still writing (409) is asked for again this many times. */
const RESULT_TRIES = 20;

/** What each kind of job is called on its progress bar. */
const KIND_LABELS = /** @type {Record<string, string>} */ ({
  race_step: 'Racing',
  replay: 'Replaying the run',
  step: 'Training',
  import: 'Importing the model',
  fork: 'Forking',
});

/** The job was cancelled (its Cancel button, or DELETE /api/jobs/{id} by its owner). */
export class JobCancelled extends Error {
  /** @param {JobPublic} job */
  constructor(job) {
    super(`${KIND_LABELS[job.kind] ?? job.kind} cancelled at ${job.done} of ${job.total}`);
    this.job = job;
  }
}

/**
 * @typedef {object} Tracked
 * @property {JobPublic} job the newest state known
 * @property {number} seen how many updates arrived (websocket or poll)
 * @property {() => void} wake ends the current wait early
 */

/** @type {Map<string, Tracked>} jobs being followed, by id */
const followed = new Map();
/** @type {JobsView | null} */
let view = null;

/** @returns {JobsView} the progress bars, made on the first job */
function bars() {
  view ??= new JobsView(document.body, (id) => cancelJob(id));
  return view;
}

/**
 * @param {number} ms
 * @returns {Promise<void>}
 */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** @returns {string[]} the ids of the jobs being followed (for tests) */
export function followedJobs() {
  return [...followed.keys()];
}

/**
 * A `{"type": "job"}` websocket message: progress of a job we follow.
 * @param {JobPublic} job
 */
export function receive(job) {
  const tracked = followed.get(job?.id);
  if (!tracked) return;
  tracked.job = job;
  tracked.seen += 1;
  bars().update(job);
  tracked.wake();
}

/**
 * Ask the server to stop a job (its owner's token); the job's follower sees it cancelled.
 * @param {string} id
 */
export async function cancelJob(id) {
  try {
    await callJson(`/api/jobs/${encodeURIComponent(id)}`, { method: 'DELETE' });
  } catch (error) {
    // Already finished (or gone): the follower reports what happened.
    const tracked = followed.get(id);
    if (tracked) bars().note(tracked.job, /** @type {Error} */ (error).message);
  }
}

/**
 * Follow a job to its end and return its result (the answer the route would have given).
 * @param {JobPublic} job as the 202 described it
 * @param {string} [label] what the progress bar says (default: by the job's kind)
 * @returns {Promise<any>}
 */
export async function runJob(job, label) {
  /** @type {Tracked} */
  const tracked = { job, seen: 0, wake: () => {} };
  followed.set(job.id, tracked);
  bars().show(job, label ?? KIND_LABELS[job.kind] ?? job.kind);
  const path = `/api/jobs/${encodeURIComponent(job.id)}`;
  try {
    while (tracked.job.state === 'running') {
      const seen = tracked.seen;
      await new Promise((resolve) => {
        tracked.wake = () => resolve(undefined);
        setTimeout(resolve, POLL_MS);
      });
      if (tracked.seen !== seen) continue; // the websocket told us meanwhile
      try {
        const { body } = await callJson(path);
        tracked.job = body;
        tracked.seen += 1;
        bars().update(body);
      } catch (error) {
        // A rate limit: wait as long as the server asks, then look again (once per answer).
        if (error instanceof ApiError && error.status === 429) await sleep(Math.max(1, error.retryAfter) * 1000);
        else throw error;
      }
    }
    const ended = tracked.job;
    if (ended.state === 'cancelled') throw new JobCancelled(ended);
    if (ended.state === 'failed') throw new ApiError(500, ended.detail ?? 'the job failed');
    for (let attempt = 1; ; attempt++) {
      try {
        return (await callJson(`${path}/result`)).body;
      } catch (error) {
        if (!(error instanceof ApiError) || attempt >= RESULT_TRIES || (error.status !== 409 && error.status !== 429)) throw error;
        await sleep(error.status === 429 ? Math.max(1, error.retryAfter) * 1000 : POLL_MS);
      }
    }
  } finally {
    followed.delete(job.id);
    bars().finish(tracked.job);
  }
}

/**
 * A JSON request whose long work may come back as a job: the route's usual answer either way.
 * @param {string} url
 * @param {RequestInit} [init]
 * @param {CallOptions & {label?: string}} [options]
 * @returns {Promise<any>}
 */
export async function request(url, init = {}, options = {}) {
  const { status, body } = await callJson(url, init, options);
  if (status === 202 && body && typeof body === 'object' && body.job && typeof body.job.id === 'string') {
    return runJob(body.job, options.label);
  }
  return body;
}
