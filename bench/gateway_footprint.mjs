// Gateway footprint and latency: N WebSocket connections (enveloped mode),
// each subscribed to items/100, through entitysync-gateway to one replica.
// Reports the gateway's and the server's RSS growth per connection and the
// Notify -> last-browser-frame latency of one change fanned out to all N.
//
//   node bench/gateway_footprint.mjs [N=1000] [--hosted]
//
// --hosted: no entitysync-gateway; the replica hosts it (--gateway_address)
// and the browsers' streams go straight to its session core, so the
// "server" figure is all a browser costs.
//
// Uses the binaries in bazel-bin (bazel build //server:entitysync-server
// //adapters/gateway:entitysync-gateway //examples/items:items) and the test
// harness of tests/web to start them on free loopback ports.
import fs from 'node:fs';
import WebSocket from 'ws';
import { Stack, waitFor } from '../tests/web/harness.mjs';

const args = process.argv.slice(2);
const hosted = args.includes('--hosted');
const N = Number(args.find((a) => !a.startsWith('--')) || 1000);
const rssKb = (pid) => Number(/VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'))[1]);

const stack = await Stack.start({ gateway: { max_connections: N + 10 }, hosted });
try {
  const gatewayPid = stack.gateway.pid;
  const serverPid = stack.server.pid;
  await new Promise((r) => setTimeout(r, 500));
  const before = { gateway: rssKb(gatewayPid), server: rssKb(serverPid) };
  const sockets = [];
  let received = 0;
  for (let i = 0; i < N; i++) {
    const ws = new WebSocket(stack.wsUrl(), 'entitysync.v1.json');
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.type === 'update' && m.rows?.[0]?.json?.name === 'bench') received++;
    });
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    ws.send(JSON.stringify({ action: 'subscribe', request_id: 1, body: { entity: 'items', id: '100' } }));
    sockets.push(ws);
  }
  await new Promise((r) => setTimeout(r, 2000));
  const after = { gateway: rssKb(gatewayPid), server: rssKb(serverPid) };
  const started = process.hrtime.bigint();
  await stack.setItem('100', { name: 'bench' });
  await waitFor(() => received >= N, { timeout: 30000, what: `${N} updates` });
  const fanoutMs = Number(process.hrtime.bigint() - started) / 1e6;
  console.log(JSON.stringify({
    connections: N,
    hosted,
    gateway_rss_kb: { before: before.gateway, after: after.gateway },
    gateway_bytes_per_connection: Math.round(((after.gateway - before.gateway) * 1024) / N),
    server_bytes_per_stream: Math.round(((after.server - before.server) * 1024) / N),
    fanout_ms_set_notify_to_last_frame: Math.round(fanoutMs * 10) / 10,
  }, null, 1));
  for (const ws of sockets) ws.terminate();
} finally {
  await stack.stop();
}
