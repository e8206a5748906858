import test from 'node:test';
import assert from 'node:assert/strict';
import { internals } from './load.js';

const { lineSplitter } = internals;

test('complete lines come out; a partial line waits for the next chunk', () => {
  const split = lineSplitter();
  assert.deepEqual(split('{"type":"open","cursor":"a~000000000001~0"}\n{"chan'), ['{"type":"open","cursor":"a~000000000001~0"}']);
  assert.deepEqual(split('nel":"a"'), []);
  assert.deepEqual(split('}\n{"type":"heartbeat"}\n'), ['{"channel":"a"}', '{"type":"heartbeat"}']);
  assert.deepEqual(split(''), []);
});

test('CRLF line ends and blank lines are tolerated', () => {
  const split = lineSplitter();
  assert.deepEqual(split('{"a":1}\r\n\r\n{"b":2}\r\n'), ['{"a":1}', '{"b":2}']);
});

test('every chunking of a stream gives the same lines', () => {
  const lines = ['{"type":"open","cursor":""}', '{"channel":"a","epoch":"000000000001","offset":1,"time":1,"data":"é ☃ 😀"}', '{"type":"heartbeat"}'];
  const stream = lines.join('\n') + '\n';
  for (let size = 1; size <= stream.length; size++) {
    const split = lineSplitter();
    const out = [];
    for (let i = 0; i < stream.length; i += size) out.push(...split(stream.slice(i, i + size)));
    assert.deepEqual(out, lines, `chunks of ${size}`);
  }
});

test('with a streaming TextDecoder, multi-byte characters split across chunks survive', () => {
  const bytes = new TextEncoder().encode('{"data":"😀é"}\n{"data":"☃"}\n');
  for (let size = 1; size <= 7; size++) {
    const split = lineSplitter();
    const dec = new TextDecoder();
    const out = [];
    for (let i = 0; i < bytes.length; i += size) out.push(...split(dec.decode(bytes.subarray(i, i + size), { stream: true })));
    assert.deepEqual(out.map((l) => JSON.parse(l).data), ['😀é', '☃'], `chunks of ${size}`);
  }
});
