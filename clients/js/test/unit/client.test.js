// The client's behaviour against scripted fake transports: subscribing, dedupe, resets,
// resume with cursors, fallback order, open timeouts, reconnection and publishing.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Tidings } from './load.js';
import { FakeWebSocket, FakeEventSource, install, waitFor, sleep, msg, E1, E2 } from './fakes.js';

const BASE = 'http://push.test';
const fast = (o = {}) => ({ openTimeout: 150, backoff: { base: 5, max: 20 }, ...o });

/** Creates a client recording statuses, closed after the test. */
function client(t, opts) {
  const c = new Tidings(BASE + '/', fast(opts));
  c.statuses = [];
  c.on('status', (s) => c.statuses.push(s.state + ':' + s.transport));
  t.after(() => c.close());
  return c;
}

function collect(c, channels, opts = {}) {
  const got = { messages: [], resets: [], errors: [] };
  got.sub = c.subscribe(channels, {
    onMessage: (m) => got.messages.push(m),
    onReset: (r) => got.resets.push(r),
    onError: (e) => got.errors.push(e),
    ...opts,
  });
  return got;
}

test('websocket: subscribes, delivers in order, drops duplicates, resumes with the cursor', async (t) => {
  const f = install();
  t.after(f.restore);
  const c = client(t);
  const got = collect(c, 'chat:lobby');
  await waitFor(() => FakeWebSocket.all.length === 1);
  const ws = FakeWebSocket.all[0];
  assert.equal(ws.url, 'ws://push.test/ws');
  assert.equal(ws.protocol, 'tidings.v1');
  assert.equal(c.state, 'connecting');
  ws.accept();
  assert.deepEqual(ws.commands().map(({ op, channel, since }) => ({ op, channel, since })), [{ op: 'subscribe', channel: 'chat:lobby', since: undefined }]);
  ws.replyAll(() => ({ ok: true, channel: 'chat:lobby', epoch: E1, offset: 4 }));
  await sleep(1);
  assert.equal(c.state, 'open');
  assert.equal(c.transport, 'websocket');
  assert.equal(globalThis.sessionStorage.getItem('tidings.transport'), 'websocket');
  assert.equal(got.sub.cursor, 'chat:lobby~' + E1 + '~4', 'the subscribe reply starts the cursor');

  ws.push(msg('chat:lobby', 5, 'a', { event: 'say' }));
  ws.push(msg('chat:lobby', 6, 'b'));
  ws.push(msg('chat:lobby', 6, 'b again'));
  ws.push(msg('chat:lobby', 3, 'old'));
  assert.deepEqual(got.messages.map((m) => [m.offset, m.data, m.event]), [[5, 'a', 'say'], [6, 'b', 'message']]);
  assert.equal(got.messages[0].cursor, 'chat:lobby~' + E1 + '~5');

  ws.drop(1006);
  assert.equal(c.state, 'reconnecting');
  await waitFor(() => FakeWebSocket.all.length === 2);
  const ws2 = FakeWebSocket.all[1];
  ws2.accept();
  assert.equal(ws2.commands('subscribe')[0].since, 'chat:lobby~' + E1 + '~6');
  ws2.replyAll(() => ({ ok: true, channel: 'chat:lobby', epoch: E1, offset: 9 }));
  // History after the reply must not be mistaken for duplicates.
  ws2.push(msg('chat:lobby', 6, 'dup'));
  ws2.push(msg('chat:lobby', 7, 'c'));
  assert.deepEqual(got.messages.map((m) => m.offset), [5, 6, 7]);
  assert.deepEqual(c.statuses, ['connecting:websocket', 'open:websocket', 'reconnecting:websocket', 'open:websocket']);
});

