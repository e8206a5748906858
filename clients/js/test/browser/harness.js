// Shared set-up of the browser tests: starts `tidings serve` with a temporary config, launches
// Debian's Chromium through playwright-core, and opens pages that load the working copy of
// tidings.js from the server's origin (so the iframe transport is same-origin).
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { joined } from '../../parts.mjs';

const here = fileURLToPath(new URL('.', import.meta.url));
export const CLIENT_DIR = join(here, '..', '..');
export const BIN = process.env.TIDINGS_BIN || join(CLIENT_DIR, '..', '..', 'target', 'debug', 'tidings');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const ready = existsSync(BIN) && existsSync(CHROMIUM);
export const skip = ready ? false : `needs ${BIN} (cargo build -p tidings) and ${CHROMIUM}`;

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--no-first-run',
  '--disable-sync',
  '--disable-quic',
  '--disable-dev-shm-usage',
];

/**
 * The server's environment: ours without TIDINGS_* variables, which the server reads as config
 * keys (TIDINGS_BIN, set by scripts/test.sh, would be refused as an unknown key `bin`).
 */
function serverEnv() {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TIDINGS_')));
  return { ...env, RUST_LOG: process.env.RUST_LOG || 'warn' };
}

/** Starts the server with `toml` as its config; resolves {url, stop}. */
export async function startServer(toml, listen = '127.0.0.1:0') {
  const dir = await mkdtemp(join(tmpdir(), 'tidings-js-'));
  const config = join(dir, 'tidings.toml');
  await writeFile(config, toml);
  const proc = spawn(BIN, ['serve', '--listen', listen, '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: serverEnv(),
  });
  let log = '';
  proc.stderr.on('data', (d) => (log += d));
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('server did not start:\n' + out + log)), 15000);
    proc.stdout.on('data', (d) => {
      out += d;
      const m = /tidings listening on (http:\/\/\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}:\n${out}${log}`)));
  });
  return {
    url,
    log: () => log,
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => {
          const t = setTimeout(() => {
            proc.kill('SIGKILL');
            r();
          }, 5000);
          proc.on('exit', () => {
            clearTimeout(t);
            r();
          });
        });
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export function launch() {
  return chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
}

const source = joined();

/**
 * Opens a page on the server's origin with the working copy of tidings.js loaded, plus
 * window.start(opts, channels, subOpts): a client that records statuses and messages.
 */
export async function openPage(context, url) {
  const page = await context.newPage();
  page.on('pageerror', (e) => console.error('page error:', e));
  await page.goto(url + '/healthz');
  await page.addScriptTag({ content: await source });
  await page.evaluate(() => {
    window.start = (opts, channels, subOpts = {}) => {
      const rec = { st: [], got: [], resets: [], errors: [] };
      rec.c = new Tidings(location.origin, opts);
      rec.c.on('status', (s) => rec.st.push(s.state + ':' + s.transport));
      rec.sub = rec.c.subscribe(channels, {
        ...subOpts,
        onMessage: (m) =>
          rec.got.push({ ch: m.channel, o: m.offset, e: m.event, b: m.binary, d: m.binary ? Array.from(m.data) : m.data }),
        onReset: (r) => rec.resets.push(r),
        onError: (e) => rec.errors.push(e.code),
      });
      return rec;
    };
  });
  return page;
}

/** Publishes over HTTP from the test (loopback needs no key). */
export async function publish(url, channel, data, { event, binary } = {}) {
  const r = await fetch(`${url}/api/channels/${encodeURIComponent(channel)}/messages${event ? '?event=' + event : ''}`, {
    method: 'POST',
    headers: { 'Content-Type': binary ? 'application/octet-stream' : 'text/plain' },
    body: data,
  });
  if (r.status !== 201) throw new Error(`publish ${r.status}: ${await r.text()}`);
  return r.json();
}
