// The client's source files in the order they must run. The server joins the same list into
// /tidings.js (crates/tidings-server/src/demo.rs) and tidings.mjs imports them in this order;
// the tests check that all three agree.
import { readFile } from 'node:fs/promises';

export const PARTS = ['src/protocol.js', 'src/transports.js', 'src/link.js', 'src/client.js'];

/** The working copy's client as one classic script: what the server serves at /tidings.js. */
export async function joined() {
  const dir = new URL('.', import.meta.url);
  const texts = await Promise.all(PARTS.map((p) => readFile(new URL(p, dir), 'utf8')));
  return texts.join('');
}