test('websocket: resets are never hidden and move the cursor', async (t) => {
  const f = install();
  t.after(f.restore);
  const c = client(t);
  const got = collect(c, 'a', { since: 'a~' + E1 + '~40' });
  await waitFor(() => FakeWebSocket.all.length === 1);
  const ws = FakeWebSocket.all[0];
  ws.accept();
  assert.equal(ws.commands('subscribe')[0].since, 'a~' + E1 + '~40');
  ws.replyAll();
  const reset = { type: 'reset', channel: 'a', epoch: E2, offset: 0, reason: 'epoch' };
  ws.push(reset);
  ws.push({ ...msg('a', 1), epoch: E2 });
  ws.push(reset); // even a repeated one
  assert.equal(got.resets.length, 2);
  assert.deepEqual(got.resets[0], reset);
  assert.equal(got.messages.length, 1);
  assert.equal(got.sub.cursor, 'a~' + E2 + '~0');
});

test('websocket: binary pushes arrive as Uint8Array', async (t) => {
  const f = install();
  t.after(f.restore);
  const c = client(t);
  const got = collect(c, 'files');
  await waitFor(() => FakeWebSocket.all.length === 1);
  const ws = FakeWebSocket.all[0];
  ws.accept();
  ws.replyAll();
  ws.pushBinary({ channel: 'files', epoch: E1, offset: 1, time: 5, encoding: 'binary' }, new Uint8Array([0, 10, 255]));
  const m = got.messages[0];
  assert.equal(m.binary, true);
  assert.deepEqual([...m.data], [0, 10, 255]);
  assert.equal(m.event, 'message');
});

test('websocket: channels are multiplexed, added and removed in place', async (t) => {
  const f = install();
  t.after(f.restore);
  const c = client(t);
  const a = collect(c, ['a', 'b']);
  await waitFor(() => FakeWebSocket.all.length === 1);
  const ws = FakeWebSocket.all[0];
  ws.accept();
  ws.replyAll();
  assert.deepEqual(ws.commands('subscribe').map((x) => x.channel), ['a', 'b']);
  const b = collect(c, ['b', 'c']);
  await sleep(5);
  assert.deepEqual(ws.commands('subscribe').map((x) => x.channel), ['a', 'b', 'c']);
  ws.replyAll();
  ws.push(msg('b', 1));
  assert.equal(a.messages.length, 1);
  assert.equal(b.messages.length, 1, 'both subscriptions of b get it, once each');
  a.sub.unsubscribe();
  await sleep(5);
  assert.deepEqual(ws.commands('unsubscribe').map((x) => x.channel), ['a']);
  ws.push(msg('a', 1));
  assert.equal(a.messages.length, 1, 'nothing after unsubscribe');
  b.sub.unsubscribe();
  await sleep(5);
  assert.equal(ws.closed, true, 'no subscription left: the socket is closed');
  assert.equal(c.state, 'closed');
  assert.equal(FakeWebSocket.all.length, 1);
});

test('websocket: a subscribe error goes to that subscription onError', async (t) => {
  const f = install();
  t.after(f.restore);
  const c = client(t);
  const ok = collect(c, 'ok');
  const bad = collect(c, 'secret:x');
  const errors = [];
  c.on('error', (e) => errors.push(e.code));
  await waitFor(() => FakeWebSocket.all.length === 1);
  const ws = FakeWebSocket.all[0];
  ws.accept();
  ws.replyAll((cmd) => (cmd.channel === 'secret:x' ? { error: { code: 'forbidden', message: 'no' } } : { ok: true }));
  await sleep(5);
  assert.deepEqual(bad.errors.map((e) => e.code), ['forbidden']);
  assert.deepEqual(errors, ['forbidden']);
  assert.equal(ok.errors.length, 0);
});

