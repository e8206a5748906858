// Scriptable stand-ins for the browser APIs the client uses: WebSocket, EventSource, fetch
// and sessionStorage. Each test drives the "server" side by hand.

export const E1 = '000000000001';
export const E2 = '000000000002';

/** Polls `cond` until it holds, or fails after `ms`. */
export async function waitFor(cond, ms = 2000, what = String(cond)) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + what);
    await new Promise((r) => setTimeout(r, 3));
  }
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function msg(channel, offset, data = 'd' + offset, extra = {}) {
  return { channel, epoch: E1, offset, time: 1764510000000, data, ...extra };
}

export class FakeWebSocket {
  static all = [];
  constructor(url, protocol) {
    this.url = url;
    this.protocol = protocol;
    this.readyState = 0;
    this.sent = [];
    this.closed = false;
    FakeWebSocket.all.push(this);
  }
  send(frame) {
    this.sent.push(typeof frame === 'string' ? JSON.parse(frame) : frame);
  }
  close() {
    this.readyState = 3;
    this.closed = true;
  }
  // --- server side ---
  accept() {
    this.readyState = 1;
    this.onopen && this.onopen();
  }
  push(obj) {
    this.onmessage({ data: JSON.stringify(obj) });
  }
  pushBinary(envelope, bytes) {
    const head = new TextEncoder().encode(JSON.stringify(envelope) + '\n');
    const frame = new Uint8Array(head.length + bytes.length);
    frame.set(head);
    frame.set(bytes, head.length);
    this.onmessage({ data: frame.buffer });
  }
  /** Answers every command sent so far that has no reply yet. */
  replyAll(fn = (cmd) => ({ ok: true })) {
    this.replied = this.replied || 0;
    while (this.replied < this.sent.length) {
      const cmd = this.sent[this.replied++];
      if (cmd instanceof Uint8Array) continue;
      this.push({ id: cmd.id, ...fn(cmd) });
    }
  }
  drop(code = 1006, reason = '') {
    this.readyState = 3;
    this.onclose && this.onclose({ code, reason });
  }
  commands(op) {
    return this.sent.filter((c) => !(c instanceof Uint8Array) && (!op || c.op === op));
  }
}

export class FakeEventSource {
  static all = [];
  constructor(url) {
    this.url = url;
    this.listeners = {};
    this.closed = false;
    FakeEventSource.all.push(this);
  }
  addEventListener(type, fn) {
    (this.listeners[type] = this.listeners[type] || []).push(fn);
  }
  close() {
    this.closed = true;
  }
  // --- server side ---
  /** Headers, then the id-less open notice the server sends first in ?format=json. */
  accept(cursor = '') {
    this.onopen && this.onopen();
    this.emit('message', { type: 'open', cursor });
  }
  /** Headers only: what a proxy that buffers the body lets through. */
  headers() {
    this.onopen && this.onopen();
  }
  emit(type, obj, lastEventId = '') {
    const ev = { data: JSON.stringify(obj), lastEventId };
    if (type === 'message' && this.onmessage) this.onmessage(ev);
    (this.listeners[type] || []).forEach((fn) => fn(ev));
  }
  fail() {
    this.onerror && this.onerror({});
  }
}

/** A fetch whose requests wait until the test answers them. */
export function fakeFetch() {
  const requests = [];
  const fetch = (url, init = {}) =>
    new Promise((resolve, reject) => {
      const req = { url: new URL(url), init, resolve, reject };
      if (init.signal) {
        if (init.signal.aborted) return reject(new DOMException('aborted', 'AbortError'));
        init.signal.addEventListener('abort', () => {
          req.aborted = true;
          reject(new DOMException('aborted', 'AbortError'));
          if (req.controller) {
            try {
              req.controller.error(new DOMException('aborted', 'AbortError'));
            } catch (e) { /* closed */ }
          }
        });
      }
      requests.push(req);
    });
  /** Answers a request with JSON. */
  const json = (req, body, status = 200, headers = {}) =>
    req.resolve(new Response(status === 304 ? null : JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } }));
  /** Answers a request with a streaming body; returns {line(obj), end()}. */
  const stream = (req) => {
    const body = new ReadableStream({ start: (c) => (req.controller = c) });
    req.resolve(new Response(body, { status: 200, headers: { 'Content-Type': 'application/x-ndjson' } }));
    const te = new TextEncoder();
    return {
      line: (obj) => req.controller.enqueue(te.encode(JSON.stringify(obj) + '\n')),
      raw: (text) => req.controller.enqueue(te.encode(text)),
      end: () => req.controller.close(),
    };
  };
  return { fetch, requests, json, stream };
}

export function fakeStorage() {
  const m = new Map();
  return { getItem: (k) => (m.has(k) ? m.get(k) : null), setItem: (k, v) => m.set(k, String(v)), map: m };
}

/** Installs the fakes on globalThis; returns the fetch fake and a restore function. */
export function install({ ws = true, es = true } = {}) {
  const saved = { fetch: globalThis.fetch, sessionStorage: globalThis.sessionStorage };
  FakeWebSocket.all = [];
  FakeEventSource.all = [];
  if (ws) globalThis.WebSocket = FakeWebSocket;
  if (es) globalThis.EventSource = FakeEventSource;
  const f = fakeFetch();
  globalThis.fetch = f.fetch;
  globalThis.sessionStorage = fakeStorage();
  f.restore = () => {
    delete globalThis.WebSocket;
    delete globalThis.EventSource;
    globalThis.fetch = saved.fetch;
    if (saved.sessionStorage === undefined) delete globalThis.sessionStorage;
    else globalThis.sessionStorage = saved.sessionStorage;
  };
  return f;
}
