// Sharing one connection among "tabs": several clients in one process stand in for tabs, as
// BroadcastChannel delivers between instances of one thread too. Both elections are tested:
// Web Locks (a fake navigator.locks) and the heartbeat fallback.
import test from 'node:test';
import assert from 'node:assert/strict';
import { Tidings } from './load.js';
import { FakeWebSocket, install, waitFor, sleep, msg, E1 } from './fakes.js';

let n = 0;
const opts = () => ({ shared: true, openTimeout: 300, backoff: { base: 5, max: 20 } });

/** A minimal Web Locks manager: exclusive locks granted in request order, abortable. */
function fakeLocks() {
  const queues = new Map();
  const grant = (name) => {
    const q = queues.get(name);
    if (!q.length || q.held) return;
    const r = q.shift();
    q.held = true;
    Promise.resolve(r.cb({ name }))
      .then(r.resolve, r.reject)
      .finally(() => {
        q.held = false;
        grant(name);
      });
  };
  return {
    request(name, options, cb) {
      return new Promise((resolve, reject) => {
        if (!queues.has(name)) queues.set(name, []);
        const r = { cb, resolve, reject };
        queues.get(name).push(r);
        options.signal.addEventListener('abort', () => {
          const q = queues.get(name);
          const i = q.indexOf(r);
          if (i >= 0) {
            q.splice(i, 1);
            reject(new DOMException('aborted', 'AbortError'));
          }
        });
        grant(name);
      });
    },
  };
}

async function scenario(t, { locks }) {
  const f = install();
  t.after(f.restore);
  if (locks) {
    globalThis.navigator = { locks: fakeLocks() };
    t.after(() => delete globalThis.navigator);
  }
  // A base URL per test, so BroadcastChannel names never cross tests.
  const base = 'http://shared' + ++n + '.test';
  const A = new Tidings(base, opts());
  t.after(() => A.close());
  const aMsgs = [];
  A.subscribe('a', { onMessage: (m) => aMsgs.push(m.channel + m.offset) });
  await waitFor(() => FakeWebSocket.all.length === 1, 3000);
  const ws = FakeWebSocket.all[0];
  ws.accept();
  ws.replyAll();
  await waitFor(() => A.state === 'open');

  const B = new Tidings(base, opts());
  t.after(() => B.close());
  const bMsgs = [];
  const bStatus = [];
  B.on('status', (s) => bStatus.push(s.state + ':' + s.transport));
  const bSub = B.subscribe(['a', 'b'], { onMessage: (m) => bMsgs.push(m.channel + m.offset) });
  // The leader subscribes its socket to the follower's channel as well.
  await waitFor(() => ws.commands('subscribe').some((c) => c.channel === 'b'), 3000);
  ws.replyAll();
  await waitFor(() => B.state === 'open' && B.transport === 'websocket', 3000);
  assert.equal(FakeWebSocket.all.length, 1, 'one connection for both tabs');

  ws.push(msg('a', 1));
  ws.push(msg('b', 1));
  ws.push(msg('b', 1)); // a duplicate
  await waitFor(() => bMsgs.length === 2);
  await sleep(20);
  assert.deepEqual(aMsgs, ['a1']);
  assert.deepEqual(bMsgs, ['a1', 'b1']);
  assert.equal(bSub.cursor, 'a~' + E1 + '~1,b~' + E1 + '~1');

  // A follower publishes through the leader's socket.
  const p = B.publish('b', 'from B', { event: 'say' });
  await waitFor(() => ws.commands('publish').length === 1);
  const cmd = ws.commands('publish')[0];
  assert.deepEqual([cmd.channel, cmd.data, cmd.event], ['b', 'from B', 'say']);
  ws.push({ id: cmd.id, ok: true, channel: 'b', epoch: E1, offset: 2 });
  assert.deepEqual(await p, { channel: 'b', epoch: E1, offset: 2, cursor: 'b~' + E1 + '~2' });

  // The follower unsubscribes b: the leader drops it from its socket.
  bSub.unsubscribe();
  B.subscribe('a', { onMessage: (m) => bMsgs.push(m.channel + m.offset) });
  await waitFor(() => ws.commands('unsubscribe').some((c) => c.channel === 'b'), 3000);

  // The leader tab goes away: the follower takes over with its own cursor.
  ws.push(msg('a', 2));
  await waitFor(() => bMsgs.length === 3);
  A.close();
  await waitFor(() => FakeWebSocket.all.length === 2, 5000);
  const ws2 = FakeWebSocket.all[1];
  ws2.accept();
  assert.deepEqual(ws2.commands('subscribe').map((c) => [c.channel, c.since]), [['a', 'a~' + E1 + '~2']]);
  ws2.replyAll();
  await waitFor(() => B.state === 'open');
  ws2.push(msg('a', 3));
  assert.deepEqual(bMsgs, ['a1', 'b1', 'a2', 'a3']);
  assert.ok(ws.closed, 'the old leader closed its socket');
}

test('shared with Web Locks: one connection, follower receives, publishes, takes over', (t) => scenario(t, { locks: true }));

test('shared with heartbeat election: the same', (t) => scenario(t, { locks: false }));

test('heartbeat election: of two leaders, the one with the larger id steps down', async (t) => {
  const f = install();
  t.after(f.restore);
  const base = 'http://shared' + ++n + '.test';
  const A = new Tidings(base, opts());
  const B = new Tidings(base, opts());
  t.after(() => A.close());
  t.after(() => B.close());
  A.subscribe('a');
  B.subscribe('b');
  // Both may claim at their first tick; within a couple of beats exactly one leads.
  await sleep(3500);
  assert.equal([A, B].filter((c) => c._lead).length, 1);
  const [leader, follower] = A._lead ? [A, B] : [B, A];
  assert.equal(follower._link, null, 'the follower holds no connection');
  assert.equal(follower._timer, 0);
  assert.ok(leader._link || leader._timer, 'the leader connects');
  assert.deepEqual(leader._want(), ['a', 'b'], 'for both tabs');
});