test('websocket: publish uses the socket; binary data goes in a binary frame', async (t) => {
  const f = install();
  t.after(f.restore);
  const c = client(t);
  collect(c, 'chat:lobby');
  await waitFor(() => FakeWebSocket.all.length === 1);
  const ws = FakeWebSocket.all[0];
  ws.accept();
  ws.replyAll();
  const p = c.publish('chat:lobby', 'hi', { event: 'say' });
  const cmd = ws.commands('publish')[0];
  assert.deepEqual({ ...cmd, id: 0 }, { op: 'publish', channel: 'chat:lobby', event: 'say', data: 'hi', id: 0 });
  ws.push({ id: cmd.id, ok: true, channel: 'chat:lobby', epoch: E1, offset: 12 });
  assert.deepEqual(await p, { channel: 'chat:lobby', epoch: E1, offset: 12, cursor: 'chat:lobby~' + E1 + '~12' });

  const p2 = c.publish('chat:lobby', new Uint8Array([1, 2]));
  const frame = ws.sent.at(-1);
  assert.ok(frame instanceof Uint8Array);
  const nl = frame.indexOf(10);
  const head = JSON.parse(new TextDecoder().decode(frame.subarray(0, nl)));
  assert.equal(head.op, 'publish');
  assert.equal(head.data, undefined);
  assert.deepEqual([...frame.subarray(nl + 1)], [1, 2]);
  ws.push({ id: head.id, error: { code: 'forbidden', message: 'client publish is off' } });
  await assert.rejects(p2, (e) => e.code === 'forbidden');
  assert.equal(f.requests.length, 0, 'no HTTP publish');
});

test('publish over HTTP when no socket is open, with the API key', async (t) => {
  const f = install({ ws: false, es: false });
  t.after(f.restore);
  const c = new Tidings(BASE, fast({ apiKey: 'k3y' }));
  t.after(() => c.close());
  const p = c.publish('news/eu', 'hello', { event: 'flash' });
  await waitFor(() => f.requests.length === 1);
  const req = f.requests[0];
  assert.equal(req.url.href, BASE + '/api/channels/news%2Feu/messages?event=flash');
  assert.equal(req.init.method, 'POST');
  assert.equal(req.init.body, 'hello');
  assert.equal(req.init.headers.Authorization, 'Bearer k3y');
  assert.match(req.init.headers['Content-Type'], /^text\/plain/);
  f.json(req, { channel: 'news/eu', id: 'news/eu~' + E1 + '~3', cursor: 'news/eu~' + E1 + '~3' }, 201);
  assert.deepEqual(await p, { channel: 'news/eu', epoch: E1, offset: 3, cursor: 'news/eu~' + E1 + '~3' });

  const p2 = c.publish('x', new Uint8Array([7]));
  await waitFor(() => f.requests.length === 2);
  assert.equal(f.requests[1].init.headers['Content-Type'], 'application/octet-stream');
  f.json(f.requests[1], { error: { code: 'unauthorized', message: 'bad key' } }, 401);
  await assert.rejects(p2, (e) => e.code === 'unauthorized' && e.status === 401 && e.message === 'bad key');
});

test('fallback: a WebSocket that closes before opening hands over to SSE at once', async (t) => {
  const f = install();
  t.after(f.restore);
  const c = client(t);
  const got = collect(c, ['a', 'b'], { since: 'a~' + E1 + '~3,zz~' + E1 + '~9' });
  await waitFor(() => FakeWebSocket.all.length === 1);
  FakeWebSocket.all[0].drop(1006);
  await waitFor(() => FakeEventSource.all.length === 1);
  const es = FakeEventSource.all[0];
  const u = new URL(es.url);
  assert.equal(u.pathname, '/sse');
  assert.deepEqual(u.searchParams.getAll('channel'), ['a', 'b']);
  assert.equal(u.searchParams.get('format'), 'json');
  assert.equal(u.searchParams.get('lastEventId'), 'a~' + E1 + '~3', 'only entries of subscribed channels');
  es.accept();
  assert.equal(c.transport, 'sse');
  assert.equal(c.state, 'open');
  assert.equal(globalThis.sessionStorage.getItem('tidings.transport'), 'sse');
  es.emit('message', msg('a', 4), 'a~' + E1 + '~4,b~' + E1 + '~20');
  es.emit('reset', { type: 'reset', channel: 'b', epoch: E2, offset: 0, reason: 'expired' });
  assert.equal(got.messages.length, 1);
  assert.equal(got.resets.length, 1);
  assert.equal(c.cursor, 'a~' + E1 + '~4,b~' + E2 + '~0');
  // SSE errors: the client closes the EventSource and reconnects by itself.
  es.fail();
  assert.equal(es.closed, true);
  await waitFor(() => FakeEventSource.all.length === 2);
  assert.equal(new URL(FakeEventSource.all[1].url).searchParams.get('lastEventId'), 'a~' + E1 + '~4,b~' + E2 + '~0');
  assert.deepEqual(c.statuses, ['connecting:websocket', 'connecting:sse', 'open:sse', 'reconnecting:sse']);
});

