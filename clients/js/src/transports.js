/*
 * tidings.js, part 2 of 4: HTTP helpers and one function per transport (the multiplexed
 * WebSocket, SSE, XHR streaming, the forever iframe, long and short polling).
 */
(function (G) {
  'use strict';
  const parts = G.__tidings;
  const {
    CLOSE_CODES, bytesOf, entry, fail, lineSplitter, noop, publishResult, splitFrame, textOf,
  } = parts;

  /* ---------------------------------------------------------------------------------------
   * HTTP helpers.
   * ------------------------------------------------------------------------------------- */

  /** An Error from a non-2xx response, using its `{"error":{"code","message"}}` body. */
  async function httpError(r) {
    let b = {};
    try {
      b = (await r.json()).error || {};
    } catch (e) { /* not JSON */ }
    return fail(b.code || 'http_' + r.status, b.message || 'HTTP ' + r.status, r.status);
  }

  /** GET JSON with a deadline; resolves [response, body] (body undefined on 304). */
  function getJSON(url, ac, ms, headers) {
    const t = setTimeout(() => ac.abort(), ms);
    return fetch(url, { signal: ac.signal, cache: 'no-store', headers: headers || {} })
      .then(async (r) => {
        if (r.status === 304) return [r];
        if (!r.ok) throw await httpError(r);
        return [r, await r.json()];
      })
      .finally(() => clearTimeout(t));
  }

  const canStreamFetch = () =>
    !!(G.fetch && G.AbortController && G.TextDecoder && G.Response && 'body' in G.Response.prototype);

  /**
   * Reads a streaming response line by line: fetch() with a ReadableStream where the browser
   * has one, else XHR progress events (readyState 3). `onEnd(error)` runs once when it ends.
   */
  function readLines(url, onLine, onEnd) {
    const split = lineSplitter();
    const feed = (text) => split(text).forEach(onLine);
    const ended = () => fail('closed', 'stream ended');
    if (canStreamFetch()) {
      const ac = new AbortController();
      fetch(url, { signal: ac.signal, cache: 'no-store' })
        .then(async (r) => {
          if (!r.ok) throw await httpError(r);
          const reader = r.body.getReader();
          const dec = new TextDecoder();
          for (let x; !(x = await reader.read()).done;) feed(dec.decode(x.value, { stream: true }));
          onEnd(ended());
        })
        .catch(onEnd);
      return { close: () => ac.abort() };
    }
    const xhr = new XMLHttpRequest();
    let seen = 0;
    const progress = () => {
      const t = xhr.responseText;
      if (xhr.status === 200 && t.length > seen) feed(t.slice(seen));
      seen = t.length;
    };
    xhr.open('GET', url);
    xhr.onprogress = progress;
    xhr.onloadend = () => {
      progress();
      onEnd(xhr.status === 200 ? ended() : fail('http_' + xhr.status, 'HTTP ' + xhr.status, xhr.status));
    };
    xhr.send();
    return {
      close() {
        xhr.onprogress = xhr.onloadend = null;
        xhr.abort();
      },
    };
  }

  /* ---------------------------------------------------------------------------------------
   * Transports. Each is a function of a Link (one connection attempt) that starts the
   * connection and returns a handle with close(), and optionally:
   *   update(channels)  apply a changed channel set in place (else the client restarts it),
   *   pub(ch, data, ev) publish over this connection,
   *   ping()            probe a quiet connection (the idle watchdog uses it),
   *   watch: true       the server sends heartbeats, so silence means a dead connection.
   * A transport reports through link.open(), link.env(envelope, bytes), link.batch(body)
   * and link.end(error, now).
   * ------------------------------------------------------------------------------------- */

  const transports = {
    /** Multiplexed WebSocket, subprotocol tidings.v1: one socket, all channels. */
    websocket(link) {
      const c = link.c;
      const ws = new WebSocket(c.url.replace(/^http/, 'ws') + '/ws', 'tidings.v1');
      const subscribed = new Set();
      const waiting = new Map(); // request id -> [resolve, reject]
      let ids = 0;
      ws.binaryType = 'arraybuffer';

      const request = (cmd, bytes) =>
        new Promise((resolve, reject) => {
          if (ws.readyState !== 1) return reject(fail('closed', 'WebSocket is not open'));
          cmd.id = ++ids;
          waiting.set(cmd.id, [resolve, reject]);
          let frame = JSON.stringify(cmd);
          if (bytes) {
            // A binary publish: the JSON header, `\n`, then the bytes, in one binary frame.
            const head = new TextEncoder().encode(frame + '\n');
            frame = new Uint8Array(head.length + bytes.length);
            frame.set(head);
            frame.set(bytes, head.length);
          }
          ws.send(frame);
        });

      const rejectAll = (e) => {
        waiting.forEach((w) => w[1](e));
        waiting.clear();
      };

      // Subscribe to new channels (resuming each from its own cursor entry), drop old ones.
      const update = (want) => {
        if (ws.readyState !== 1) return;
        want.forEach((ch) => {
          if (subscribed.has(ch)) return;
          subscribed.add(ch);
          const p = c._pos.get(ch);
          request({ op: 'subscribe', channel: ch, since: p ? entry(ch, p) : undefined }).then(
            // The reply names the position live delivery starts after: the cursor of a
            // channel subscribed "from now".
            (r) => r.epoch && c._merge(entry(ch, { e: r.epoch, o: r.offset })),
            (e) => e.code !== 'closed' && c._fail(e, [ch])
          );
        });
        subscribed.forEach((ch) => {
          if (want.indexOf(ch) < 0) {
            subscribed.delete(ch);
            request({ op: 'unsubscribe', channel: ch }).catch(noop);
          }
        });
      };

      const ping = () => request({ op: 'ping' }).catch(noop);

      ws.onopen = () => {
        update(c._want());
        // Nothing to subscribe to: a ping still proves the socket carries frames both ways.
        if (!subscribed.size) ping();
      };
      ws.onmessage = (ev) => {
        try {
          const [x, bytes] = typeof ev.data === 'string' ? [JSON.parse(ev.data)] : splitFrame(new Uint8Array(ev.data));
          if (!('id' in x)) return link.env(x, bytes);
          link.open();
          const w = waiting.get(x.id);
          const e = x.error && fail(x.error.code, x.error.message);
          waiting.delete(x.id);
          if (w) e ? w[1](e) : w[0](x);
          else if (e) c._fail(e, []); // an error about no particular request (id null)
        } catch (e) {
          link.end(e);
        }
      };
      ws.onclose = (ev) => {
        const e = fail(CLOSE_CODES[ev.code] || 'closed', 'WebSocket closed ' + ev.code + (ev.reason ? ': ' + ev.reason : ''), ev.code);
        rejectAll(e);
        link.end(e);
      };
      return {
        update,
        ping,
        watch: true,
        pub(ch, data, ev) {
          const bytes = bytesOf(data);
          const cmd = { op: 'publish', channel: ch };
          if (ev) cmd.event = ev;
          if (!bytes) cmd.data = textOf(data);
          return request(cmd, bytes).then((r) => publishResult(r, ch));
        },
        close() {
          ws.onclose = ws.onmessage = ws.onopen = null;
          rejectAll(fail('closed', 'connection closed'));
          ws.close();
        },
      };
    },

    /**
     * Server-Sent Events with ?format=json: every event's data is an envelope. Named events
     * never appear except `reset`, so `message` and `reset` listeners see everything. The
     * client closes the EventSource on error and reconnects itself, to own backoff and fallback.
     * The attempt opens on the first event (the server's `{"type":"open"}` notice), not on the
     * EventSource `open` event: a proxy may pass the headers at once and buffer the body.
     */
    sse(link) {
      const es = new EventSource(link.url('sse', { format: 'json' }, 'lastEventId'));
      const on = (ev) => {
        try {
          link.env(JSON.parse(ev.data));
          // The event id is the whole subscription's cursor: it starts quiet channels.
          if (ev.lastEventId) link.c._merge(ev.lastEventId);
        } catch (e) {
          link.end(e);
        }
      };
      es.onmessage = on;
      es.addEventListener('reset', on);
      es.onerror = () => link.end(fail('closed', 'event stream failed'));
      return { close: () => es.close() };
    },

    /** XHR streaming: ndjson lines, an open notice first, heartbeats, reconnect notices. */
    stream(link) {
      const h = readLines(
        link.url('stream'),
        (line) => {
          try {
            link.env(JSON.parse(line));
          } catch (e) {
            link.end(e);
          }
        },
        (e) => link.end(e)
      );
      h.watch = true;
      return h;
    },

    /**
     * Forever iframe: a hidden frame whose scripts call parent.NAME(envelope). NAME is a
     * fresh global per attempt, so a late call from an old frame never reaches a new link.
     */
    iframe(link) {
      const name = '__tidings_cb_' + ++frames;
      const f = G.document.createElement('iframe');
      G[name] = (x) => link.env(x);
      f.style.display = 'none';
      f.src = link.url('iframe', { callback: name });
      // The frame's document ended (byte budget spent without a notice, an error page, or a
      // dropped connection): the link is over.
      f.onload = () => link.end(fail('closed', 'iframe ended'));
      (G.document.body || G.document.documentElement).appendChild(f);
      return {
        watch: true,
        close() {
          G[name] = noop;
          f.onload = null;
          // Defer removal: close() may run inside one of the frame's own scripts.
          setTimeout(() => {
            f.remove();
            delete G[name];
          });
        },
      };
    },

    /** Long polling: each request is held until messages arrive or the server's timeout. */
    longpoll: (link) => pollLoop(link, true),

    /** Short polling every pollInterval, with ETag / If-None-Match (304: nothing new). */
    poll: (link) => pollLoop(link, false),
  };
  let frames = 0; // iframe callback names in use so far

  function pollLoop(link, long) {
    const o = link.c.options;
    let ac, timer, tag;
    let first = true;
    const go = () => {
      if (link.dead) return;
      ac = new AbortController();
      // The first long poll asks for a 1 s hold, so a quiet channel still proves the
      // transport within openTimeout and tells the starting cursor at once.
      const hold = long ? (first ? 1 : 25) : 0;
      const url = link.url(long ? 'longpoll' : 'poll', long ? { timeout: hold } : {});
      getJSON(url, ac, hold * 1000 + o.openTimeout, tag && { 'If-None-Match': tag })
        .then(([r, body]) => {
          first = false;
          if (body) {
            tag = r.headers.get('ETag');
            link.batch(body);
          } else link.open(); // 304
          if (long) go();
          else timer = setTimeout(go, o.pollInterval);
        })
        .catch((e) => link.end(e));
    };
    go();
    return {
      close() {
        clearTimeout(timer);
        ac.abort();
      },
    };
  }

  /** Whether this environment can run a transport. */
  function usable(name, url) {
    const fetchOk = !!(G.fetch && G.AbortController);
    switch (name) {
      case 'websocket': return !!G.WebSocket;
      case 'sse': return !!G.EventSource;
      case 'stream': return canStreamFetch() || !!G.XMLHttpRequest;
      // The frame calls parent.NAME(), which only a same-origin frame may do.
      case 'iframe': return !!(G.document && G.location && new URL(url).origin === G.location.origin);
      default: return fetchOk;
    }
  }

  Object.assign(parts, { httpError, transports, usable });
})(typeof globalThis !== 'undefined' ? globalThis : self);
