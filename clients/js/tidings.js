/*!
 * tidings.js: the browser client of Tidings, a real-time web push server.
 *
 * One source file with no dependencies. Loaded by a classic <script> it defines the global
 * `Tidings`; `tidings.mjs` imports it and re-exports that global for `import`. The wire format
 * is in docs/protocol.md and the API in docs/client.md.
 *
 * Layout: pure helpers (cursor, backoff, envelopes, ndjson lines, transport order), then one
 * function per transport, then `Link` (one connection attempt) and the `Tidings` client
 * (subscriptions, positions, fallback and reconnection, and the optional tab sharing).
 */
(function (G) {
  'use strict';

  /* ---------------------------------------------------------------------------------------
   * Pure helpers: no I/O, no global state. Exported as `Tidings.internals` for unit tests.
   * ------------------------------------------------------------------------------------- */

  const NAME = '[A-Za-z0-9_.:@/=-]{1,200}';
  const CHANNEL = RegExp('^' + NAME + '$');
  const ENTRY = RegExp('^(' + NAME + ')~([0-9a-fA-F]{12})~(\\d{1,20})$');
  const TRANSPORTS = ['websocket', 'sse', 'stream', 'iframe', 'longpoll', 'poll'];
  const STORE_KEY = 'tidings.transport';
  /** Consecutive open failures of a transport that once worked before falling back. */
  const MAX_FAILS = 3;
  /** WebSocket close codes of the protocol's error table (docs/protocol.md) and their codes. */
  const CLOSE_CODES = {
    1001: 'shutting_down',
    1009: 'payload_too_large',
    1013: 'broker_unavailable',
    4400: 'bad_request',
    4401: 'unauthorized',
    4403: 'forbidden',
    4404: 'not_found',
    4408: 'slow_consumer',
    4429: 'too_many_subscriptions',
  };
  const noop = () => {};
  const enc = encodeURIComponent;

  /** An Error carrying a protocol error `code` (and the HTTP `status` or WS close code). */
  function fail(code, message, status) {
    const e = Error(message || code);
    e.code = code;
    if (status) e.status = status;
    return e;
  }

  /** Positions are kept as a Map: channel -> {e: epoch (12 hex), o: offset (last seen)}. */
  const entry = (ch, p) => ch + '~' + p.e + '~' + p.o;

  /**
   * Parses cursor text (`channel~epoch~offset` entries joined by `,`) into a position Map.
   * Malformed entries are skipped rather than poisoning the whole cursor.
   */
  function parseCursor(text, into) {
    const pos = into || new Map();
    String(text || '').split(',').forEach((s) => {
      const m = ENTRY.exec(s.trim());
      if (m) pos.set(m[1], { e: m[2].toLowerCase(), o: +m[3] });
    });
    return pos;
  }

  /** Composes cursor text from a position Map, for `channels` (in that order) or all of them. */
  function formatCursor(pos, channels) {
    return (channels || Array.from(pos.keys()))
      .filter((ch) => pos.has(ch))
      .map((ch) => entry(ch, pos.get(ch)))
      .join(',');
  }

  /**
   * Merges a cursor the server sent into `pos`. An entry is taken for a channel that has
   * none yet (it started "from now" and this is where it started); with `forward`, also when
   * it lies further on in the same epoch (the cursor after a poll batch or a reconnect
   * notice). It never moves a channel back, and never crosses epochs: only a reset does that.
   * `wanted(channel)` filters out channels no longer subscribed.
   */
  function mergeCursor(pos, text, forward, wanted) {
    parseCursor(text).forEach((p, ch) => {
      const q = pos.get(ch);
      if ((!wanted || wanted(ch)) && (!q || (forward && q.e === p.e && p.o > q.o))) pos.set(ch, p);
    });
    return pos;
  }

  /**
   * Records that a message at (epoch, offset) of `ch` arrived. Returns false for a
   * duplicate: an offset at or below the last one seen in the same epoch.
   */
  function advance(pos, ch, epoch, offset) {
    const p = pos.get(ch);
    if (p && p.e === epoch && offset <= p.o) return false;
    pos.set(ch, { e: epoch, o: offset });
    return true;
  }

  /**
   * Reconnection delay in ms for the `attempt`-th retry (0-based): exponential, capped, with
   * full jitter, i.e. uniform in [0, min(max, base * 2^attempt)). `random` is injectable.
   */
  function backoff(attempt, opts, random) {
    return (random || Math.random)() * Math.min(opts.max, opts.base * Math.pow(2, Math.min(attempt, 30)));
  }

  /**
   * An incremental ndjson splitter: feed it text chunks, get back the complete, non-empty
   * lines; a partial last line is kept for the next chunk.
   */
  function lineSplitter() {
    let rest = '';
    return (chunk) => {
      const lines = (rest + chunk).split('\n');
      rest = lines.pop();
      return lines.map((s) => s.trim()).filter(Boolean);
    };
  }

  const b64 = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

  /**
   * The message handed to `onMessage`, from a message envelope. `bytes` is the payload of a
   * WebSocket binary frame; otherwise base64 data (`encoding: "base64"`) is decoded.
   */
  function toMessage(x, bytes) {
    const base64 = x.encoding === 'base64';
    return {
      channel: x.channel,
      epoch: x.epoch,
      offset: x.offset,
      event: x.event || 'message',
      data: bytes || (base64 ? b64(x.data) : x.data),
      time: x.time,
      binary: !!bytes || base64,
      cursor: entry(x.channel, { e: x.epoch, o: x.offset }),
    };
  }

  /** Splits a WebSocket binary push: envelope JSON, `\n`, then the payload bytes. */
  function splitFrame(u8) {
    const i = u8.indexOf(10);
    if (i < 0) throw fail('bad_frame', 'binary frame without a header');
    return [JSON.parse(new TextDecoder().decode(u8.subarray(0, i))), u8.slice(i + 1)];
  }

  /**
   * The order in which to try transports: the requested names that are known and `usable`,
   * with the one remembered from earlier in the session moved to the front.
   */
  function transportOrder(requested, remembered, usable) {
    const list = requested.filter((n, i) => TRANSPORTS.indexOf(n) >= 0 && requested.indexOf(n) === i && usable(n));
    const i = list.indexOf(remembered);
    if (i > 0) list.unshift(list.splice(i, 1)[0]);
    return list;
  }

  /** Normalises a publish reply (WS `{ok,channel,epoch,offset}` or HTTP `{channel,id,cursor}`). */
  function publishResult(r, channel) {
    const ch = r.channel || channel;
    const p = r.cursor ? parseCursor(r.cursor).get(ch) : r.epoch && { e: r.epoch, o: r.offset };
    return p ? { channel: ch, epoch: p.e, offset: p.o, cursor: entry(ch, p) } : Object.assign({ channel: ch }, r);
  }

  /** Raw bytes of binary publish data, or null for text. */
  function bytesOf(d) {
    if (d instanceof ArrayBuffer) return new Uint8Array(d);
    return ArrayBuffer.isView(d) ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength) : null;
  }

  const textOf = (d) => (typeof d === 'string' ? d : JSON.stringify(d));

  /** Calls a user callback; an exception is reported asynchronously and never breaks delivery. */
  function call(fn, x) {
    if (fn) {
      try {
        fn(x);
      } catch (e) {
        if (G.reportError) G.reportError(e);
        else setTimeout(() => { throw e; });
      }
    }
  }

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

  /* ---------------------------------------------------------------------------------------
   * Link: one attempt to connect one transport, with its own open timer and idle watchdog.
   * Once it ends (or the client closes it), every late callback from it is ignored.
   * ------------------------------------------------------------------------------------- */

  class Link {
    constructor(c, name, channels) {
      const o = c.options;
      this.c = c;
      this.name = name;
      this.ch = channels;
      this.ok = this.dead = false;
      this.last = this.pinged = Date.now();
      this.timer = setTimeout(() => this.end(fail('timeout', name + ' did not open within ' + o.openTimeout + ' ms')), o.openTimeout);
    }

    /** URL of an HTTP transport: channels, the cursor of those channels, and `extra`. */
    url(path, extra, sinceKey) {
      const q = this.ch.map((ch) => 'channel=' + enc(ch));
      const cursor = formatCursor(this.c._pos, this.ch);
      if (cursor) q.push((sinceKey || 'since') + '=' + enc(cursor));
      for (const k in extra) q.push(k + '=' + enc(extra[k]));
      return this.c.url + '/' + path + '?' + q.join('&');
    }

    /** The transport proved itself (first frame, chunk, notice or response). */
    open() {
      this.last = Date.now();
      if (this.dead || this.ok) return;
      this.ok = true;
      clearTimeout(this.timer);
      const idle = this.c.options.idleTimeout;
      if (idle > 0 && this.t && this.t.watch) this.dog = setInterval(() => this.check(), idle / 3);
      this.c._opened(this);
    }

    /** One envelope: a message, a reset, or a control notice (open/heartbeat/reconnect). */
    env(x, bytes) {
      if (this.dead) return;
      this.open();
      const t = x.type;
      if (x.cursor) this.c._merge(x.cursor, t === 'reconnect');
      if (t === 'reconnect') this.end(null, true);
      else if (!t || t === 'reset') this.c._deliver(x, bytes);
    }

    /** A poll body: {"messages":[…],"cursor":"…"}. */
    batch(b) {
      if (this.dead) return;
      this.open();
      (b.messages || []).forEach((x) => this.env(x));
      this.c._merge(b.cursor, true);
    }

    /**
     * Idle watchdog of transports that carry heartbeats: ping a quiet socket; give up on a
     * stream whose heartbeats stopped. Silence is measured from the last data, so throttled
     * timers in a background tab make it slower, never trigger-happy.
     */
    check() {
      const t = this.t;
      const idle = this.c.options.idleTimeout;
      const now = Date.now();
      if (t.ping) {
        if (this.pinged > this.last) {
          if (now - this.pinged > idle / 2) this.end(fail('timeout', 'no reply to ping'));
        } else if (now - this.last > idle / 2) {
          this.pinged = now;
          t.ping();
        }
      } else if (now - this.last > idle) this.end(fail('timeout', 'no heartbeat for ' + idle + ' ms'));
    }

    /** The connection is over: `now` asks to reconnect at once (a reconnect notice). */
    end(e, now) {
      if (this.dead) return;
      this.close();
      this.c._ended(this, e, now);
    }

    /** Stops the transport without telling the client. */
    close() {
      if (this.dead) return;
      this.dead = true;
      clearTimeout(this.timer);
      clearInterval(this.dog);
      try {
        if (this.t) this.t.close();
      } catch (e) { /* already gone */ }
    }
  }

  /* ---------------------------------------------------------------------------------------
   * The client.
   * ------------------------------------------------------------------------------------- */

  class Subscription {
    constructor(client, channels, opts) {
      this.client = client;
      this.channels = channels;
      this.options = opts;
    }
    /** Cursor text of this subscription's channels: persist it and pass it back as `since`. */
    get cursor() {
      return formatCursor(this.client._pos, this.channels);
    }
    unsubscribe() {
      this.client._unsub(this);
    }
  }

  class Tidings {
    /**
     * @param {string} [baseUrl] the server, e.g. "https://push.example.com"; defaults to the
     *   page's origin. A path prefix is kept ("https://example.com/push").
     * @param {object} [options] see docs/client.md
     */
    constructor(baseUrl, options) {
      const o = (this.options = Object.assign(
        { transports: TRANSPORTS, openTimeout: 5000, pollInterval: 1000, idleTimeout: 45000, shared: false, apiKey: null },
        options
      ));
      o.backoff = Object.assign({ base: 500, max: 15000 }, o.backoff);
      let url = String(baseUrl || '');
      if (G.location) url = new URL(url || '/', G.location.href).href;
      this.url = url.replace(/\/+$/, '');
      let remembered;
      try {
        remembered = G.sessionStorage.getItem(STORE_KEY);
      } catch (e) { /* no storage (sandboxed frame, Node) */ }
      this._order = transportOrder(o.transports, remembered, (n) => usable(n, this.url));
      this._subs = new Map(); // channel -> Set<Subscription>
      this._pos = new Map(); // channel -> {e, o}: the last position seen; the cursor
      this._ev = {}; // event name -> Set<listener>
      this._state = 'closed';
      this._tr = null;
      this._link = null; // the current connection attempt
      this._timer = 0; // pending (re)connect
      this._i = 0; // index in _order of the transport in use
      this._attempt = 0; // backoff step, reset after every successful open
      this._fails = 0; // consecutive open failures of a transport that worked
      this._worked = false; // the current transport opened at least once
      this._up = false; // any transport opened since the last idle period
      if (G.addEventListener) {
        // Back online: retry at once, starting again from the preferred transport.
        G.addEventListener('online', (this._online = () => {
          if (this._timer && !this._link) {
            this._attempt = this._fails = this._i = 0;
            this._worked = false;
            this._open();
          }
        }));
      }
      if (o.shared && G.BroadcastChannel) this._share();
    }

    /** The connection state: 'connecting' | 'open' | 'reconnecting' | 'closed'. */
    get state() {
      return this._state;
    }

    /** The transport in use or being tried (in a shared follower tab: the leader's). */
    get transport() {
      return this._tr;
    }

    /** Cursor text of every channel this client follows. */
    get cursor() {
      return formatCursor(this._pos);
    }

    /**
     * Subscribes to one channel or several. `since` (a cursor string) resumes channels that
     * are not subscribed yet; others join at their current position.
     */
    subscribe(channels, opts) {
      if (this._closed) throw fail('closed', 'client is closed');
      const list = [].concat(channels);
      list.forEach((ch) => {
        if (typeof ch !== 'string' || !CHANNEL.test(ch)) throw new TypeError('bad channel name ' + JSON.stringify(ch) + ': use 1-200 of [A-Za-z0-9_.:@/=-]');
      });
      opts = opts || {};
      const since = parseCursor(opts.since);
      const sub = new Subscription(this, Array.from(new Set(list)), opts);
      sub.channels.forEach((ch) => {
        if (!this._wants(ch) && since.has(ch)) this._pos.set(ch, since.get(ch));
        if (!this._subs.has(ch)) this._subs.set(ch, new Set());
        this._subs.get(ch).add(sub);
      });
      this._sync();
      return sub;
    }

    /**
     * Publishes; resolves {channel, epoch, offset, cursor}. Over the open multiplexed
     * WebSocket when there is one (namespaces with client_publish), else HTTP POST (which
     * needs `apiKey`, or a loopback page). `data` is a string, bytes, or JSON-encoded.
     */
    publish(channel, data, opts) {
      const ev = opts && opts.event;
      if (this._closed) return Promise.reject(fail('closed', 'client is closed'));
      if (this._bc && !this._lead && this._leader) return this._relay(channel, data, ev);
      return this._publish(channel, data, ev);
    }

    /** Listens to 'status' ({state, transport}) or 'error' (Error). Returns an unlisten function. */
    on(type, fn) {
      (this._ev[type] = this._ev[type] || new Set()).add(fn);
      return () => this.off(type, fn);
    }

    off(type, fn) {
      if (this._ev[type]) this._ev[type].delete(fn);
    }

    /** Ends every subscription and the connection. The client cannot be used again. */
    close() {
      if (this._closed) return;
      this._closed = true;
      clearTimeout(this._timer);
      if (this._link) this._link.close();
      this._link = null;
      this._subs.clear();
      if (this._online) G.removeEventListener('online', this._online);
      if (this._bc) {
        this._post({ t: 'bye' });
        clearInterval(this._tick);
        if (this._unlock) this._unlock();
        this._lockAbort.abort();
        if (G.removeEventListener) G.removeEventListener('pagehide', this._bye);
        this._bc.close();
        this._bc = null;
      }
      this._status('closed', null);
    }

    /* ---- internals ------------------------------------------------------------------- */

    _unsub(sub) {
      sub.channels.forEach((ch) => {
        const s = this._subs.get(ch);
        if (s && s.delete(sub) && !s.size) this._subs.delete(ch);
      });
      this._sync();
    }

    _emit(type, x) {
      if (this._ev[type]) this._ev[type].forEach((fn) => call(fn, x));
    }

    _status(state, transport) {
      if (state === this._state && transport === this._tr) return;
      this._state = state;
      this._tr = transport;
      this._emit('status', { state, transport });
      if (this._lead) this._post({ t: 'st', st: state, tr: transport });
    }

    /** Reports an error to 'error' listeners and to the onError of the subscriptions of `channels`. */
    _fail(e, channels) {
      this._emit('error', e);
      channels.forEach((ch) => (this._subs.get(ch) || []).forEach((sub) => call(sub.options.onError, e)));
      if (this._lead) this._post({ t: 'err', e: { code: e.code, message: e.message, status: e.status }, ch: channels });
    }

    /** Channels to receive: this tab's, plus (as the shared leader) the other tabs'. */
    _want() {
      const s = new Set(this._subs.keys());
      if (this._lead) this._remote.forEach((r) => r.ch.forEach((ch) => s.add(ch)));
      return Array.from(s).sort();
    }

    _wants(ch) {
      if (this._subs.has(ch)) return true;
      let any = false;
      if (this._lead) this._remote.forEach((r) => (any = any || r.ch.has(ch)));
      return any;
    }

    _merge(text, forward) {
      mergeCursor(this._pos, text, forward, (ch) => this._wants(ch));
    }

    /** Applies subscription changes once per tick, however many were made. */
    _sync() {
      if (this._queued) return;
      this._queued = true;
      Promise.resolve().then(() => {
        this._queued = false;
        this._apply();
      });
    }

    _apply() {
      if (this._closed) return;
      const want = this._want();
      // Forget the positions of channels nobody follows any more.
      this._pos.forEach((p, ch) => want.indexOf(ch) < 0 && this._pos.delete(ch));
      if (this._bc && !this._lead) return this._announce();
      const l = this._link;
      if (!want.length) {
        // Nothing to receive: hold no connection until the next subscribe.
        clearTimeout(this._timer);
        this._timer = 0;
        if (l) l.close();
        this._link = null;
        this._up = false;
        return this._status('closed', null);
      }
      if (!l) {
        if (!this._timer) this._open();
      } else if (l.t && l.t.update) l.t.update(want);
      else if (String(l.ch) !== String(want)) {
        // An HTTP transport names its channels in the URL: restart it with the merged cursor.
        l.close();
        this._link = null;
        this._open(true);
      }
    }

    /** Starts a connection attempt with the current transport. */
    _open(quiet) {
      clearTimeout(this._timer);
      this._timer = 0;
      if (this._closed || (this._bc && !this._lead)) return;
      const ch = this._want();
      if (!ch.length) return;
      const name = this._order[this._i];
      if (!name) {
        this._fail(fail('no_transport', 'no usable transport in this browser'), ch);
        return this._status('closed', null);
      }
      const l = (this._link = new Link(this, name, ch));
      if (!quiet) this._status(this._up ? 'reconnecting' : 'connecting', name);
      try {
        l.t = transports[name](l);
        if (l.dead) l.t.close();
      } catch (e) {
        l.end(e);
      }
    }

    _opened(l) {
      this._attempt = this._fails = 0;
      this._worked = this._up = true;
      try {
        G.sessionStorage.setItem(STORE_KEY, l.name);
      } catch (e) { /* no storage */ }
      this._status('open', l.name);
    }

    /**
     * A link ended. A reconnect notice reconnects at once. A connection that was open
     * reconnects the same transport after a backoff delay. A transport that fails to open
     * falls back to the next one at once, unless it worked before: then it is retried with
     * backoff, and only MAX_FAILS failures in a row make the client fall back. After the
     * last transport the order starts again, with backoff.
     */
    _ended(l, e, now) {
      if (l !== this._link) return;
      this._link = null;
      if (e) {
        // It concerns the subscriptions when the server refused them: a 4xx other than
        // 404 (path or transport off) and 408, or the matching 44xx WebSocket close code.
        const s = e.status >= 4000 ? e.status - 4000 : e.status;
        e.transport = l.name;
        this._fail(e, s >= 400 && s < 500 && s !== 404 && s !== 408 ? l.ch : []);
      }
      if (this._closed) return;
      let delay = 0;
      if (!now) {
        if (l.ok || (this._worked && ++this._fails < MAX_FAILS)) delay = this._delay();
        else {
          this._worked = false;
          this._fails = 0;
          if (++this._i >= this._order.length) {
            this._i = 0;
            delay = this._delay();
          }
        }
        this._status(this._up ? 'reconnecting' : 'connecting', this._order[this._i]);
      }
      this._timer = setTimeout(() => this._open(now), delay);
    }

    _delay() {
      return backoff(this._attempt++, this.options.backoff, this.options.random);
    }

    /** An envelope from the connection: shared with follower tabs, then handled here. */
    _deliver(x, bytes) {
      if (this._lead) this._post({ t: 'env', e: x, b: bytes });
      this._local(x, bytes);
    }

    /** Dedupes by position and calls the subscriptions. Resets are never hidden. */
    _local(x, bytes) {
      const ch = x.channel;
      if (!this._wants(ch)) return;
      const subs = this._subs.get(ch) || [];
      if (x.type === 'reset') {
        this._pos.set(ch, { e: x.epoch, o: x.offset });
        subs.forEach((s) => call(s.options.onReset, x));
      } else if (advance(this._pos, ch, x.epoch, x.offset)) {
        const m = toMessage(x, bytes);
        subs.forEach((s) => call(s.options.onMessage, m));
      }
    }

    _publish(ch, data, ev) {
      const t = this._link && this._link.ok && this._link.t;
      if (t && t.pub) return t.pub(ch, data, ev);
      const bytes = bytesOf(data);
      const headers = { 'Content-Type': bytes ? 'application/octet-stream' : 'text/plain;charset=utf-8' };
      if (this.options.apiKey) headers.Authorization = 'Bearer ' + this.options.apiKey;
      const url = this.url + '/api/channels/' + enc(ch) + '/messages' + (ev ? '?event=' + enc(ev) : '');
      return fetch(url, { method: 'POST', headers, body: bytes || textOf(data) }).then(async (r) => {
        if (!r.ok) throw await httpError(r);
        return publishResult(await r.json(), ch);
      });
    }

    /* ---- shared connection among tabs ------------------------------------------------
     * Tabs of one origin and server talk over a BroadcastChannel. One tab, the leader, holds
     * the connection for the union of every tab's channels and posts each envelope it gets;
     * every tab dedupes and dispatches for itself. The leader is whoever holds a Web Lock;
     * without navigator.locks, tabs elect one by heartbeats (the smaller id wins a tie).
     * The leader posts a heartbeat every second; followers answer with their channels and
     * positions, and a follower silent for three beats is dropped. Beats are counted, not
     * timed, so a leader whose timers a background tab throttles drops nobody by mistake.
     * Messages: who, hb, sub, bye, env, st, err, pub, pubr.
     */

    _share() {
      const name = 'tidings:' + this.url;
      const locks = G.navigator && G.navigator.locks;
      this._bc = new G.BroadcastChannel(name);
      this._bc.onmessage = (ev) => this._onShare(ev.data || {});
      this._me = Date.now().toString(36) + Math.random().toString(36).slice(2);
      this._remote = new Map(); // follower id -> {s: leader's beat when last heard, ch: Set}
      this._relays = new Map(); // publish request id -> [resolve, reject, timer]
      this._rid = this._seq = 0;
      this._leader = null;
      this._locks = !!locks;
      this._lockAbort = { abort: noop };
      this._seen = Date.now() - 2500; // no heartbeat yet: claim soon unless a leader answers
      if (locks) {
        const ac = (this._lockAbort = new G.AbortController());
        locks
          .request(name, { signal: ac.signal }, () =>
            this._closed ? 0 : new Promise((release) => {
              this._unlock = release;
              this._takeLead();
            })
          )
          .catch(noop);
      }
      this._post({ t: 'who' });
      this._tick = setInterval(() => this._beat(), 1000);
      if (G.addEventListener) G.addEventListener('pagehide', (this._bye = () => this._post({ t: 'bye' })));
    }

    _post(m) {
      if (!this._bc) return;
      m.from = this._me;
      try {
        this._bc.postMessage(m);
      } catch (e) { /* closed */ }
    }

    _beat() {
      if (this._lead) {
        const s = ++this._seq;
        this._remote.forEach((r, id) => r.s < s - 3 && this._remote.delete(id));
        this._post({ t: 'hb', st: this._state, tr: this._tr });
        this._sync();
      } else if (!this._locks && Date.now() - this._seen > 3000) this._takeLead();
    }

    _takeLead() {
      if (this._lead || this._closed) return;
      this._lead = true;
      this._leader = this._me;
      this._remote.clear();
      this._beat();
    }

    /** Two leaders met (heartbeat election only): this one steps down. */
    _stepDown() {
      this._lead = false;
      clearTimeout(this._timer);
      this._timer = 0;
      if (this._link) this._link.close();
      this._link = null;
      this._remote.clear();
    }

    /** A follower tells the leader what it follows, and from where. */
    _announce() {
      const ch = Array.from(this._subs.keys()).map((c) => [c, this._pos.has(c) ? entry(c, this._pos.get(c)) : '']);
      this._post({ t: 'sub', ch });
    }

    _onShare(m) {
      const lead = this._lead;
      const from = m.from;
      switch (m.t) {
        case 'who':
          if (lead) this._post({ t: 'hb', st: this._state, tr: this._tr });
          break;
        case 'hb':
          if (lead) {
            if (from > this._me) break;
            this._stepDown();
          }
          this._seen = Date.now();
          this._leader = from;
          this._status(m.st, m.tr);
          this._announce();
          break;
        case 'sub':
          if (lead) {
            const r = { s: this._seq, ch: new Set() };
            m.ch.forEach((x) => {
              r.ch.add(x[0]);
              if (!this._pos.has(x[0]) && x[1]) parseCursor(x[1], this._pos);
            });
            this._remote.set(from, r);
            this._sync();
          }
          break;
        case 'bye':
          if (lead && this._remote.delete(from)) this._sync();
          else if (from === this._leader) {
            this._leader = null;
            this._seen = 0; // heartbeat election: claim at the next tick
            if (this._state === 'open') this._status('reconnecting', this._tr);
          }
          break;
        case 'env':
          if (!lead) this._local(m.e, m.b);
          break;
        case 'st':
          if (!lead) this._status(m.st, m.tr);
          break;
        case 'err':
          if (!lead) this._fail(fail(m.e.code, m.e.message, m.e.status), m.ch);
          break;
        case 'pub':
          if (lead) {
            const reply = (x) => this._post(Object.assign({ t: 'pubr', to: from, id: m.id }, x));
            this._publish(m.ch, m.d, m.ev).then(
              (r) => reply({ r }),
              (e) => reply({ e: { code: e.code || 'error', message: e.message, status: e.status } })
            );
          }
          break;
        case 'pubr': {
          const w = m.to === this._me && this._relays.get(m.id);
          if (w) {
            this._relays.delete(m.id);
            clearTimeout(w[2]);
            if (m.e) w[1](fail(m.e.code, m.e.message, m.e.status));
            else w[0](m.r);
          }
        }
      }
    }

    /** A follower publishes through the leader's connection. */
    _relay(ch, d, ev) {
      return new Promise((resolve, reject) => {
        const id = ++this._rid;
        const t = setTimeout(() => {
          this._relays.delete(id);
          reject(fail('timeout', 'no publish reply from the leader tab'));
        }, 10000);
        this._relays.set(id, [resolve, reject, t]);
        this._post({ t: 'pub', id, ch, d, ev });
      });
    }
  }

  Tidings.version = '0.1.0';
  Tidings.Subscription = Subscription;
  /** Pure helpers, exported for tests; not a stable API. */
  Tidings.internals = {
    parseCursor,
    formatCursor,
    mergeCursor,
    advance,
    backoff,
    lineSplitter,
    toMessage,
    splitFrame,
    transportOrder,
    publishResult,
    TRANSPORTS,
  };

  G.Tidings = Tidings;
  if (typeof module === 'object' && module && module.exports) module.exports = Tidings;
})(typeof globalThis !== 'undefined' ? globalThis : self);