test('fallback: a transport that never opens within openTimeout counts as failed', async (t) => {
  const f = install();
  t.after(f.restore);
  const c = client(t, { openTimeout: 60 });
  const errors = [];
  c.on('error', (e) => errors.push(e.code + ':' + e.transport));
  collect(c, 'a');
  await waitFor(() => FakeWebSocket.all.length === 1);
  await waitFor(() => FakeEventSource.all.length === 1, 500);
  assert.equal(FakeWebSocket.all[0].closed, true);
  assert.deepEqual(errors, ['timeout:websocket']);
  // SSE gets its headers, but a buffering proxy holds back the open notice: it times out too.
  FakeEventSource.all[0].headers();
  assert.equal(c.state, 'connecting');
  await waitFor(() => f.requests.length === 1, 500);
  assert.equal(FakeEventSource.all[0].closed, true);
  assert.deepEqual(errors, ['timeout:websocket', 'timeout:sse']);
  // The next one in line, stream, must deliver its open notice as well.
  assert.equal(f.requests[0].url.pathname, '/stream');
  f.stream(f.requests[0]); // headers, but no first chunk: a buffering proxy
  await waitFor(() => f.requests.length === 2, 500);
  assert.equal(f.requests[1].url.pathname, '/longpoll', 'iframe is skipped where there is no document');
});

test('the transport remembered in the session is tried first', async (t) => {
  const f = install();
  t.after(f.restore);
  globalThis.sessionStorage.setItem('tidings.transport', 'sse');
  const c = client(t);
  collect(c, 'a');
  await waitFor(() => FakeEventSource.all.length === 1);
  assert.equal(FakeWebSocket.all.length, 0);
});

test('a transport that worked is retried; only repeated open failures make it fall back', async (t) => {
  const f = install();
  t.after(f.restore);
  const c = client(t);
  collect(c, 'a');
  await waitFor(() => FakeWebSocket.all.length === 1);
  FakeWebSocket.all[0].accept();
  FakeWebSocket.all[0].replyAll();
  FakeWebSocket.all[0].drop(1001, 'going away');
  for (let i = 2; i <= 4; i++) {
    await waitFor(() => FakeWebSocket.all.length === i);
    assert.equal(FakeEventSource.all.length, 0, 'still on websocket');
    FakeWebSocket.all[i - 1].drop(1006); // fails to open
  }
  await waitFor(() => FakeEventSource.all.length === 1);
  assert.equal(FakeWebSocket.all.length, 4, 'three failed opens after it worked, then SSE');
  assert.equal(c.state, 'reconnecting');
});

test('after the last transport the order starts again', async (t) => {
  const f = install({ es: false });
  t.after(f.restore);
  const c = client(t, { transports: ['websocket', 'poll'] });
  collect(c, 'a');
  await waitFor(() => FakeWebSocket.all.length === 1);
  FakeWebSocket.all[0].drop();
  await waitFor(() => f.requests.length === 1);
  f.json(f.requests[0], { error: { code: 'transport_disabled', message: 'off' } }, 404);
  await waitFor(() => FakeWebSocket.all.length === 2);
  assert.equal(c.state, 'connecting');
});

