// SSE encoder oracle: starts the real server, publishes tricky text (line breaks of every kind,
// empty, leading spaces, colons, field look-alikes, unicode) and parses the raw bytes of
// /sse/{channel} with the independent `eventsource-parser`, fed whole and one byte at a time.
// Each event's data must be the published text with line breaks normalised to \n (what SSE can
// carry), with the right event name and id; ?format=json must carry the text exactly.
import { before, after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { createParser } from 'eventsource-parser';
import { BIN, startServer } from '../browser/harness.js';

const skip = existsSync(BIN) ? false : `needs ${BIN} (cargo build -p tidings)`;

/** [data, event] pairs; event undefined means the default `message`. */
const CASES = [
  ['plain', undefined],
  ['multi\nline\ntext', 'say'],
  ['crlf\r\nline\r\n', undefined],
  ['lone\rcr\r', undefined],
  ['mixed\n\r\n\r\r\n\nbreaks', 'a.b:c-d_1'],
  ['', undefined],
  ['\n', undefined],
  ['\r\n\r\n', 'empty-lines'],
  [' one leading space', undefined],
  ['  two leading spaces\n   three on the next line', undefined],
  ['colon: in the middle', undefined],
  [':starts with a colon (a comment, if unprefixed)', undefined],
  ['data: looks like a field\nid: 99\nevent: fake\nretry: 1', undefined],
  ['unicode é ☃ 😀 \u2028 \u2029 \u0000 end', 'say'],
  ['tab\tand\tback\\slash "quotes" </script>', undefined],
  ['trailing spaces   \n   ', undefined],
  ['long ' + 'x'.repeat(5000), undefined],
];
const HALF = 9; // the first HALF are replayed from history, the rest arrive live
const normalise = (s) => s.replace(/\r\n|\r/g, '\n');

let server;
before(async () => {
  if (!skip) server = await startServer('demos = false\nheartbeat = "1s"\nsse_retry = "1500ms"\n');
});
after(() => server?.stop());

async function publish(ch, [data, event]) {
  const q = event ? '?event=' + encodeURIComponent(event) : '';
  const r = await fetch(`${server.url}/api/channels/${encodeURIComponent(ch)}/messages${q}`, {
    method: 'POST',
    headers: { 'Content-Type': 'text/plain; charset=utf-8' },
    body: data,
  });
  assert.equal(r.status, 201, await r.clone().text());
  return r.json();
}

/** Parses SSE text with eventsource-parser, fed in `step`-sized pieces (0: all at once). */
function parse(text, step = 0) {
  const out = { events: [], retry: [], errors: [], comments: [] };
  const p = createParser({
    onEvent: (e) => out.events.push(e),
    onRetry: (ms) => out.retry.push(ms),
    onError: (e) => out.errors.push(e.message),
    onComment: (c) => out.comments.push(c),
  });
  if (!step) p.feed(text);
  else for (let i = 0; i < text.length; i += step) p.feed(text.slice(i, i + step));
  return out;
}

/**
 * Opens `path`, runs `during` once the response has begun, and reads the raw body as bytes
 * until `done(text)` holds; returns the text, decoded from bytes one byte at a time too.
 */
async function readSse(path, done, during = async () => {}) {
  const ac = new AbortController();
  const r = await fetch(server.url + path, { signal: ac.signal });
  assert.equal(r.status, 200);
  assert.match(r.headers.get('content-type'), /^text\/event-stream/);
  const bytes = [];
  const reader = r.body.getReader();
  const live = during();
  const deadline = Date.now() + 15000;
  let text = '';
  while (!done(text)) {
    assert.ok(Date.now() < deadline, 'timed out; got:\n' + text);
    const x = await reader.read();
    assert.ok(!x.done, 'the stream ended early; got:\n' + text);
    bytes.push(...x.value);
    text = new TextDecoder().decode(new Uint8Array(bytes));
  }
  await live;
  ac.abort();
  // The same bytes, decoded one byte at a time (multi-byte characters split across chunks).
  const dec = new TextDecoder();
  const byByte = bytes.map((b) => dec.decode(new Uint8Array([b]), { stream: true })).join('') + dec.decode();
  assert.equal(byByte, text);
  return text;
}

test('plain SSE: eventsource-parser reads back every event: data, event name and id', { skip }, async () => {
  const ch = 'sse:oracle';
  const first = await publish(ch, CASES[0]);
  for (const c of CASES.slice(1, HALF)) await publish(ch, c);
  const epoch = first.cursor.split('~')[1];
  const text = await readSse(
    `/sse/${ch}?since=${ch}~${epoch}~0`,
    (t) => parse(t).events.length >= CASES.length,
    async () => {
      for (const c of CASES.slice(HALF)) await publish(ch, c);
    }
  );
  for (const step of [0, 1, 7]) {
    const r = parse(text, step);
    assert.deepEqual(r.errors, [], `step ${step}`);
    assert.deepEqual(r.retry, [1500], 'the retry: field');
    assert.equal(r.events.length, CASES.length, `step ${step}`);
    r.events.forEach((e, i) => {
      const [data, event] = CASES[i];
      assert.equal(e.data, normalise(data), `data of #${i + 1} (step ${step}): ${JSON.stringify(data)}`);
      assert.equal(e.event, event, `event of #${i + 1}`);
      assert.equal(e.id, `${ch}~${epoch}~${i + 1}`, `id of #${i + 1}`);
    });
  }
});

test('format=json: an open notice first, then envelopes that carry the text exactly', { skip }, async () => {
  const ch = 'sse:json';
  const first = await publish(ch, CASES[0]);
  for (const c of CASES.slice(1, HALF)) await publish(ch, c);
  const epoch = first.cursor.split('~')[1];
  const text = await readSse(
    `/sse/${ch}?format=json&lastEventId=${ch}~${epoch}~0`,
    (t) => parse(t).events.length >= CASES.length + 1,
    async () => {
      for (const c of CASES.slice(HALF)) await publish(ch, c);
    }
  );
  const r = parse(text, 3);
  assert.deepEqual(r.errors, []);
  const [open, ...events] = r.events;
  assert.deepEqual(JSON.parse(open.data), { type: 'open', cursor: `${ch}~${epoch}~0` });
  assert.equal(open.id, undefined, 'the open notice leaves Last-Event-ID alone');
  events.forEach((e, i) => {
    const [data, event] = CASES[i];
    const env = JSON.parse(e.data);
    assert.equal(e.event, undefined, 'no event: line in json mode');
    assert.equal(e.id, `${ch}~${epoch}~${i + 1}`);
    assert.equal(env.data, data, `exact data of #${i + 1}: ${JSON.stringify(data)}`);
    assert.equal(env.event, event);
    assert.equal(env.offset, i + 1);
    assert.doesNotMatch(e.data, /[<>&\u2028\u2029]/, 'script-safe JSON');
  });
});

test('several channels and binary data: ids are the whole cursor, binary is base64', { skip }, async () => {
  const a = await publish('sse:m1', ['one\r\ntwo', 'say']);
  const ea = a.cursor.split('~')[1];
  const b = await fetch(`${server.url}/api/channels/sse:m2/messages?event=blob`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/octet-stream' },
    body: new Uint8Array([0, 10, 13, 255]),
  }).then((r) => r.json());
  const eb = b.cursor.split('~')[1];
  const since = `sse:m1~${ea}~0,sse:m2~${eb}~0`;
  const text = await readSse(`/sse?channel=sse:m1&channel=sse:m2&since=${since}`, (t) => parse(t).events.length >= 2);
  const r = parse(text, 1);
  assert.deepEqual(r.errors, []);
  const byEvent = Object.fromEntries(r.events.map((e) => [e.event, e]));
  assert.equal(byEvent.say.data, 'one\ntwo');
  assert.equal(byEvent['blob.base64'].data, Buffer.from([0, 10, 13, 255]).toString('base64'));
  // On several channels the id is the cursor of all of them, as far as delivered.
  const last = r.events[r.events.length - 1].id;
  assert.deepEqual(last.split(',').sort(), [`sse:m1~${ea}~1`, `sse:m2~${eb}~1`]);
});
