/*!
 * tidings.js: the browser client of Tidings, a real-time web push server.
 *
 * The client has no dependencies and no build step. Its source is four classic scripts, run in
 * this order (clients/js/parts.mjs lists them): src/protocol.js, src/transports.js,
 * src/link.js and src/client.js. The server serves them joined as one script at /tidings.js,
 * which defines the global `Tidings`; tidings.mjs imports them for `import`. They hand their
 * internals to one another through `globalThis.__tidings`, which the last one removes. The
 * wire format is in docs/protocol.md and the API in docs/client.md.
 *
 * This part: the protocol's pure helpers (cursors, envelopes, ndjson lines, backoff, the
 * transport order). No I/O and no state.
 */
(function (G) {
  'use strict';
  const parts = (G.__tidings = {});

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

  Object.assign(parts, {
    CHANNEL, CLOSE_CODES, MAX_FAILS, STORE_KEY, TRANSPORTS, advance, backoff, bytesOf, call,
    enc, entry, fail, formatCursor, lineSplitter, mergeCursor, noop, parseCursor, publishResult,
    splitFrame, textOf, toMessage, transportOrder,
  });
})(typeof globalThis !== 'undefined' ? globalThis : self);