test('stream: open notice, messages, heartbeats, reconnect notice, a second channel', async (t) => {
  const f = install();
  t.after(f.restore);
  const c = client(t, { transports: ['stream'] });
  const got = collect(c, 'a');
  await waitFor(() => f.requests.length === 1);
  let req = f.requests[0];
  assert.equal(req.url.pathname, '/stream');
  assert.equal(req.url.searchParams.get('since'), null, 'from now');
  let s = f.stream(req);
  s.raw('{"type":"open","cur');
  s.raw('sor":"a~' + E1 + '~10"}\n');
  await waitFor(() => c.state === 'open');
  assert.equal(c.cursor, 'a~' + E1 + '~10', 'the open notice starts the cursor');
  s.line(msg('a', 11, 'x</script>'));
  s.line({ type: 'heartbeat' });
  s.line(msg('a', 12));
  await waitFor(() => got.messages.length === 2);
  s.line({ type: 'reconnect', cursor: 'a~' + E1 + '~12' });
  await waitFor(() => f.requests.length === 2);
  assert.equal(req.aborted, true);
  req = f.requests[1];
  assert.equal(req.url.searchParams.get('since'), 'a~' + E1 + '~12');
  s = f.stream(req);
  s.line({ type: 'open', cursor: 'a~' + E1 + '~12' });
  await waitFor(() => c.state === 'open');
  assert.deepEqual(c.statuses, ['connecting:stream', 'open:stream'], 'a reconnect notice is not a drop');

  // A new channel restarts the request with both channels and the merged cursor.
  collect(c, 'b', { since: 'b~' + E1 + '~5' });
  await waitFor(() => f.requests.length === 3);
  req = f.requests[2];
  assert.deepEqual(req.url.searchParams.getAll('channel'), ['a', 'b']);
  assert.equal(req.url.searchParams.get('since'), 'a~' + E1 + '~12,b~' + E1 + '~5');
  s = f.stream(req);
  s.line({ type: 'open', cursor: 'a~' + E1 + '~12,b~' + E1 + '~5' });
  s.line(msg('a', 12, 'dup'));
  s.line(msg('a', 13));
  await waitFor(() => got.messages.length === 3);
  assert.deepEqual(got.messages.map((m) => m.offset), [11, 12, 13]);
  assert.equal(got.messages[0].data, 'x</script>');

  // The response ends without a notice: reconnect after backoff.
  s.end();
  await waitFor(() => f.requests.length === 4);
  assert.equal(c.state, 'reconnecting');
});

test('stream: the idle watchdog drops a stream whose heartbeats stopped', async (t) => {
  const f = install();
  t.after(f.restore);
  const c = client(t, { transports: ['stream'], idleTimeout: 90 });
  collect(c, 'a');
  await waitFor(() => f.requests.length === 1);
  f.stream(f.requests[0]).line({ type: 'open', cursor: '' });
  await waitFor(() => c.state === 'open');
  await waitFor(() => f.requests.length === 2, 1000);
  assert.equal(f.requests[0].aborted, true);
});

test('websocket: the idle watchdog pings a quiet socket and drops a dead one', async (t) => {
  const f = install();
  t.after(f.restore);
  const c = client(t, { idleTimeout: 90 });
  collect(c, 'a');
  await waitFor(() => FakeWebSocket.all.length === 1);
  const ws = FakeWebSocket.all[0];
  ws.accept();
  ws.replyAll();
  await waitFor(() => ws.commands('ping').length === 1, 1000);
  ws.replyAll(); // alive
  await waitFor(() => ws.commands('ping').length === 2, 1000);
  // no reply this time
  await waitFor(() => FakeWebSocket.all.length === 2, 1000);
  assert.equal(ws.closed, true);
});

