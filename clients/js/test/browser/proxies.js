// Two tiny loopback proxies for the browser tests, put between Chromium and the server:
// - tcpProxy: forwards bytes both ways; kill() destroys every live connection (a server or
//   network dropping connections mid-stream) and can refuse new ones for a while after, so
//   the browser's own silent retry of a request fails too; `blockUpgrade` drops WebSocket handshakes
//   (a proxy that blocks WebSocket). Bytes pass untouched, so `Host` names the proxy and the
//   page is same-origin with it.
// - bufferingProxy: an HTTP proxy that holds a response body back until the upstream response
//   completes or `limit` bytes have gathered (a buffering proxy). With `holdHeaders` it holds
//   the status and headers back too. It refuses WebSocket upgrades.
import net from 'node:net';
import http from 'node:http';

const listen = (server) =>
  new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}`)));

/** A TCP proxy to `target` (http://host:port). Resolves {url, kill(refuseMs), live(), close(), stats}. */
export async function tcpProxy(target, { blockUpgrade = false } = {}) {
  const { hostname, port } = new URL(target);
  const live = new Set();
  const stats = { connections: 0, killed: 0, refused: 0 };
  let refuseUntil = 0;
  const server = net.createServer((client) => {
    stats.connections++;
    if (Date.now() < refuseUntil) {
      stats.refused++;
      return client.resetAndDestroy();
    }
    const up = net.connect(+port, hostname);
    const pair = { client, up };
    live.add(pair);
    let first = true;
    const gone = () => {
      live.delete(pair);
      client.destroy();
      up.destroy();
    };
    client.on('data', (d) => {
      // Chromium opens a fresh connection for each WebSocket and sends the handshake at once.
      if (first && blockUpgrade && /^upgrade:\s*websocket/im.test(d.toString('latin1'))) {
        stats.refused++;
        return gone();
      }
      first = false;
      up.write(d);
    });
    up.on('data', (d) => client.write(d));
    // A clean end is passed on with end(), which still flushes what is queued.
    client.on('end', () => up.end());
    up.on('end', () => client.end());
    up.on('close', () => client.end());
    client.on('close', gone);
    client.on('error', gone);
    up.on('error', gone);
  });
  const url = await listen(server);
  const kill = (refuseMs = 0) => {
    refuseUntil = Date.now() + refuseMs;
    const n = live.size;
    for (const { client, up } of live) {
      client.resetAndDestroy();
      up.destroy();
    }
    live.clear();
    stats.killed += n;
    return n;
  };
  return {
    url,
    stats,
    kill,
    live: () => live.size,
    close: () => {
      kill();
      return new Promise((r) => server.close(r));
    },
  };
}

const HOP = ['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade'];
const endToEnd = (headers) => Object.fromEntries(Object.entries(headers).filter(([k]) => !HOP.includes(k)));

/** A buffering HTTP proxy to `target`. Resolves {url, close(), stats}. */
export async function bufferingProxy(target, { limit = 64 * 1024, holdHeaders = false } = {}) {
  const stats = { requests: 0, upgrades: 0 };
  const sockets = new Set();
  const server = http.createServer((req, res) => {
    stats.requests++;
    const up = http.request(target + req.url, { method: req.method, headers: endToEnd(req.headers) }, (ur) => {
      const head = () => !res.headersSent && res.writeHead(ur.statusCode, endToEnd(ur.headers));
      if (!holdHeaders) {
        head();
        res.flushHeaders();
      }
      let chunks = [];
      let size = 0;
      ur.on('data', (d) => {
        if (!chunks) return res.write(d);
        chunks.push(d);
        size += d.length;
        if (size >= limit) {
          // The buffer is full: send what gathered, then pass the rest through.
          head();
          res.write(Buffer.concat(chunks));
          chunks = null;
        }
      });
      ur.on('end', () => {
        head();
        res.end(chunks ? Buffer.concat(chunks) : undefined);
      });
      ur.on('error', () => res.destroy());
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
    // The browser gave up on the response (an abort, or a page that moved on).
    res.on('close', () => up.destroy());
  });
  server.on('upgrade', (req, socket) => {
    stats.upgrades++;
    socket.destroy();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const url = await listen(server);
  return {
    url,
    stats,
    close: () => {
      sockets.forEach((s) => s.destroy());
      return new Promise((r) => server.close(r));
    },
  };
}
