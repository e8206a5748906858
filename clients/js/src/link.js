/*
 * tidings.js, part 3 of 4: Link, one attempt to connect one transport, with its own open timer
 * and idle watchdog.
 */
(function (G) {
  'use strict';
  const parts = G.__tidings;
  const { enc, fail, formatCursor } = parts;

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

  Object.assign(parts, { Link });
})(typeof globalThis !== 'undefined' ? globalThis : self);
