#!/usr/bin/env node
// An entitysync.v1.Resolver for the entity type "items", in Node.js.
//
//   node examples/node-resolver/resolver.mjs [--listen=127.0.0.1:7072] [--http=127.0.0.1:7073]
//
// --listen (or $RESOLVER_LISTEN)  gRPC address entitysync-server calls; port 0 picks one
// --http   (or $RESOLVER_HTTP)    optional demo hook to change items (off by default):
//                                 GET|PUT|DELETE /items/<id>, PUT takes JSON
//                                 {"name", "price_cents", "tags", "acl"} and answers
//                                 {"id", "version"}. It does not call Notify: do that
//                                 afterwards, as your backend would (see notify.mjs).
//
// Prints "READY grpc=HOST:PORT [http=HOST:PORT]" once it accepts calls, and
// stops cleanly on SIGTERM or SIGINT. Credentials are never printed.

import http from 'node:http';
import { parseArgs } from 'node:util';

import grpc from '@grpc/grpc-js';

import { loadEntitySyncV1 } from './proto.mjs';
import { ResolveError, resolve } from './resolve.mjs';
import { ItemStore, SEED } from './store.mjs';

const { values: flags } = parseArgs({
  options: {
    listen: { type: 'string', default: process.env.RESOLVER_LISTEN || '127.0.0.1:7072' },
    http: { type: 'string', default: process.env.RESOLVER_HTTP || '' },
  },
});

const store = new ItemStore(SEED);
const v1 = loadEntitySyncV1();

// The gRPC service: one unary method, a thin wrapper around resolve().
const server = new grpc.Server();
server.addService(v1.Resolver.service, {
  Resolve(call, callback) {
    try {
      callback(null, resolve(store, call.request));
    } catch (err) {
      const code = err instanceof ResolveError ? err.code : grpc.status.INTERNAL;
      callback({ code, details: err.message });
    }
  },
});

function bindGrpc(address) {
  return new Promise((resolvePort, reject) => {
    server.bindAsync(address, grpc.ServerCredentials.createInsecure(), (err, port) => {
      if (err) reject(err);
      else resolvePort(port);
    });
  });
}

// ---------------------------------------------------------------------------
// The demo hook: change the store from outside (curl, the tests).

const MAX_BODY_BYTES = 64 * 1024;

function readJson(req) {
  return new Promise((resolveBody, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error('body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      try {
        resolveBody(chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : {});
      } catch {
        reject(new Error('body is not JSON'));
      }
    });
    req.on('error', reject);
  });
}

function checkItemFields(body) {
  const isStrings = (v) => Array.isArray(v) && v.every((s) => typeof s === 'string');
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return 'body must be a JSON object';
  if (body.name !== undefined && typeof body.name !== 'string') return 'name must be a string';
  if (body.price_cents !== undefined && !Number.isSafeInteger(body.price_cents)) return 'price_cents must be an integer';
  if (body.tags !== undefined && !isStrings(body.tags)) return 'tags must be an array of strings';
  if (body.acl !== undefined && !isStrings(body.acl)) return 'acl must be an array of strings';
  return null;
}

async function handleHttp(req, res) {
  const reply = (status, value) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(`${JSON.stringify(value)}\n`);
  };
  const m = new URL(req.url, 'http://localhost').pathname.match(/^\/items\/([^/]+)$/);
  if (!m) return reply(404, { error: 'use /items/<id>' });
  let id;
  try {
    id = decodeURIComponent(m[1]);
  } catch {
    return reply(400, { error: 'bad id' });
  }
  if (id === '*') return reply(400, { error: '"*" is not an id' });
  if (req.method === 'GET') {
    const item = store.get(id);
    if (!item || item.deleted) return reply(404, { error: 'no such item' });
    const { acl, deleted, ...visible } = item; // never echo access lists (they are secrets)
    return reply(200, visible);
  }
  if (req.method === 'PUT') {
    let body;
    try {
      body = await readJson(req);
    } catch (err) {
      return reply(400, { error: err.message });
    }
    const problem = checkItemFields(body);
    if (problem) return reply(400, { error: problem });
    const item = store.put(id, body);
    return reply(200, { id, version: item.version });
  }
  if (req.method === 'DELETE') {
    const item = store.delete(id);
    if (!item) return reply(404, { error: 'no such item' });
    return reply(200, { id, version: item.version });
  }
  res.setHeader('allow', 'GET, PUT, DELETE');
  return reply(405, { error: 'method not allowed' });
}

function listenHttp(address) {
  const i = address.lastIndexOf(':');
  const host = address.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(address.slice(i + 1));
  const httpServer = http.createServer((req, res) => {
    handleHttp(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  return new Promise((resolveServer, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(port, host, () => resolveServer(httpServer));
  });
}

// ---------------------------------------------------------------------------

function hostOf(address) {
  return address.slice(0, address.lastIndexOf(':'));
}

let httpServer = null;
try {
  const grpcPort = await bindGrpc(flags.listen);
  let ready = `READY grpc=${hostOf(flags.listen)}:${grpcPort}`;
  if (flags.http) {
    httpServer = await listenHttp(flags.http);
    ready += ` http=${hostOf(flags.http)}:${httpServer.address().port}`;
  }
  console.log(ready);
} catch (err) {
  console.error(`node resolver: cannot start: ${err.message}`);
  process.exit(1);
}

let stopping = false;
function stop(signal) {
  if (stopping) return;
  stopping = true;
  console.log(`node resolver: ${signal}, stopping`);
  httpServer?.close();
  httpServer?.closeAllConnections();
  // Let calls in flight finish (they are short), but not forever.
  const force = setTimeout(() => server.forceShutdown(), 2000);
  force.unref();
  server.tryShutdown(() => {
    clearTimeout(force);
    process.exit(0);
  });
}
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
