// A flooding client in a worker thread, so its own event loop does not slow the
// test's canary: connects with `token`, pipelines `count` `event`s with
// `payload`, and posts back what the server answered and whether it was closed.
//
//   const result = await flood({ url, token, event, payload, count });
//   // { answers: { ok, rate_limited, ..., none }, retryAfterMsMin, closing, disconnect }

import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';

import { io } from 'socket.io-client';

const ACK_TIMEOUT_MS = 10_000;

/** Runs a flood in a worker; resolves to its summary. */
export function flood(options) {
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL(import.meta.url), { workerData: options });
    worker.once('message', resolve);
    worker.once('error', reject);
    worker.once('exit', (code) => code !== 0 && reject(new Error(`flooder exited with ${code}`)));
  });
}

async function run({ url, token, event, payload, count }) {
  const socket = io(url, { transports: ['websocket'], forceNew: true, reconnection: false, auth: { token } });
  const summary = { answers: {}, retryAfterMsMin: null, closing: null, disconnect: null };
  socket.on('chat:closing', (data) => { summary.closing = data; });
  const gone = new Promise((resolve) => socket.on('disconnect', (reason) => { summary.disconnect = reason; resolve(); }));
  await new Promise((resolve, reject) => {
    socket.once('chat:ready', resolve);
    socket.once('connect_error', reject);
  });
  const answers = await Promise.all(Array.from({ length: count }, () =>
    socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event, payload).catch(() => null)));
  for (const a of answers) {
    const key = a === null ? 'none' : a.ok ? 'ok' : a.error?.code;
    summary.answers[key] = (summary.answers[key] ?? 0) + 1;
    const retry = a?.error?.retryAfterMs;
    if (retry !== undefined) summary.retryAfterMsMin = Math.min(summary.retryAfterMsMin ?? retry, retry);
  }
  if (socket.connected) socket.disconnect();
  await gone;
  return summary;
}

if (!isMainThread) parentPort.postMessage(await run(workerData));
