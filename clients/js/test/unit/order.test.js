import test from 'node:test';
import assert from 'node:assert/strict';
import { internals } from './load.js';

const { transportOrder, TRANSPORTS } = internals;
const all = () => true;

test('the default order', () => {
  assert.deepEqual(TRANSPORTS, ['websocket', 'sse', 'stream', 'iframe', 'longpoll', 'poll']);
  assert.deepEqual(transportOrder(TRANSPORTS, null, all), TRANSPORTS);
});

test('the transport remembered in the session goes first, the rest keep their order', () => {
  assert.deepEqual(transportOrder(TRANSPORTS, 'stream', all), ['stream', 'websocket', 'sse', 'iframe', 'longpoll', 'poll']);
  assert.deepEqual(transportOrder(TRANSPORTS, 'poll', all), ['poll', 'websocket', 'sse', 'stream', 'iframe', 'longpoll']);
});

test('a remembered transport that is not requested is ignored', () => {
  assert.deepEqual(transportOrder(['sse', 'poll'], 'websocket', all), ['sse', 'poll']);
});

test('unusable, unknown and repeated transports are dropped', () => {
  const usable = (n) => n !== 'websocket' && n !== 'iframe';
  assert.deepEqual(transportOrder(['websocket', 'carrier-pigeon', 'sse', 'iframe', 'sse', 'poll'], 'iframe', usable), ['sse', 'poll']);
});

test('the requested order is respected', () => {
  assert.deepEqual(transportOrder(['poll', 'longpoll', 'websocket'], null, all), ['poll', 'longpoll', 'websocket']);
});

test('the input list is not modified', () => {
  const list = ['websocket', 'sse'];
  transportOrder(list, 'sse', all);
  assert.deepEqual(list, ['websocket', 'sse']);
});