test('longpoll: a short first hold, then a loop carrying the cursor', async (t) => {
  const f = install();
  t.after(f.restore);
  const c = client(t, { transports: ['longpoll'] });
  const got = collect(c, ['a', 'b']);
  await waitFor(() => f.requests.length === 1);
  let u = f.requests[0].url;
  assert.equal(u.pathname, '/longpoll');
  assert.equal(u.searchParams.get('timeout'), '1');
  assert.deepEqual(u.searchParams.getAll('channel'), ['a', 'b']);
  f.json(f.requests[0], { messages: [], cursor: 'a~' + E1 + '~3,b~' + E1 + '~0' });
  await waitFor(() => f.requests.length === 2);
  assert.equal(c.state, 'open');
  u = f.requests[1].url;
  assert.equal(u.searchParams.get('timeout'), '25');
  assert.equal(u.searchParams.get('since'), 'a~' + E1 + '~3,b~' + E1 + '~0');
  f.json(f.requests[1], {
    messages: [msg('a', 4), { type: 'reset', channel: 'b', epoch: E2, offset: 7, reason: 'expired' }, { ...msg('b', 8), epoch: E2 }],
    cursor: 'a~' + E1 + '~4,b~' + E2 + '~8',
  });
  await waitFor(() => f.requests.length === 3);
  assert.deepEqual(got.messages.map((m) => m.channel + m.offset), ['a4', 'b8']);
  assert.equal(got.resets.length, 1);
  assert.equal(f.requests[2].url.searchParams.get('since'), 'a~' + E1 + '~4,b~' + E2 + '~8');
  // A failing request after it worked: reconnect (same transport) with backoff.
  f.json(f.requests[2], { error: { code: 'broker_unavailable', message: 'redis down' } }, 503);
  await waitFor(() => f.requests.length === 4);
  assert.equal(f.requests[3].url.searchParams.get('timeout'), '1');
});

test('poll: every pollInterval, with If-None-Match; 304 means nothing new', async (t) => {
  const f = install();
  t.after(f.restore);
  const c = client(t, { transports: ['poll'], pollInterval: 20 });
  const got = collect(c, 'clock');
  await waitFor(() => f.requests.length === 1);
  assert.equal(f.requests[0].url.pathname, '/poll');
  assert.equal(f.requests[0].init.headers['If-None-Match'], undefined);
  // No `since`: the server answers with the latest message, the channel's state.
  f.json(f.requests[0], { messages: [msg('clock', 41, '12:00')], cursor: 'clock~' + E1 + '~41' }, 200, { ETag: '"clock~' + E1 + '~41"' });
  await waitFor(() => f.requests.length === 2);
  assert.equal(got.messages[0].data, '12:00');
  assert.equal(f.requests[1].url.searchParams.get('since'), 'clock~' + E1 + '~41');
  assert.equal(f.requests[1].init.headers['If-None-Match'], '"clock~' + E1 + '~41"');
  f.json(f.requests[1], null, 304);
  await waitFor(() => f.requests.length === 3);
  f.json(f.requests[2], { messages: [msg('clock', 42, '12:01')], cursor: 'clock~' + E1 + '~42' }, 200, { ETag: '"x"' });
  await waitFor(() => f.requests.length === 4);
  assert.deepEqual(got.messages.map((m) => m.data), ['12:00', '12:01']);
  assert.deepEqual(c.statuses, ['connecting:poll', 'open:poll']);
});

test('subscriptions made in one tick give one connection; bad names throw', async (t) => {
  const f = install();
  t.after(f.restore);
  const c = client(t, { transports: ['stream'] });
  assert.throws(() => c.subscribe('bad name'), TypeError);
  assert.throws(() => c.subscribe(undefined), TypeError);
  assert.throws(() => c.subscribe('x'.repeat(201)), TypeError);
  collect(c, 'a');
  collect(c, 'b');
  collect(c, 'c');
  await waitFor(() => f.requests.length === 1);
  await sleep(10);
  assert.equal(f.requests.length, 1);
  assert.deepEqual(f.requests[0].url.searchParams.getAll('channel'), ['a', 'b', 'c']);
});

