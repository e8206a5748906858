/*
 * tidings.js, part 4 of 4: the Tidings client (subscriptions, positions, fallback and
 * reconnection, the optional tab sharing). It defines the global `Tidings` and removes the
 * parts' shared `__tidings`.
 */
(function (G) {
  'use strict';
  const parts = G.__tidings;
  const {
    CHANNEL, Link, MAX_FAILS, STORE_KEY, TRANSPORTS, advance, backoff, bytesOf, call, enc,
    entry, fail, formatCursor, httpError, lineSplitter, mergeCursor, noop, parseCursor,
    publishResult, splitFrame, textOf, toMessage, transportOrder, transports, usable,
  } = parts;

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

  delete G.__tidings;
  G.Tidings = Tidings;
  if (typeof module === 'object' && module && module.exports) module.exports = Tidings;
})(typeof globalThis !== 'undefined' ? globalThis : self);
