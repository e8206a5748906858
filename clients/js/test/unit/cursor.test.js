import test from 'node:test';
import assert from 'node:assert/strict';
import { internals } from './load.js';

const { parseCursor, formatCursor, mergeCursor } = internals;

test('parses every entry of a cursor', () => {
  const pos = parseCursor('chat:lobby~0a1b2c3d4e5f~42,news~00000000beef~7');
  assert.deepEqual([...pos], [
    ['chat:lobby', { e: '0a1b2c3d4e5f', o: 42 }],
    ['news', { e: '00000000beef', o: 7 }],
  ]);
});

test('channel names may hold every allowed character', () => {
  const pos = parseCursor('a_b.c:d@e/f=g-h~000000000001~0');
  assert.deepEqual(pos.get('a_b.c:d@e/f=g-h'), { e: '000000000001', o: 0 });
});

test('epochs are normalised to lower case', () => {
  assert.equal(parseCursor('a~0A1B2C3D4E5F~1').get('a').e, '0a1b2c3d4e5f');
});

test('malformed entries are skipped, good ones kept', () => {
  const pos = parseCursor('a~000000000001~5,bad,b~xyz~1,c~000000000002~-1,d b~000000000001~1,e~000000000003~9,f~000000000001~1~2');
  assert.deepEqual([...pos.keys()], ['a', 'e']);
});

test('empty, null and undefined give an empty cursor', () => {
  for (const v of ['', null, undefined]) assert.equal(parseCursor(v).size, 0);
});

test('parse into an existing map overrides its entries', () => {
  const pos = parseCursor('a~000000000001~5');
  parseCursor('a~000000000001~9,b~000000000002~1', pos);
  assert.equal(formatCursor(pos), 'a~000000000001~9,b~000000000002~1');
});

test('compose round-trips and keeps the given channel order', () => {
  const text = 'chat:lobby~0a1b2c3d4e5f~42,news~00000000beef~7';
  assert.equal(formatCursor(parseCursor(text)), text);
  assert.equal(formatCursor(parseCursor(text), ['news', 'chat:lobby']), 'news~00000000beef~7,chat:lobby~0a1b2c3d4e5f~42');
});

test('compose only names channels with a position', () => {
  const pos = parseCursor('a~000000000001~1');
  assert.equal(formatCursor(pos, ['b', 'a', 'c']), 'a~000000000001~1');
  assert.equal(formatCursor(pos, ['x']), '');
});

test('merge fills channels that have no position yet', () => {
  const pos = parseCursor('a~000000000001~5');
  mergeCursor(pos, 'a~000000000001~9,b~000000000002~3');
  // Without `forward`, a known channel keeps its position (history may still follow).
  assert.equal(formatCursor(pos), 'a~000000000001~5,b~000000000002~3');
});

test('merge forward moves on within the same epoch only, never back', () => {
  const pos = parseCursor('a~000000000001~5,b~000000000002~8,c~000000000003~4');
  mergeCursor(pos, 'a~000000000001~9,b~000000000002~2,c~0000000000ff~50', true);
  assert.equal(formatCursor(pos), 'a~000000000001~9,b~000000000002~8,c~000000000003~4');
});

test('merge ignores channels the filter rejects', () => {
  const pos = new Map();
  mergeCursor(pos, 'a~000000000001~1,b~000000000001~2', true, (ch) => ch === 'b');
  assert.equal(formatCursor(pos), 'b~000000000001~2');
});
