// XSS through the forever-iframe transport: messages that try to break out of the frame's
// <script> blocks arrive as data, live and from history, and nothing runs in the page or in
// the frame. A hostile `callback` name is refused.
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { skip, startServer, launch, openPage, publish } from './harness.js';

const PAYLOADS = [
  '</script><script>window.pwned=1</script>',
  '</SCRIPT ><script>window.pwned=2</script>',
  '<img src=x onerror="window.pwned=3">',
  '<!--<script>window.pwned=4</script>-->',
  '\u2028\u2029");window.pwned=5;//',
  "'});window.pwned=6;({a:'",
];
const OPTS = { transports: ['iframe'], openTimeout: 5000, backoff: { base: 50, max: 500 } };

let server, browser;
before(async () => {
  if (skip) return;
  server = await startServer('demos = false\nheartbeat = "1s"\n');
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.stop();
});

/** window.pwned in the page and in every frame, and how many frames there are. */
async function pwned(p) {
  const frames = p.frames();
  const values = await Promise.all(frames.map((f) => f.evaluate(() => typeof window.pwned).catch(() => 'gone')));
  return { frames: frames.length, defined: values.filter((v) => v !== 'undefined' && v !== 'gone') };
}

test('iframe: script-breaking messages arrive as data, live and from history, and never run', { skip }, async (tc) => {
  const context = await browser.newContext();
  tc.after(() => context.close());
  const p = await openPage(context, server.url);
  const ch = 'xss:frame';
  await p.evaluate(([o, ch]) => (window.r = start(o, ch)), [OPTS, ch]);
  await p.waitForFunction(() => window.r.c.state === 'open', null, { timeout: 15000 });
  let first;
  for (const d of PAYLOADS) {
    const reply = await publish(server.url, ch, d);
    first = first || reply.cursor;
  }
  await p.waitForFunction((n) => window.r.got.length >= n, PAYLOADS.length, { timeout: 15000 });
  assert.deepEqual(await p.evaluate(() => window.r.got.map((m) => m.d)), PAYLOADS);
  let seen = await pwned(p);
  assert.ok(seen.frames >= 2, 'the transport frame is there');
  assert.deepEqual(seen.defined, [], 'nothing ran (live)');

  // A second client replays the same messages from history, in the frame's first burst.
  const since = first.replace(/~1$/, '~0');
  await p.evaluate(([o, ch, since]) => (window.r2 = start(o, ch, { since })), [OPTS, ch, since]);
  await p.waitForFunction((n) => window.r2.got.length >= n, PAYLOADS.length, { timeout: 15000 });
  assert.deepEqual(await p.evaluate(() => window.r2.got.map((m) => m.d)), PAYLOADS);
  seen = await pwned(p);
  assert.ok(seen.frames >= 3, 'both transport frames are there');
  assert.deepEqual(seen.defined, [], 'nothing ran (history)');
});

test('iframe: a callback that is not an identifier path is refused', { skip }, async () => {
  for (const cb of ['alert(1)', 'x;window.pwned=1', 'a.b</script>', '']) {
    const r = await fetch(`${server.url}/iframe/xss:cb?callback=${encodeURIComponent(cb)}`);
    assert.equal(r.status, 400, cb);
    assert.equal((await r.json()).error.code, 'bad_callback', cb);
  }
});
