// tidings.js in Chromium against the real server: every transport, resume with a cursor,
// byte-budget recycling, fallback, publishing from the page, and tabs sharing one connection.
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { skip, startServer, launch, openPage, publish, CLIENT_DIR } from './harness.js';
import { joined } from '../../parts.mjs';

const CONFIG = `
demos = false
heartbeat = "1s"
stream_budget = 4096
longpoll_timeout = "5s"
[namespaces.chat]
client_publish = true
`;
const TRANSPORTS = ['websocket', 'sse', 'stream', 'iframe', 'longpoll', 'poll'];
const opts = (t, extra = {}) => ({ transports: [t], pollInterval: 100, openTimeout: 4000, backoff: { base: 50, max: 500 }, ...extra });
const TRICKY = '</script><!-- \u2028\u2029 é ☃ 😀 "q" \\ & <b>';

let server, browser;
before(async () => {
  if (skip) return;
  server = await startServer(CONFIG);
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** A fresh page (own session storage) on the server's origin. */
async function page(t) {
  const context = await browser.newContext();
  t.after(() => context.close());
  return openPage(context, server.url);
}

const waitGot = (p, n, name = 'r') => p.waitForFunction(([k, n]) => window[k].got.length >= n, [name, n], { timeout: 15000 });
const waitOpen = (p, name = 'r') => p.waitForFunction((k) => window[k].c.state === 'open', name, { timeout: 15000 });

for (const t of TRANSPORTS) {
  test(`${t}: text, script-breaking text, multi-line text and binary arrive in order`, { skip }, async (tc) => {
    const p = await page(tc);
    const ch = 'it:' + t;
    await p.evaluate(([o, ch]) => (window.r = start(o, ch)), [opts(t), ch]);
    await waitOpen(p);
    await publish(server.url, ch, 'hello', { event: 'greet' });
    await publish(server.url, ch, TRICKY);
    await publish(server.url, ch, 'line 1\nline 2\r\nline 3');
    await publish(server.url, ch, new Uint8Array([0, 1, 2, 255, 10]), { binary: true, event: 'blob' });
    await waitGot(p, 4);
    const r = await p.evaluate(() => ({ got: window.r.got, st: window.r.st, transport: window.r.c.transport, stored: sessionStorage.getItem('tidings.transport') }));
    assert.deepEqual(r.got.map((m) => m.o), [1, 2, 3, 4]);
    assert.deepEqual(r.got[0], { ch, o: 1, e: 'greet', b: false, d: 'hello' });
    assert.equal(r.got[1].d, TRICKY);
    assert.equal(r.got[2].d, 'line 1\nline 2\r\nline 3');
    assert.deepEqual(r.got[3], { ch, o: 4, e: 'blob', b: true, d: [0, 1, 2, 255, 10] });
    assert.equal(r.transport, t);
    assert.equal(r.stored, t);
    assert.deepEqual(r.st.slice(0, 2), [`connecting:${t}`, `open:${t}`]);
  });
}

for (const t of TRANSPORTS) {
  test(`${t}: a new client resumes from a cursor, with no gap and no duplicate`, { skip }, async (tc) => {
    const p = await page(tc);
    const ch = 'resume:' + t;
    const other = 'resume2:' + t;
    await p.evaluate(([o, chs]) => (window.r = start(o, chs)), [opts(t), [ch, other]]);
    await waitOpen(p);
    await publish(server.url, ch, 'a1');
    await publish(server.url, other, 'b1');
    await waitGot(p, 2);
    const cursor = await p.evaluate(() => {
      window.r.c.close();
      return window.r.sub.cursor;
    });
    assert.match(cursor, /^resume:[a-z]+~[0-9a-f]{12}~1,resume2:[a-z]+~[0-9a-f]{12}~1$/);
    await publish(server.url, ch, 'a2');
    await publish(server.url, other, 'b2');
    await publish(server.url, ch, 'a3');
    await p.evaluate(([o, chs, since]) => (window.r2 = start(o, chs, { since })), [opts(t), [ch, other], cursor]);
    await waitGot(p, 3, 'r2');
    await publish(server.url, ch, 'a4');
    await waitGot(p, 4, 'r2');
    await new Promise((res) => setTimeout(res, 300));
    const got = await p.evaluate(() => window.r2.got.map((m) => m.d));
    assert.deepEqual(got.filter((d) => d[0] === 'a'), ['a2', 'a3', 'a4']);
    assert.deepEqual(got.filter((d) => d[0] === 'b'), ['b2']);
  });
}

for (const t of ['stream', 'iframe', 'sse']) {
  test(`${t}: responses recycled at the byte budget lose and repeat nothing`, { skip }, async (tc) => {
    const p = await page(tc);
    const ch = 'budget:' + t;
    await p.evaluate(([o, ch]) => (window.r = start(o, ch)), [opts(t), ch]);
    await waitOpen(p);
    const n = 24;
    for (let i = 1; i <= n; i++) await publish(server.url, ch, String(i).padStart(3, '0') + 'x'.repeat(600));
    await waitGot(p, n);
    await new Promise((res) => setTimeout(res, 300));
    const offsets = await p.evaluate(() => window.r.got.map((m) => m.o));
    assert.deepEqual(offsets, Array.from({ length: n }, (_, i) => i + 1));
    if (t === 'iframe') {
      const frames = await p.evaluate(() => document.querySelectorAll('iframe').length);
      assert.ok(frames <= 2, `old frames are removed (${frames} left)`);
    }
  });
}

test('several channels on one HTTP connection; adding one restarts it with the merged cursor', { skip }, async (tc) => {
  const p = await page(tc);
  await p.evaluate((o) => (window.r = start(o, ['multi:a', 'multi:b'])), opts('stream'));
  await waitOpen(p);
  await publish(server.url, 'multi:a', 'a1');
  await publish(server.url, 'multi:b', 'b1');
  await waitGot(p, 2);
  await p.evaluate(() => window.r.c.subscribe('multi:c', { onMessage: (m) => window.r.got.push({ ch: m.channel, d: m.data }) }));
  await new Promise((res) => setTimeout(res, 300));
  await publish(server.url, 'multi:a', 'a2');
  await publish(server.url, 'multi:c', 'c1');
  await waitGot(p, 4);
  await new Promise((res) => setTimeout(res, 300));
  const got = await p.evaluate(() => window.r.got.map((m) => m.d));
  assert.deepEqual(got, ['a1', 'b1', 'a2', 'c1']);
});

test('fallback: with WebSocket and SSE switched off, the client settles on stream and remembers it', { skip }, async (tc) => {
  const off = await startServer('demos = false\n[transports]\nwebsocket = false\nsse = false\n');
  tc.after(() => off.stop());
  const context = await browser.newContext();
  tc.after(() => context.close());
  const p = await openPage(context, off.url);
  await p.evaluate(() => (window.r = start({ openTimeout: 3000, backoff: { base: 50, max: 500 } }, 'fb:x')));
  await p.waitForFunction(() => window.r.c.state === 'open', null, { timeout: 15000 });
  await publish(off.url, 'fb:x', 'hi');
  await waitGot(p, 1);
  const r = await p.evaluate(() => ({ st: window.r.st, stored: sessionStorage.getItem('tidings.transport') }));
  assert.deepEqual(r.st, ['connecting:websocket', 'connecting:sse', 'connecting:stream', 'open:stream']);
  assert.equal(r.stored, 'stream');
  // A later client in the same session starts with the transport that worked.
  await p.evaluate(() => {
    window.r.c.close();
    window.r2 = start({}, 'fb:y');
  });
  await p.waitForFunction(() => window.r2.c.state === 'open', null, { timeout: 15000 });
  assert.deepEqual(await p.evaluate(() => window.r2.st), ['connecting:stream', 'open:stream']);
});

test('publish from the page: over the WebSocket, and over HTTP without one', { skip }, async (tc) => {
  const p = await page(tc);
  await p.evaluate(() => (window.r = start({ transports: ['websocket'] }, 'chat:room')));
  await waitOpen(p);
  const reply = await p.evaluate(() => window.r.c.publish('chat:room', 'from the page', { event: 'say' }));
  assert.equal(reply.channel, 'chat:room');
  assert.equal(reply.offset, 1);
  assert.equal(reply.cursor, `chat:room~${reply.epoch}~1`);
  await waitGot(p, 1);
  assert.deepEqual(await p.evaluate(() => window.r.got[0]), { ch: 'chat:room', o: 1, e: 'say', b: false, d: 'from the page' });
  // Client publish is off outside chat: the WS reply error rejects the promise.
  const err = await p.evaluate(() => window.r.c.publish('news', 'x').then(() => 'ok', (e) => e.code));
  assert.equal(err, 'forbidden');
  // A client on SSE publishes over HTTP (the page is on loopback, so no key is needed).
  await p.evaluate(() => (window.s = start({ transports: ['sse'] }, 'chat:room2')));
  await waitOpen(p, 's');
  const bin = await p.evaluate(() => window.s.c.publish('chat:room2', new Uint8Array([9, 8, 7])));
  assert.equal(bin.offset, 1);
  await waitGot(p, 1, 's');
  assert.deepEqual(await p.evaluate(() => window.s.got[0].d), [9, 8, 7]);
});

test('shared: tabs share one WebSocket; a follower takes over when the leader tab closes', { skip }, async (tc) => {
  const context = await browser.newContext();
  tc.after(() => context.close());
  const tab1 = await openPage(context, server.url);
  await tab1.evaluate(() => (window.r = start({ shared: true, transports: ['websocket'] }, 'share:x')));
  await waitOpen(tab1);
  const tab2 = await openPage(context, server.url);
  await tab2.evaluate(() => (window.r = start({ shared: true, transports: ['websocket'] }, ['share:x', 'share:y'])));
  await waitOpen(tab2);
  // The subscriber counts the server reports, once they settle (the leader adds the
  // follower's channel, and a closed tab's socket is unregistered, a moment later).
  const subs = async (ch, want) => {
    let got;
    for (let i = 0; i < 50; i++) {
      got = (await (await fetch(`${server.url}/api/channels/${ch}`)).json()).subscribers;
      if (JSON.stringify(got) === JSON.stringify(want)) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    return got;
  };
  assert.deepEqual(await subs('share:x', { ws: 1 }), { ws: 1 });
  assert.deepEqual(await subs('share:y', { ws: 1 }), { ws: 1 });
  await publish(server.url, 'share:x', 'x1');
  await publish(server.url, 'share:y', 'y1');
  await waitGot(tab2, 2);
  await waitGot(tab1, 1);
  assert.deepEqual(await tab1.evaluate(() => window.r.got.map((m) => m.d)), ['x1']);
  assert.deepEqual(await tab2.evaluate(() => window.r.got.map((m) => m.d)), ['x1', 'y1']);
  // The follower publishes through the leader's socket (chat allows client publish).
  await tab2.evaluate(() => window.r.c.subscribe('chat:shared', { onMessage: (m) => window.r.got.push({ d: m.data }) }));
  await new Promise((res) => setTimeout(res, 300));
  const reply = await tab2.evaluate(() => window.r.c.publish('chat:shared', 'via leader'));
  assert.equal(reply.offset, 1);
  await waitGot(tab2, 3);
  // Close the leader tab: the follower takes the lock and connects by itself.
  await tab1.close();
  await publish(server.url, 'share:y', 'y2');
  await waitGot(tab2, 4);
  assert.deepEqual(await tab2.evaluate(() => window.r.got.map((m) => m.d)), ['x1', 'y1', 'via leader', 'y2']);
  assert.deepEqual(await subs('share:x', { ws: 1 }), { ws: 1 });
});

for (const t of TRANSPORTS) {
  test(`${t}: a server restart loses history; the client reconnects and gets a reset, never a silent gap`, { skip }, async (tc) => {
    let srv = await startServer('demos = false\n');
    tc.after(() => srv.stop());
    const context = await browser.newContext();
    tc.after(() => context.close());
    const p = await openPage(context, srv.url);
    // Jitter pinned to its top: the 3 failed opens that would make the client fall back take
    // at least 1 + 2 s, time enough for the server to come back even on a loaded machine.
    const o = opts(t, { backoff: { base: 1000, max: 2000 } });
    await p.evaluate((o) => (window.r = start({ ...o, random: () => 0.999 }, 'restart:x')), o);
    await waitOpen(p);
    await publish(srv.url, 'restart:x', 'before');
    await waitGot(p, 1);
    const listen = new URL(srv.url).host;
    await srv.stop();
    await p.waitForFunction(() => window.r.c.state === 'reconnecting', null, { timeout: 10000 });
    srv = await startServer('demos = false\n', listen);
    await p.waitForFunction(() => window.r.resets.length === 1 && window.r.c.state === 'open', null, { timeout: 15000 });
    await publish(srv.url, 'restart:x', 'after');
    await waitGot(p, 2);
    const r = await p.evaluate(() => ({ got: window.r.got.map((m) => m.d), reset: window.r.resets[0], st: window.r.st, cursor: window.r.sub.cursor }));
    assert.deepEqual(r.got, ['before', 'after']);
    assert.equal(r.reset.type, 'reset');
    assert.equal(r.reset.reason, 'epoch');
    assert.equal(r.cursor, `restart:x~${r.reset.epoch}~1`);
    assert.equal(r.st.filter((s) => s === `reconnecting:${t}`).length >= 1, true);
    assert.ok(r.st.every((s) => s.endsWith(':' + t)), 'a transport that worked is not given up: ' + r.st);
  });
}

test('stream falls back to XHR progress events where fetch has no body stream', { skip }, async (tc) => {
  const p = await page(tc);
  await p.evaluate((o) => {
    delete Response.prototype.body;
    window.xhrs = 0;
    const open = XMLHttpRequest.prototype.open;
    XMLHttpRequest.prototype.open = function (...a) {
      window.xhrs++;
      return open.apply(this, a);
    };
    window.r = start(o, 'xhr:s');
  }, opts('stream'));
  await waitOpen(p);
  for (let i = 1; i <= 12; i++) await publish(server.url, 'xhr:s', 'm' + i + 'y'.repeat(600));
  await waitGot(p, 12);
  const r = await p.evaluate(() => ({ o: window.r.got.map((m) => m.o), xhrs: window.xhrs }));
  assert.deepEqual(r.o, Array.from({ length: 12 }, (_, i) => i + 1));
  assert.ok(r.xhrs >= 2, 'recycled at the byte budget over XHR too');
});

test('the server serves the client at /tidings.js; tidings.mjs imports it as a module', { skip }, async (tc) => {
  const served = await (await fetch(server.url + '/tidings.js')).text();
  assert.equal(served, await joined(), 'the server joins the parts of parts.mjs, in that order');
  const context = await browser.newContext();
  tc.after(() => context.close());
  const p = await context.newPage();
  await p.goto(server.url + '/healthz');
  await p.addScriptTag({ url: '/tidings.js' });
  assert.deepEqual(
    await p.evaluate(() => [typeof Tidings, Tidings.version, typeof globalThis.__tidings]),
    ['function', '0.1.0', 'undefined'],
    'one global, and the parts leave nothing else behind',
  );
  // Serve the working copy's files under /local/ to load the module entry point.
  await p.route('**/local/**', async (route) => {
    const file = new URL(route.request().url()).pathname.replace(/^\/local\//, '');
    route.fulfill({ contentType: 'text/javascript', body: await readFile(join(CLIENT_DIR, file), 'utf8') });
  });
  const kind = await p.evaluate(async () => {
    const m = await import('/local/tidings.mjs');
    return [typeof m.default, m.default === m.Tidings, typeof new m.Tidings(location.origin).subscribe];
  });
  assert.deepEqual(kind, ['function', true, 'function']);
});
