// Each forced transport, with its connections killed mid-stream (through a TCP proxy between
// Chromium and the server) while a publisher keeps publishing: the client resumes from its
// cursor and delivers the whole numbered sequence in order, with no loss and no duplicate.
// The proxy refuses connections for a moment after each kill, so Chromium's own silent retry
// of an idempotent request fails too and the client has to notice and resume by itself.
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { skip, startServer, launch, openPage, publish } from './harness.js';
import { tcpProxy } from './proxies.js';

const TRANSPORTS = ['websocket', 'sse', 'stream', 'iframe', 'longpoll', 'poll'];
const N = 50;
const KILL_AT = [15, 35];
const REFUSE_MS = 250;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(cond, ms = 15000) {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out waiting for ' + cond);
    await sleep(20);
  }
}

let server, browser;
before(async () => {
  if (skip) return;
  server = await startServer('demos = false\nheartbeat = "1s"\nlongpoll_timeout = "5s"\n');
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

for (const t of TRANSPORTS) {
  test(`${t}: connections killed mid-stream while publishing; resumes with no loss and no duplicate`, { skip }, async (tc) => {
    const proxy = await tcpProxy(server.url);
    tc.after(() => proxy.close());
    const context = await browser.newContext();
    tc.after(() => context.close());
    const p = await openPage(context, proxy.url);
    const ch = 'kill:' + t;
    // A short idle timeout (the server beats every second), so a frame whose connection died
    // without a load event is noticed soon.
    const o = { transports: [t], pollInterval: 100, openTimeout: 5000, idleTimeout: 4000, backoff: { base: 100, max: 1000 } };
    await p.evaluate(([o, ch]) => (window.r = start(o, ch)), [o, ch]);
    await p.waitForFunction(() => window.r.c.state === 'open', null, { timeout: 15000 });

    const killed = [];
    for (let i = 1; i <= N; i++) {
      await publish(server.url, ch, String(i));
      if (KILL_AT.includes(i)) {
        // Kill only a live connection: wait for the client to be back after the last kill.
        await waitFor(async () => proxy.live() > 0 && (await p.evaluate(() => window.r.c.state)) === 'open');
        killed.push(proxy.kill(REFUSE_MS));
      }
      await sleep(30);
    }
    await p.waitForFunction((n) => window.r.got.length >= n, N, { timeout: 30000 });
    await sleep(500); // a late duplicate would show up here
    const r = await p.evaluate(() => ({ got: window.r.got, st: window.r.st }));
    const want = Array.from({ length: N }, (_, i) => i + 1);
    assert.deepEqual(r.got.map((m) => m.d), want.map(String));
    assert.deepEqual(r.got.map((m) => m.o), want);
    assert.ok(killed.every((n) => n > 0), `each kill found live connections: ${killed}`);
    assert.ok(r.st.includes(`reconnecting:${t}`), 'the client noticed: ' + r.st);
    assert.ok(r.st.every((s) => s.endsWith(':' + t)), 'it stayed on its transport: ' + r.st);
  });
}