test('a throwing onMessage does not stop delivery to others', async (t) => {
  const f = install();
  t.after(f.restore);
  const reported = [];
  globalThis.reportError = (e) => reported.push(e.message);
  t.after(() => delete globalThis.reportError);
  const c = client(t);
  c.subscribe('a', { onMessage: () => { throw new Error('boom'); } });
  const got = collect(c, 'a');
  await waitFor(() => FakeWebSocket.all.length === 1);
  const ws = FakeWebSocket.all[0];
  ws.accept();
  ws.replyAll();
  ws.push(msg('a', 1));
  ws.push(msg('a', 2));
  assert.equal(got.messages.length, 2);
  assert.deepEqual(reported, ['boom', 'boom']);
});

test('HTTP 4xx on a subscription reaches its onError', async (t) => {
  const f = install();
  t.after(f.restore);
  const c = client(t, { transports: ['longpoll'] });
  const got = collect(c, 'private:x');
  await waitFor(() => f.requests.length === 1);
  f.json(f.requests[0], { error: { code: 'forbidden', message: 'not for you' } }, 403);
  await waitFor(() => got.errors.length === 1);
  assert.equal(got.errors[0].code, 'forbidden');
  assert.equal(got.errors[0].status, 403);
});

test('a WS close code 44xx reaches onError; 4408 (slow consumer) and 1006 do not', async (t) => {
  const f = install();
  t.after(f.restore);
  const c = client(t);
  const got = collect(c, 'a');
  await waitFor(() => FakeWebSocket.all.length === 1);
  FakeWebSocket.all[0].accept();
  FakeWebSocket.all[0].replyAll();
  FakeWebSocket.all[0].drop(4408, 'slow consumer');
  await waitFor(() => FakeWebSocket.all.length === 2);
  FakeWebSocket.all[1].accept();
  FakeWebSocket.all[1].replyAll();
  FakeWebSocket.all[1].drop(4403, 'origin not allowed');
  await waitFor(() => got.errors.length === 1);
  assert.equal(got.errors[0].status, 4403);
  assert.equal(got.errors[0].code, 'forbidden');
  assert.match(got.errors[0].message, /origin not allowed/);
});

test('close() stops everything and reports closed', async (t) => {
  const f = install();
  t.after(f.restore);
  const c = client(t);
  collect(c, 'a');
  await waitFor(() => FakeWebSocket.all.length === 1);
  FakeWebSocket.all[0].accept();
  FakeWebSocket.all[0].replyAll();
  c.close();
  assert.equal(FakeWebSocket.all[0].closed, true);
  assert.equal(c.state, 'closed');
  assert.equal(c.transport, null);
  await sleep(30);
  assert.equal(FakeWebSocket.all.length, 1);
  assert.throws(() => c.subscribe('a'), /closed/);
  await assert.rejects(c.publish('a', 'x'), /closed/);
});

test('no usable transport is reported, not retried forever', async (t) => {
  const f = install({ ws: false, es: false });
  t.after(f.restore);
  const c = client(t, { transports: ['websocket', 'sse'] });
  const errors = [];
  c.on('error', (e) => errors.push(e.code));
  collect(c, 'a');
  await sleep(10);
  assert.deepEqual(errors, ['no_transport']);
  assert.equal(c.state, 'closed');
});

test('the base URL keeps a path prefix and maps https to wss', async (t) => {
  const f = install();
  t.after(f.restore);
  const c = new Tidings('https://example.com/push/', fast());
  t.after(() => c.close());
  c.subscribe('a');
  await waitFor(() => FakeWebSocket.all.length === 1);
  assert.equal(FakeWebSocket.all[0].url, 'wss://example.com/push/ws');
});
