// The client's parts: parts.mjs lists every file in src/, tidings.mjs imports the same list,
// no part reaches another part's names except through the shared `__tidings` object, and the
// joined script defines one global and leaves nothing else behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import vm from 'node:vm';
import { minify } from 'terser';
import { PARTS, joined } from '../../parts.mjs';

const DIR = new URL('../../', import.meta.url);

/** The globals the client may use: the language's own and the browser APIs it feature-tests. */
const ALLOWED = new Set(
  ('Array ArrayBuffer Boolean Date Error JSON Map Math Object Promise RegExp Set String TypeError ' +
    'Uint8Array URL TextDecoder TextEncoder AbortController EventSource WebSocket XMLHttpRequest ' +
    'atob clearInterval clearTimeout encodeURIComponent fetch globalThis module self ' +
    'setInterval setTimeout undefined').split(' '),
);

test('parts.mjs lists every file in src/, and tidings.mjs imports them in that order', async () => {
  const files = (await readdir(new URL('src/', DIR))).filter((f) => f.endsWith('.js'));
  assert.deepEqual([...PARTS].sort(), files.map((f) => 'src/' + f).sort());
  const mjs = await readFile(new URL('tidings.mjs', DIR), 'utf8');
  assert.deepEqual([...mjs.matchAll(/^import '\.\/(.+)';$/gm)].map((m) => m[1]), PARTS);
});

test('each part uses only its own names, the shared object and allowed globals', async () => {
  for (const part of PARTS) {
    const src = await readFile(new URL(part, DIR), 'utf8');
    const { ast } = await minify(src, { compress: false, mangle: false, format: { ast: true, code: false } });
    ast.figure_out_scope();
    const stray = [...ast.globals.keys()].filter((g) => !ALLOWED.has(g));
    assert.deepEqual(stray, [], `${part} uses undeclared names (a missing import from __tidings?)`);
  }
});

test('the joined script defines Tidings and removes the parts\' shared object', async () => {
  const ctx = vm.createContext({ setTimeout, clearTimeout, setInterval, clearInterval });
  vm.runInContext(await joined(), ctx);
  assert.equal(typeof ctx.Tidings, 'function');
  assert.equal(typeof ctx.Tidings.internals.parseCursor, 'function');
  assert.equal(ctx.__tidings, undefined);
});
