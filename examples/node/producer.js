#!/usr/bin/env node
// A complete producer of the agent-metrics pipeline in Node.js, written from the README's "The wire
// contract" alone: one XADD of one JSON field, `event`, per event, on the event's shard (routing), and a
// heartbeat for every open session (liveness). It publishes agent sessions with rounds and tool calls:
//
//   node producer.js [--url redis://127.0.0.1:6379] [--stream metrics:events] [--shards K]
//                    [--sessions N] [--rounds R] [--tools T] [--run ID] [--keep-open]
//   node producer.js --check-conformance ../../contract/conformance.json
//
// --keep-open leaves the last session open, waiting for its user, and heartbeating until SIGTERM or
// SIGINT. One Redis or a Redis Cluster: it asks the node (INFO cluster). Prints what it published as JSON.
'use strict';
const { createClient, createCluster } = require('redis');
const { randomUUID } = require('node:crypto');
const fs = require('node:fs');

const HEARTBEAT_INTERVAL_S = 5; // contract/liveness.py: beat every 5 s, alive until now + 30 s
const HEARTBEAT_TTL_S = 30;

// CRC-32 (zlib's, IEEE 802.3) and CRC16/XMODEM (Redis Cluster's), bit by bit over the UTF-8 bytes.
function crc32(text) {
  let crc = 0xffffffff;
  for (const byte of Buffer.from(text, 'utf8')) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return (crc ^ 0xffffffff) >>> 0; // unsigned: JavaScript's bitwise operators are signed 32-bit
}
function crc16(text) {
  let crc = 0;
  for (const byte of Buffer.from(text, 'utf8')) {
    crc ^= byte << 8;
    for (let k = 0; k < 8; k++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc;
}
function clusterTag(i, k) { // the first of i, i.1, i.2, ... whose slot is in the middle half of slice i
  for (let n = 0, tag = String(i); ; tag = `${i}.${++n}`) {
    const slot = crc16(tag) % 16384;
    if (4096 * (4 * i + 1) <= k * slot && k * slot < 4096 * (4 * i + 3)) return tag;
  }
}
const ROUTING_FIELD = { session: 'session_id', round: 'session_id', tool: 'session_id', forward: 'forward_id', sync: 'reason' };
const routingId = (event) => event[ROUTING_FIELD[event.type.split('.')[0]]];

function keys(stream, shards, cluster) {
  const tag = (i) => (cluster ? clusterTag(i, shards) : String(i));
  const streams = shards === 1 ? [stream] : Array.from({ length: shards }, (_, i) => `${stream}:{${tag(i)}}`);
  return { streams, heartbeats: `${stream}:hints:active`, awaiting: `${stream}:hints:awaiting`,
    streamFor: (event) => streams[crc32(routingId(event)) % shards] };
}

class Producer {
  constructor(client, keys) {
    Object.assign(this, { client, keys, open: new Set() });
    this.timer = setInterval(() => this.beat().catch((err) => console.error('heartbeat:', err.message)),
      HEARTBEAT_INTERVAL_S * 1000);
  }
  async publish(type, fields) {
    const event = { v: 1, event_id: randomUUID(), type, occurred_at: new Date().toISOString(), ...fields };
    await this.client.xAdd(this.keys.streamFor(event), '*', { event: JSON.stringify(event) });
  }
  async beat(ids = [...this.open]) {
    const expiry = Date.now() / 1000 + HEARTBEAT_TTL_S;
    if (ids.length) await this.client.zAdd(this.keys.heartbeats, ids.map((value) => ({ score: expiry, value })));
  }
  async startSession(sessionId, model) {
    this.open.add(sessionId);
    await this.beat([sessionId]);
    await this.publish('session.started', { session_id: sessionId, model });
  }
  async awaitingUser(sessionId) { // the heartbeat goes on; the mark says how to close it if it stops
    await this.client.zAdd(this.keys.awaiting, { score: Date.now() / 1000, value: sessionId });
  }
  async completeSession(sessionId, status = 'completed') {
    await this.publish('session.completed', { session_id: sessionId, status });
    this.open.delete(sessionId);
    await this.client.zRem(this.keys.heartbeats, sessionId); // two keys, maybe two masters: two commands
    await this.client.zRem(this.keys.awaiting, sessionId);
  }
  async close() { // sessions still open lose their heartbeat: reconcile closes them once idle
    clearInterval(this.timer);
    if (this.open.size) await this.client.zRem(this.keys.heartbeats, [...this.open]);
    await this.client.close();
  }
}

async function connect(url) {
  const probe = await createClient({ url }).connect();
  if (!/cluster_enabled:1/.test(await probe.info('cluster'))) return { client: probe, cluster: false };
  probe.destroy();
  return { client: await createCluster({ rootNodes: [{ url }] }).connect(), cluster: true };
}

async function agent(producer, o) { // what an agent does: sessions of rounds, each calling tools
  const sessions = [];
  for (let s = 0; s < o.sessions; s++) {
    const sessionId = `${o.run}-s${s}`;
    sessions.push(sessionId);
    await producer.startSession(sessionId, 'gpt-4o');
    for (let r = 0; r < o.rounds; r++) {
      const round = { round_id: `${sessionId}-r${r}`, session_id: sessionId };
      await producer.publish('round.started', { ...round, model: 'gpt-4o' });
      for (let t = 0; t < o.tools; t++) {
        const call = { tool_call_id: `${round.round_id}-t${t}`, ...round };
        await producer.publish('tool.started', { ...call, tool_name: t % 2 ? 'read_file' : 'grep' });
        await producer.publish('tool.completed', { ...call, success: true, error: null });
      }
      const usage = { prompt_tokens: 100 * (r + 1), completion_tokens: 10 * (r + 1), total_tokens: 110 * (r + 1) };
      await producer.publish('round.completed', { ...round, status: 'success', usage, error: null });
    }
    if (o.keepOpen && s === o.sessions - 1) await producer.awaitingUser(sessionId);
    else await producer.completeSession(sessionId);
  }
  return { sessions, open: o.keepOpen ? sessions.at(-1) : null };
}

function checkConformance(file) { // the repository's worked examples against this file's rules
  const doc = JSON.parse(fs.readFileSync(file, 'utf8'));
  const failures = [];
  const expect = (what, got, want) => { if (JSON.stringify(got) !== JSON.stringify(want)) failures.push(`${what}: ${JSON.stringify(got)} != ${JSON.stringify(want)}`); };
  for (const c of doc.routing) {
    expect(`crc32 ${JSON.stringify(c.id)}`, crc32(c.id), c.crc32);
    c.shard.forEach((want, k) => expect(`shard of ${JSON.stringify(c.id)}, K=${k + 1}`, crc32(c.id) % (k + 1), want));
  }
  for (const e of doc.events) expect(`routing id of ${e.event.type}`, routingId(e.event), e.routing_id);
  for (const [k, tags] of Object.entries(doc.cluster_tags)) expect(`tags K=${k}`, tags.map((_, i) => clusterTag(i, +k)), tags);
  for (const d of doc.deployments) {
    const { streams, heartbeats, awaiting } = keys(d.stream, d.shards, d.cluster);
    expect(`keys of ${d.stream} K=${d.shards} cluster=${d.cluster}`, [streams, heartbeats, awaiting], [d.streams, d.heartbeats, d.awaiting]);
  }
  expect('liveness', [HEARTBEAT_INTERVAL_S, HEARTBEAT_TTL_S], [doc.liveness.heartbeat_interval_s, doc.liveness.heartbeat_ttl_s]);
  failures.forEach((f) => console.error(f));
  console.log(`conformance: ${failures.length ? `${failures.length} failed` : 'every check passed'} (${file})`);
  return failures.length ? 1 : 0;
}

async function main(argv) {
  const arg = (name, fallback) => (argv.includes(name) ? argv[argv.indexOf(name) + 1] : fallback);
  if (argv.includes('--check-conformance')) return checkConformance(arg('--check-conformance'));
  const env = process.env;
  const shards = Number(arg('--shards', env.METRICS_SHARDS || 1));
  if (!Number.isInteger(shards) || shards < 1) throw new Error(`--shards: a whole number from 1, got ${shards}`);
  const { client, cluster } = await connect(arg('--url', env.REDIS_URL || 'redis://127.0.0.1:6379'));
  const producer = new Producer(client, keys(arg('--stream', env.METRICS_STREAM || 'metrics:events'), shards, cluster));
  const o = { sessions: +arg('--sessions', 1), rounds: +arg('--rounds', 2), tools: +arg('--tools', 2),
    run: arg('--run', randomUUID()), keepOpen: argv.includes('--keep-open') };
  console.log(JSON.stringify({ ...(await agent(producer, o)), cluster, streams: producer.keys.streams }));
  if (o.keepOpen) await new Promise((resolve) => ['SIGTERM', 'SIGINT'].forEach((s) => process.once(s, resolve)));
  await producer.close();
  return 0;
}

main(process.argv.slice(2)).then((code) => { process.exitCode = code; },
  (err) => { console.error(`producer: ${err.message}`); process.exit(1); }); // the heartbeat timer would keep it up
