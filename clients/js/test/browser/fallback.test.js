// Fallback in Chromium with the default transport order: WebSocket switched off in the server
// config, or blocked by a proxy, lands on SSE; a proxy that buffers responses (so streams never
// deliver a first chunk) and blocks WebSocket lands on long polling.
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { skip, startServer, launch, openPage, publish } from './harness.js';
import { tcpProxy, bufferingProxy } from './proxies.js';

const CONFIG = 'demos = false\nheartbeat = "1s"\n';
const OPTS = { openTimeout: 3000, backoff: { base: 100, max: 1000 } };

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

/**
 * Opens a client on `pageUrl` (a fresh context: nothing remembered), waits until it is open,
 * checks that a message published to `server` arrives, and returns its statuses and the
 * transport remembered for the session.
 */
async function settle(tc, pageUrl, srv, ch) {
  const context = await browser.newContext();
  tc.after(() => context.close());
  const p = await openPage(context, pageUrl);
  await p.evaluate(([o, ch]) => (window.r = start(o, ch)), [OPTS, ch]);
  await p.waitForFunction(() => window.r.c.state === 'open', null, { timeout: 30000 });
  await publish(srv.url, ch, 'one');
  await publish(srv.url, ch, 'two');
  await p.waitForFunction(() => window.r.got.length >= 2, null, { timeout: 15000 });
  return p.evaluate(() => ({
    st: window.r.st,
    got: window.r.got.map((m) => m.d),
    stored: sessionStorage.getItem('tidings.transport'),
  }));
}

test('WebSocket switched off in the server config: the client lands on SSE', { skip }, async (tc) => {
  const off = await startServer(CONFIG + '[transports]\nwebsocket = false\n');
  tc.after(() => off.stop());
  const r = await settle(tc, off.url, off, 'fb:off');
  assert.deepEqual(r.st, ['connecting:websocket', 'connecting:sse', 'open:sse']);
  assert.deepEqual(r.got, ['one', 'two']);
  assert.equal(r.stored, 'sse');
});

test('WebSocket blocked by a proxy: the client lands on SSE', { skip }, async (tc) => {
  const proxy = await tcpProxy(server.url, { blockUpgrade: true });
  tc.after(() => proxy.close());
  const r = await settle(tc, proxy.url, server, 'fb:blocked');
  assert.deepEqual(r.st, ['connecting:websocket', 'connecting:sse', 'open:sse']);
  assert.deepEqual(r.got, ['one', 'two']);
  assert.ok(proxy.stats.refused >= 1, 'the proxy refused the handshake');
});

for (const holdHeaders of [true, false]) {
  const what = holdHeaders ? 'whole responses' : 'response bodies (headers pass)';
  test(`a proxy that buffers ${what} and blocks WebSocket: the client lands on long polling`, { skip }, async (tc) => {
    const proxy = await bufferingProxy(server.url, { holdHeaders });
    tc.after(() => proxy.close());
    const r = await settle(tc, proxy.url, server, 'fb:buffered' + (holdHeaders ? 'all' : 'body'));
    assert.deepEqual(r.st, [
      'connecting:websocket',
      'connecting:sse',
      'connecting:stream',
      'connecting:iframe',
      'connecting:longpoll',
      'open:longpoll',
    ]);
    assert.deepEqual(r.got, ['one', 'two']);
    assert.equal(r.stored, 'longpoll');
    assert.ok(proxy.stats.upgrades >= 1, 'the proxy refused the WebSocket upgrade');
  });
}
