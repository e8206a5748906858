import test from 'node:test';
import assert from 'node:assert/strict';
import { internals } from './load.js';

const { toMessage, advance, splitFrame, publishResult, formatCursor } = internals;

const text = '{"channel":"chat:lobby","epoch":"0a1b2c3d4e5f","offset":42,"time":1764510000000,"event":"say","data":"\\u003c/script\\u003e"}';

test('a text envelope becomes the onMessage object', () => {
  assert.deepEqual(toMessage(JSON.parse(text)), {
    channel: 'chat:lobby',
    epoch: '0a1b2c3d4e5f',
    offset: 42,
    event: 'say',
    data: '</script>',
    time: 1764510000000,
    binary: false,
    cursor: 'chat:lobby~0a1b2c3d4e5f~42',
  });
});

test('the event defaults to message', () => {
  const m = toMessage({ channel: 'a', epoch: '000000000001', offset: 1, time: 0, data: 'x' });
  assert.equal(m.event, 'message');
});

test('base64 data is decoded into bytes', () => {
  const m = toMessage(JSON.parse('{"channel":"files","epoch":"0a1b2c3d4e5f","offset":3,"time":1,"data":"AAEC/w==","encoding":"base64"}'));
  assert.equal(m.binary, true);
  assert.ok(m.data instanceof Uint8Array);
  assert.deepEqual([...m.data], [0, 1, 2, 255]);
});

test('a WebSocket binary frame is split into envelope and bytes', () => {
  const head = new TextEncoder().encode('{"channel":"f","epoch":"000000000001","offset":7,"time":1,"encoding":"binary"}\n');
  const frame = new Uint8Array([...head, 10, 0, 200]);
  const [x, bytes] = splitFrame(frame);
  assert.equal(x.offset, 7);
  assert.deepEqual([...bytes], [10, 0, 200]); // a newline inside the payload is data
  const m = toMessage(x, bytes);
  assert.equal(m.binary, true);
  assert.deepEqual([...m.data], [10, 0, 200]);
});

test('a binary frame without a header is refused', () => {
  assert.throws(() => splitFrame(new Uint8Array([1, 2, 3])), /header/);
});

test('dedupe by position: only offsets past the last seen one pass', () => {
  const pos = new Map();
  assert.equal(advance(pos, 'a', '000000000001', 1), true);
  assert.equal(advance(pos, 'a', '000000000001', 2), true);
  assert.equal(advance(pos, 'a', '000000000001', 2), false, 'same offset again');
  assert.equal(advance(pos, 'a', '000000000001', 1), false, 'older offset');
  assert.equal(advance(pos, 'a', '000000000001', 5), true, 'gaps are the server\'s business');
  assert.equal(formatCursor(pos), 'a~000000000001~5');
});

test('dedupe is per channel', () => {
  const pos = new Map();
  assert.equal(advance(pos, 'a', '000000000001', 3), true);
  assert.equal(advance(pos, 'b', '000000000001', 1), true);
  assert.equal(advance(pos, 'a', '000000000001', 3), false);
});

test('a message of another epoch is taken and starts that epoch', () => {
  const pos = new Map();
  advance(pos, 'a', '000000000001', 50);
  assert.equal(advance(pos, 'a', '000000000002', 1), true);
  assert.equal(advance(pos, 'a', '000000000002', 1), false);
  assert.equal(formatCursor(pos), 'a~000000000002~1');
});

test('publish replies of both shapes are normalised', () => {
  assert.deepEqual(publishResult({ id: 3, ok: true, channel: 'a', epoch: '000000000001', offset: 9 }, 'a'), {
    channel: 'a', epoch: '000000000001', offset: 9, cursor: 'a~000000000001~9',
  });
  assert.deepEqual(publishResult({ channel: 'a', id: 'a~000000000001~9', cursor: 'a~000000000001~9' }, 'a'), {
    channel: 'a', epoch: '000000000001', offset: 9, cursor: 'a~000000000001~9',
  });
});
