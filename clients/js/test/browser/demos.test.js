// The demo pages, served by the binary with `demos = true` (the built-in publisher runs):
// - /clock: every panel's counters increase; screenshot to artifacts/clock.png;
// - /chat: history then live messages over tidings.js, the transport shown, safe rendering, and
//   a server restart survived with a reset notice; screenshot to artifacts/chat.png.
// Screenshots land in the repository's artifacts/ directory (git-ignored).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { skip, startServer, launch, publish, CLIENT_DIR } from './harness.js';

const ARTIFACTS = join(CLIENT_DIR, '..', '..', 'artifacts');
const PANELS = ['poll', 'longpoll', 'iframe', 'stream', 'sse', 'ws', 'auto'];
const TRANSPORTS = ['websocket', 'sse', 'stream', 'iframe', 'longpoll', 'poll'];

let browser;
before(async () => {
  if (skip) return;
  browser = await launch();
  await mkdir(ARTIFACTS, { recursive: true });
});
after(() => browser?.close());

async function newPage(tc) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  tc.after(() => context.close());
  const p = await context.newPage();
  p.on('pageerror', (e) => console.error('page error:', e));
  return p;
}

/** Every panel's counters (data-value of .messages, .requests, .bytes). */
const counters = (p) =>
  p.evaluate((ids) => {
    const n = (el, c) => Number(el.querySelector('.' + c).dataset.value || 0);
    return Object.fromEntries(
      ids.map((id) => {
        const el = document.getElementById('panel-' + id);
        return [id, el ? { messages: n(el, 'messages'), requests: n(el, 'requests'), bytes: n(el, 'bytes') } : null];
      })
    );
  }, PANELS);

test('clock page: the counters of every transport panel increase', { skip }, async (tc) => {
  const server = await startServer('demos = true\n');
  tc.after(() => server.stop());
  const p = await newPage(tc);
  await p.goto(server.url + '/clock');
  // Every panel has received a tick (the clock publishes once a second).
  await p.waitForFunction(
    (ids) => ids.every((id) => Number(document.querySelector(`#panel-${id} .messages`).dataset.value) >= 1),
    PANELS,
    { timeout: 30000, polling: 200 }
  );
  const start = await counters(p);
  for (const id of PANELS) {
    assert.ok(start[id].requests >= 1, `${id} made a request: ${JSON.stringify(start[id])}`);
    assert.ok(start[id].bytes > 0, `${id} counted bytes: ${JSON.stringify(start[id])}`);
  }
  // Then they all keep counting: more messages and bytes everywhere, more requests on polls.
  await p.waitForFunction(
    ([ids, s]) =>
      ids.every((id) => {
        const v = (c) => Number(document.querySelector(`#panel-${id} .${c}`).dataset.value);
        const more = v('messages') >= s[id].messages + 2 && v('bytes') > s[id].bytes;
        return id === 'poll' || id === 'longpoll' ? more && v('requests') > s[id].requests : more;
      }),
    [PANELS, start],
    { timeout: 30000, polling: 200 }
  );
  const states = await p.evaluate((ids) => ids.map((id) => document.querySelector(`#panel-${id} .status`).dataset.state), PANELS);
  assert.deepEqual(states, PANELS.map(() => 'open'));
  assert.match(await p.textContent('#panel-auto .note'), /open over websocket/);
  await p.screenshot({ path: join(ARTIFACTS, 'clock.png'), fullPage: true });
});

test('chat page: history then live over tidings.js, safe rendering, and a server restart survived', { skip }, async (tc) => {
  let server = await startServer('demos = true\n');
  tc.after(() => server.stop());
  const say = (name, text) => publish(server.url, 'chat:lobby', JSON.stringify({ name, text }), { event: 'say' });
  await say('alice', 'from history');
  const p = await newPage(tc);
  await p.goto(server.url + '/chat');
  await p.waitForFunction(() => document.getElementById('chat-status').dataset.state === 'open', null, { timeout: 15000 });
  assert.equal(await p.textContent('#chat-transport'), 'websocket');
  const texts = () => p.$$eval('#chat-messages li.msg .msg-text', (els) => els.map((e) => e.textContent));
  assert.deepEqual(await texts(), ['from history']);

  // Live from another publisher, then from the page itself (over the WebSocket), hostile text included.
  await say('bob', 'live one');
  const hostile = '<img src=x onerror="window.pwned=1"></span><script>window.pwned=2</script>';
  await p.fill('#chat-input', hostile);
  await p.click('#chat-send');
  await p.waitForFunction(() => document.querySelectorAll('#chat-messages li.msg').length >= 3, null, { timeout: 15000 });
  assert.deepEqual(await texts(), ['from history', 'live one', hostile]);
  assert.equal(await p.evaluate(() => typeof window.pwned), 'undefined');
  assert.equal(await p.$$eval('#chat-messages img, #chat-messages script', (els) => els.length), 0);
  assert.match(await p.textContent('#chat-cursor'), /^cursor: chat:lobby~[0-9a-f]{12}~3$/);

  // Restart the server (memory broker: history is gone). The page reconnects and says so.
  const listen = new URL(server.url).host;
  await server.stop();
  await p.waitForFunction(() => document.getElementById('chat-status').textContent !== 'live', null, { timeout: 15000 });
  server = await startServer('demos = true\n', listen);
  await p.waitForFunction(
    () =>
      document.getElementById('chat-status').dataset.state === 'open' &&
      [...document.querySelectorAll('#chat-messages li.notice')].some((li) => li.textContent.startsWith('History reset')),
    null,
    { timeout: 30000 }
  );
  // Whatever transport it is on now (it may have fallen back while the server was down), the page shows it.
  const shown = await p.textContent('#chat-transport');
  assert.ok(TRANSPORTS.includes(shown), shown);
  assert.equal(shown, await p.evaluate(() => client.transport));
  await say('alice', 'after the restart');
  await p.waitForFunction(() => document.querySelectorAll('#chat-messages li.msg').length >= 4, null, { timeout: 15000 });
  assert.deepEqual(await texts(), ['from history', 'live one', hostile, 'after the restart']);
  assert.match(await p.textContent('#chat-cursor'), /^cursor: chat:lobby~[0-9a-f]{12}~1$/);
  await p.evaluate(() => window.scrollTo(0, 0));
  await p.screenshot({ path: join(ARTIFACTS, 'chat.png'), fullPage: true });
});
