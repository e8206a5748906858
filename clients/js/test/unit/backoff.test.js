import test from 'node:test';
import assert from 'node:assert/strict';
import { internals } from './load.js';

const { backoff } = internals;
const opts = { base: 500, max: 15000 };
const top = () => 0.999999;

test('the ceiling doubles per attempt from base', () => {
  assert.equal(Math.round(backoff(0, opts, top)), 500);
  assert.equal(Math.round(backoff(1, opts, top)), 1000);
  assert.equal(Math.round(backoff(2, opts, top)), 2000);
  assert.equal(Math.round(backoff(4, opts, top)), 8000);
});

test('the ceiling is capped at max, even for huge attempts', () => {
  assert.equal(Math.round(backoff(5, opts, top)), 15000);
  assert.equal(Math.round(backoff(1000, opts, top)), 15000);
});

test('full jitter: the delay is random() times the ceiling', () => {
  assert.equal(backoff(3, opts, () => 0), 0);
  assert.equal(backoff(3, opts, () => 0.5), 2000);
  assert.equal(backoff(3, opts, () => 0.25), 1000);
});

test('with Math.random the delay stays in [0, ceiling)', () => {
  for (let attempt = 0; attempt < 12; attempt++) {
    const ceiling = Math.min(opts.max, opts.base * 2 ** attempt);
    for (let i = 0; i < 200; i++) {
      const d = backoff(attempt, opts);
      assert.ok(d >= 0 && d < ceiling, `${d} within [0, ${ceiling})`);
    }
  }
});

test('custom base and max', () => {
  assert.equal(backoff(2, { base: 10, max: 25 }, () => 0.5), 12.5);
});
