import { randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { cryptoReady, generateSigningKeyPair, type CommandContext, issueIngestToken } from '@kaching/contracts';
import { commands, loadConfig, start, type IngestHandle } from '@kaching/ingest';
import { createAgent, type DeliveryError, type KachingAgent } from '@kaching/sdk';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';
import { streamEvents } from '../../test/e2e/support.js';

// A fleet of SDK agents rotates from key A to key B (windows overlapping) while it keeps sending through
// an ingest outage: A is revoked as superseded while the agents still hold A-signed events in their disk
// queues, and nothing is lost. Then B is revoked for compromise: what B signed is refused, lands in each
// agent's dead-letter file (counted, listed), and is accepted once replayed re-signed with key C.

let env: IsolatedEnv;
let nc: NatsConnection;
let qdir: string;
let deploymentId: string;
let token: string;
let ingest: IngestHandle | undefined;
let port = 0;

interface Key {
  keyId: string;
  publicKey: string;
  secretKey: string;
}
const keys: Record<'A' | 'B' | 'C' | 'D' | 'E', Key> = {} as never;

const cmd = (name: string) => commands.find((c) => c.name === name)!;
function ctx(args: Record<string, string | boolean>): CommandContext {
  return {
    args, positionals: [], json: true, progress: () => undefined, signal: new AbortController().signal,
    config: { natsUrl: env.natsUrl, databaseUrl: env.databaseUrl, namespace: env.namespace, logLevel: 'silent' },
  };
}

async function ingestUp(): Promise<void> {
  ingest = await start({ ...loadConfig(env.env), port, host: '127.0.0.1', verifyWorkers: 0, logLevel: 'silent' });
  port = ingest.port;
}
async function ingestDown(): Promise<void> {
  await ingest?.close();
  ingest = undefined;
}

/** One agent process of the fleet; rolling it to a new key is a restart with a new config on the same queue. */
class Slot {
  agent!: KachingAgent;
  key!: Key;
  readonly errors: DeliveryError[] = [];
  readonly signedBy = new Map<string, string>();
  constructor(
    readonly i: number,
    readonly signing: 'event' | 'batch' = 'event',
    readonly agentId = randomUUID(),
  ) {}
  get queueDir() {
    return path.join(qdir, `agent-${this.signing}-${this.i}`);
  }
  async open(key: Key): Promise<void> {
    this.key = key;
    this.agent = await createAgent(
      {
        ingestUrl: `http://127.0.0.1:${port}`, token, deploymentId, keyId: key.keyId, secretKey: key.secretKey,
        agentType: 'coder', hostname: `node-${this.i}`, agentId: this.agentId, runId: 'rotation',
        queueDir: this.queueDir, signing: this.signing, flushIntervalMs: 30, maxBatch: 25, backoffBaseMs: 20, backoffMaxMs: 300, requestTimeoutMs: 3000,
      },
      { onError: (e) => this.errors.push(e) },
    );
  }
  /** A planned rollover: stop (whatever is queued stays on disk, signed with the old key), start with the new key. */
  async roll(key: Key): Promise<void> {
    await this.agent.close(0);
    await this.open(key);
  }
}

let step = 0;
/** `rounds` rounds in which every agent reports one finished job, a few ms apart, as a fleet does. */
async function send(slots: Slot[], rounds: number): Promise<void> {
  for (let r = 0; r < rounds; r++) {
    step++;
    await Promise.all(
      slots.map(async (s) => {
        const now = new Date();
        const { correlationId } = await s.agent.emitUsage({
          ucxlAddr: `ucxl://coder:dev@proj:task/s${step}`, step, startedAt: new Date(now.getTime() - 2_000), endedAt: now, metrics: { cpu_seconds: 1 },
        });
        s.signedBy.set(correlationId, s.key.keyId);
      }),
    );
    await new Promise((res) => setTimeout(res, 5));
  }
}

beforeAll(async () => {
  await cryptoReady();
  env = await isolatedEnv();
  nc = await env.nats();
  qdir = await mkdtemp(path.join(os.tmpdir(), 'kaching-rotation-'));
  const orgId = randomUUID();
  deploymentId = randomUUID();
  await env.pool.query('insert into org (org_id, name) values ($1, $2)', [orgId, 'rotation']);
  await env.pool.query('insert into deployment (deployment_id, org_id, name) values ($1, $2, $3)', [deploymentId, orgId, 'fleet']);
  token = (await issueIngestToken(env.pool, { deploymentId })).token;
  for (const name of ['A', 'B', 'C', 'D', 'E'] as const) {
    const kp = generateSigningKeyPair();
    keys[name] = { keyId: `fleet-${name}`, publicKey: Buffer.from(kp.publicKey).toString('base64'), secretKey: Buffer.from(kp.secretKey).toString('base64') };
  }
});

afterAll(async () => {
  await ingestDown().catch(() => undefined);
  await rm(qdir, { recursive: true, force: true });
  await env?.cleanup();
});

describe('agent key rotation under load', () => {
  // Per-event signing: each event is signed when it is produced, before it reaches the disk queue, so the
  // key that signed it is the one that was current then.
  it('(per-event signing) rotates A → B with overlapping windows while the fleet sends, loses nothing; a compromise revoke of B refuses what B signed, into the dead-letter file, replayable', async () => {
    const register = (k: Key) => cmd('key register').run(ctx({ deployment: deploymentId, 'key-id': k.keyId, 'public-key': k.publicKey }));
    await register(keys.A);
    await ingestUp();
    const fleet = [0, 1, 2, 3].map((i) => new Slot(i));
    for (const s of fleet) await s.open(keys.A);
    await send(fleet, 10);

    // B is registered (no --valid-from: its window reaches back, overlapping A's) and the fleet rolls over
    // one agent at a time; ingest is down meanwhile, so A-signed events pile up in the agents' disk queues.
    await register(keys.B);
    await ingestDown();
    const sentBeforeOutage = new Set(fleet.flatMap((s) => [...s.signedBy.keys()]));
    for (const s of fleet) {
      await send(fleet, 4);
      await s.roll(keys.B);
    }
    await send(fleet, 4);
    const signedByAWhileDown = fleet.flatMap((s) => [...s.signedBy].filter(([cid, k]) => k === keys.A.keyId && !sentBeforeOutage.has(cid))).length;
    expect(fleet.reduce((n, s) => n + s.agent.stats().queued, 0)).toBeGreaterThan(0);
    // the rollover is done: A is revoked as superseded while its events still wait in the queues
    const revokedA = await cmd('key revoke').run(ctx({ deployment: deploymentId, 'key-id': keys.A.keyId, reason: 'superseded' }));
    expect(revokedA.data).toMatchObject({ reason: 'superseded' });
    await ingestUp();
    await send(fleet, 10);
    for (const s of fleet) expect(await s.agent.flush(30_000)).toBe(0);

    for (const s of fleet) {
      expect(s.errors).toEqual([]);
      expect(s.agent.stats()).toMatchObject({ failed: 0, deadLettered: 0, deadLetters: 0 });
    }
    const produced = new Map(fleet.flatMap((s) => [...s.signedBy]));
    let stored = await streamEvents(nc, env.names);
    expect(stored.correlationIds.length).toBe(produced.size);
    expect(new Set(stored.correlationIds)).toEqual(new Set(produced.keys()));
    // 4 + 3 + 2 + 1 agents still on A for 4 rounds each while ingest was down
    expect(signedByAWhileDown).toBe(40);

    // B leaks. C is registered, the fleet rolls to C; events B signed before the revocation still sit in the
    // queues (ingest down again), and B is revoked for compromise: none of them may be accepted.
    await register(keys.C);
    await ingestDown();
    await send(fleet, 5);
    const signedByBBefore = new Set([...produced.keys()]);
    const byB = new Set(fleet.flatMap((s) => [...s.signedBy].filter(([cid, k]) => k === keys.B.keyId && !signedByBBefore.has(cid)).map(([cid]) => cid)));
    for (const s of fleet) await s.roll(keys.C);
    await send(fleet, 5);
    const revokedB = await cmd('key revoke').run(ctx({ deployment: deploymentId, 'key-id': keys.B.keyId, reason: 'compromise' }));
    expect(revokedB.data).toMatchObject({ reason: 'compromise' });
    await ingestUp();
    for (const s of fleet) expect(await s.agent.flush(30_000)).toBe(0);

    expect(byB.size).toBe(20);
    const refused = fleet.flatMap((s) => s.errors);
    expect(refused.map((e) => e.code)).toEqual([...byB].map(() => 'KEY_REVOKED'));
    expect(new Set(refused.map((e) => e.correlationId))).toEqual(byB);
    stored = await streamEvents(nc, env.names);
    expect(stored.correlationIds.filter((c) => byB.has(c))).toEqual([]);
    // counted and visible: stats, the agent's list, and `kaching agent dead-letter list` on its file
    for (const s of fleet) {
      expect(s.agent.stats()).toMatchObject({ failed: 5, deadLettered: 5, deadLetters: 5 });
      expect(s.errors.every((e) => e.deadLetterPath === path.join(s.queueDir, 'dead-letter.jsonl'))).toBe(true);
      const listed = await cmd('agent dead-letter list').run(ctx({ file: path.join(s.queueDir, 'dead-letter.jsonl') }));
      expect(listed.data).toMatchObject({ count: 5, by_code: { KEY_REVOKED: 5 } });
      expect((await s.agent.deadLetters()).every((d) => d.event.sig.key_id === keys.B.keyId && d.status === 401)).toBe(true);
    }

    // replaying as is changes nothing (the key stays compromised) …
    const asIs = await fleet[0]!.agent.replayDeadLetters();
    expect(asIs).toMatchObject({ sent: 5, accepted: 0, refused: 5, refusedCodes: { KEY_REVOKED: 5 } });
    expect((await fleet[0]!.agent.deadLetters()).every((d) => d.refusals === 2)).toBe(true);
    // … re-signed with the agent's current key C (the operator vouches for these jobs) they are accepted
    for (const s of fleet.slice(1)) {
      expect(await s.agent.replayDeadLetters({ resign: true })).toMatchObject({ sent: 5, accepted: 5, refused: 0, unanswered: 0 });
      expect(s.agent.stats().deadLetters).toBe(0);
    }
    // the operator's way, on the agent's host: `kaching agent dead-letter replay --config <agent config> --resign`
    const s0 = fleet[0]!;
    const configFile = path.join(qdir, 'agent-0.json');
    await writeFile(configFile, JSON.stringify({
      ingest_url: `http://127.0.0.1:${port}`, token, deployment_id: deploymentId, key_id: keys.C.keyId, secret_key: keys.C.secretKey, queue_dir: s0.queueDir,
    }));
    const replayed = await cmd('agent dead-letter replay').run(ctx({ config: configFile, resign: true }));
    expect(replayed.exitCode).toBe(0);
    expect(replayed.data).toMatchObject({ sent: 5, accepted: 5, refused: 0, left: 0 });
    expect((await cmd('agent dead-letter list').run(ctx({ file: path.join(s0.queueDir, 'dead-letter.jsonl') }))).data).toMatchObject({ count: 0 });
    for (const s of fleet) await s.agent.close();
    stored = await streamEvents(nc, env.names);
    const all = new Set(fleet.flatMap((s) => [...s.signedBy.keys()]));
    expect(stored.correlationIds.length).toBe(all.size);
    expect(new Set(stored.correlationIds)).toEqual(all);
  });

  // Batch signing (the SDK's default): events wait in the queue unsigned and are signed, one signature per
  // batch, by the key the agent holds when it sends them. A rollover therefore re-vouches for the queue with
  // the new key, and revoking the old key for compromise refuses none of the agent's own queued events.
  it('(batch signing) a fleet rolled D → E while ingest is down sends its queued events under E; revoking D for compromise refuses none of them', async () => {
    const register = (k: Key) => cmd('key register').run(ctx({ deployment: deploymentId, 'key-id': k.keyId, 'public-key': k.publicKey }));
    await register(keys.D);
    await register(keys.E);
    if (!ingest) await ingestUp();
    const fleet = [0, 1, 2].map((i) => new Slot(i, 'batch'));
    for (const s of fleet) await s.open(keys.D);
    await send(fleet, 5);
    for (const s of fleet) expect(await s.agent.flush(30_000)).toBe(0);
    await ingestDown();
    await send(fleet, 5);
    expect(fleet.reduce((n, s) => n + s.agent.stats().queued, 0)).toBe(15);
    for (const s of fleet) await s.roll(keys.E);
    await send(fleet, 3);
    const revoked = await cmd('key revoke').run(ctx({ deployment: deploymentId, 'key-id': keys.D.keyId, reason: 'compromise' }));
    expect(revoked.data).toMatchObject({ reason: 'compromise' });
    await ingestUp();
    for (const s of fleet) expect(await s.agent.flush(30_000)).toBe(0);
    for (const s of fleet) {
      expect(s.errors).toEqual([]);
      expect(s.agent.stats()).toMatchObject({ failed: 0, deadLettered: 0 });
      await s.agent.close();
    }
    const produced = new Set(fleet.flatMap((s) => [...s.signedBy.keys()]));
    expect(produced.size).toBe(39);
    const stored = new Set((await streamEvents(nc, env.names)).correlationIds);
    for (const c of produced) expect(stored.has(c)).toBe(true);
  });
});
