import { generateKeyPairSync, verify, createPublicKey } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, appendFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { batchSigningBytes, canonicalize, merkleLeafHash, merkleRoot, type BatchSignature, type SignedEvent, type Unsigned, type UsageEvent } from '../src/protocol/mod.js';
import {
  DiskQueue,
  MemoryQueue,
  backoffDelay,
  correlationId,
  crc32,
  createAgent,
  decodeRecords,
  encodeRecord,
  loadAgentConfig,
  parseFlatYaml,
  redactAddr,
  type BatchOutcome,
  type DeliveryError,
  type Transport,
} from '../src/mod.js';

const dirs: string[] = [];
async function tmp(): Promise<string> {
  const d = await mkdtemp(path.join(os.tmpdir(), 'kaching-sdk-'));
  dirs.push(d);
  return d;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const b = (s: string) => Buffer.from(s, 'utf8');
const texts = (q: { peek(n: number): { payload: Buffer }[] }) => q.peek(1000).map((e) => e.payload.toString());

function seedKey(): { secret: string; publicDer: Buffer } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const jwk = privateKey.export({ format: 'jwk' }) as { d: string };
  return { secret: Buffer.from(jwk.d, 'base64url').toString('base64'), publicDer: publicKey.export({ format: 'der', type: 'spki' }) };
}

describe('crc32 and record format', () => {
  it('matches the standard CRC-32 check value', () => {
    expect(crc32(b('123456789'))).toBe(0xcbf43926);
    expect(crc32(b(''))).toBe(0);
  });

  it('encodes length + crc + payload and decodes it back', () => {
    const rec = encodeRecord(b('hello'));
    expect(rec.readUInt32BE(0)).toBe(5);
    expect(rec.readUInt32BE(4)).toBe(crc32(b('hello')));
    const r = decodeRecords(Buffer.concat([rec, encodeRecord(b('world'))]));
    expect(r.records.map((x) => x.payload.toString())).toEqual(['hello', 'world']);
    expect(r.damaged).toBe(false);
  });

  it('stops at a torn or corrupted record', () => {
    const good = encodeRecord(b('a'));
    const torn = encodeRecord(b('bbbb')).subarray(0, 10);
    expect(decodeRecords(Buffer.concat([good, torn]))).toMatchObject({ goodEnd: good.length, damaged: true });
    const flipped = Buffer.from(encodeRecord(b('cc')));
    flipped[9] = flipped[9]! ^ 0xff;
    const r = decodeRecords(Buffer.concat([good, flipped]));
    expect(r.records).toHaveLength(1);
    expect(r.damaged).toBe(true);
  });
});

describe('DiskQueue', () => {
  it('keeps unacknowledged records across reopen and resumes after the fsynced cursor', async () => {
    const dir = await tmp();
    const q = await DiskQueue.open(dir, { maxBytes: 1 << 20, onFull: 'block' });
    await q.append([b('e1'), b('e2')]);
    await q.append([b('e3')]);
    const [first] = q.peek(1);
    await q.ack(first!.id);
    await q.close();
    expect(JSON.parse(await readFile(path.join(dir, 'cursor'), 'utf8'))).toEqual({ segment: 1, offset: 10 });

    const q2 = await DiskQueue.open(dir, { maxBytes: 1 << 20, onFull: 'block' });
    expect(texts(q2)).toEqual(['e2', 'e3']);
    await q2.ack(q2.peek(2)[1]!.id);
    await q2.close();
    const q3 = await DiskQueue.open(dir, { maxBytes: 1 << 20, onFull: 'block' });
    expect(q3.length).toBe(0);
    await q3.close();
  });

  it('cuts a torn tail left by a crash mid-append and keeps appending after it', async () => {
    const dir = await tmp();
    const q = await DiskQueue.open(dir, { maxBytes: 1 << 20, onFull: 'block' });
    await q.append([b('ok')]);
    await q.close();
    const [seg] = (await readdir(dir)).filter((f) => f.startsWith('seg-'));
    await appendFile(path.join(dir, seg!), encodeRecord(b('half-written')).subarray(0, 7));
    const q2 = await DiskQueue.open(dir, { maxBytes: 1 << 20, onFull: 'block' });
    expect(q2.corrupt).toBe(1);
    await q2.append([b('next')]);
    await q2.close();
    const q3 = await DiskQueue.open(dir, { maxBytes: 1 << 20, onFull: 'block' });
    expect(texts(q3)).toEqual(['ok', 'next']);
    expect(q3.corrupt).toBe(0);
    await q3.close();
  });

  it('rolls segments and deletes the ones wholly acknowledged', async () => {
    const dir = await tmp();
    const q = await DiskQueue.open(dir, { maxBytes: 1 << 20, onFull: 'block', segmentBytes: 20 });
    for (let i = 0; i < 6; i++) await q.append([b(`record-${i}`)]);
    expect((await readdir(dir)).filter((f) => f.startsWith('seg-')).length).toBeGreaterThan(2);
    await q.ack(q.peek(5)[4]!.id);
    const left = (await readdir(dir)).filter((f) => f.startsWith('seg-'));
    await q.close();
    const q2 = await DiskQueue.open(dir, { maxBytes: 1 << 20, onFull: 'block', segmentBytes: 20 });
    expect(texts(q2)).toEqual(['record-5']);
    expect(left.length).toBeLessThanOrEqual(2);
    await q2.close();
  });

  it('drop_oldest drops the oldest records when full and counts them', async () => {
    const dir = await tmp();
    const drops: number[] = [];
    const q = await DiskQueue.open(dir, { maxBytes: 30, onFull: 'drop_oldest', onDrop: (n) => drops.push(n) });
    for (const s of ['aaaa', 'bbbb', 'cccc', 'dddd']) await q.append([b(s)]);
    expect(texts(q)).toEqual(['cccc', 'dddd']);
    expect(q.dropped).toBe(2);
    expect(drops.reduce((x, y) => x + y, 0)).toBe(2);
    await q.close();
    const q2 = await DiskQueue.open(dir, { maxBytes: 30, onFull: 'drop_oldest' });
    expect(texts(q2)).toEqual(['cccc', 'dddd']);
    await q2.close();
  });

  it('block makes the append wait until an ack frees space', async () => {
    const q = new MemoryQueue({ maxBytes: 24, onFull: 'block' });
    await q.append([b('aaaa'), b('bbbb')]);
    let done = false;
    const p = q.append([b('cccc')]).then(() => (done = true));
    await new Promise((r) => setTimeout(r, 30));
    expect(done).toBe(false);
    await q.ack(q.peek(1)[0]!.id);
    await p;
    expect(texts(q)).toEqual(['bbbb', 'cccc']);
    expect(q.dropped).toBe(0);
  });
});

describe('backoff', () => {
  it('grows exponentially, is capped, and jitters within [half, full]', () => {
    const o = { baseMs: 100, maxMs: 5000 };
    expect(backoffDelay(0, o, () => 0)).toBe(50);
    expect(backoffDelay(0, o, () => 0.999999)).toBe(100);
    expect(backoffDelay(3, o, () => 0)).toBe(400);
    expect(backoffDelay(30, o, () => 0.999999)).toBe(5000);
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(4, o);
      expect(d).toBeGreaterThanOrEqual(800);
      expect(d).toBeLessThanOrEqual(1600);
    }
  });
});

describe('ids, config, redaction', () => {
  it('derives the same uuid-shaped correlation id from the same (agent, run, step)', () => {
    const a = correlationId('agent-1', 'run-1', 3);
    expect(a).toBe(correlationId('agent-1', 'run-1', '3'));
    expect(a).not.toBe(correlationId('agent-1', 'run-1', 4));
    expect(a).not.toBe(correlationId('agent-1', 'run-2', 3));
    expect(a).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  });

  it('parses the flat YAML config with comments, quotes and lists; env overrides the file', async () => {
    const y = parseFlatYaml(`# agent\ningest_url: "http://x:7070"  # bridge\nmax_batch: 50\nredact_segments:\n  - customer\n  - project\non_full: drop_oldest\n`);
    expect(y).toEqual({ ingest_url: 'http://x:7070', max_batch: '50', redact_segments: ['customer', 'project'], on_full: 'drop_oldest' });
    expect(parseFlatYaml('a: [x, "y z"]')).toEqual({ a: ['x', 'y z'] });
    const dir = await tmp();
    const file = path.join(dir, 'agent.yaml');
    await appendFile(file, 'ingest_url: http://file:7070\ntoken: kt_x\ndeployment_id: d\nkey_id: k\nsecret_key: AAAA\nmax_batch: 50\n');
    const cfg = loadAgentConfig({ file, env: { KACHING_MAX_BATCH: '7', KACHING_REDACT_SEGMENTS: 'customer,task' } });
    expect(cfg).toMatchObject({ ingestUrl: 'http://file:7070', maxBatch: 7, redactSegments: ['customer', 'task'], onFull: 'block' });
    expect(() => loadAgentConfig({ env: { KACHING_TOKEN: 't' } })).toThrow(/missing agent config/);
  });

  it('redacts named ucxl components and keyed path segments', () => {
    expect(redactAddr('ucxl://a1:dev@acme:t9/customer/bob/report', ['customer', 'project'])).toBe(
      'ucxl://a1:dev@[redacted]:t9/customer/[redacted]/report',
    );
    expect(redactAddr('ucxl://a1:dev@acme:t9/x', [])).toBe('ucxl://a1:dev@acme:t9/x');
  });
});

/** A scripted ingest: each call answers from `script` (last entry repeats). */
class FakeTransport implements Transport {
  calls: SignedEvent[][] = [];
  batchSigs: (BatchSignature | undefined)[] = [];
  constructor(private readonly script: ((events: SignedEvent[]) => BatchOutcome | Error)[]) {}
  async sendBatch(events: (SignedEvent | Unsigned<SignedEvent>)[], batchSig?: BatchSignature): Promise<BatchOutcome> {
    this.calls.push(events as SignedEvent[]);
    this.batchSigs.push(batchSig);
    const f = this.script[Math.min(this.calls.length - 1, this.script.length - 1)]!;
    const r = f(events as SignedEvent[]);
    if (r instanceof Error) throw r;
    return r;
  }
  async close() {}
}

describe('KachingAgent delivery', () => {
  const base = () => {
    const k = seedKey();
    return {
      key: k,
      cfg: {
        ingestUrl: 'http://unused',
        token: 'kt_x',
        deploymentId: '00000000-0000-4000-8000-000000000001',
        keyId: 'k1',
        secretKey: k.secret,
        flushIntervalMs: 10,
        maxBatch: 10,
        backoffBaseMs: 1,
        backoffMaxMs: 5,
      },
    };
  };

  it('signs over the canonical JSON without sig, retries 5xx and network errors, reports 4xx once', async () => {
    const { cfg: batchCfg, key } = base();
    const cfg = { ...batchCfg, signing: 'event' as const };
    const { TransportError } = await import('../src/transport.js');
    const t = new FakeTransport([
      () => new TransportError('down'),
      (ev) => ({ kind: 'whole', status: 503 }) as BatchOutcome & { n?: number } & { _?: typeof ev },
      (ev) => ({
        kind: 'items',
        items: ev.map((e) =>
          (e as UsageEvent).job?.ucxl_addr === 'ucxl://bad:x@p:t'
            ? { status: 400, error: { code: 'FIELD_FORMAT', message: 'bad', field: 'job.ucxl_addr' } }
            : { status: 202 },
        ),
      }),
    ]);
    const errors: DeliveryError[] = [];
    const agent = await createAgent(cfg, { transport: t, onError: (e) => errors.push(e) });
    const now = new Date();
    const ok = await agent.emitUsage({ ucxlAddr: 'ucxl://a:b@p:t', step: 1, startedAt: now, endedAt: now, metrics: { cpu_seconds: 1.5 } });
    const bad = await agent.emitUsage({ ucxlAddr: 'ucxl://bad:x@p:t', step: 2, startedAt: now, endedAt: now });
    expect(await agent.flush(5000)).toBe(0);
    await agent.close();
    expect(t.calls.length).toBe(3);
    expect(t.calls.every((c) => c.length === 2)).toBe(true);
    const sent = t.calls[2]![0] as UsageEvent;
    expect(sent.job.correlation_id).toBe(ok.correlationId);
    // Retries resend the identical bytes (same Nats-Msg-Id on the server).
    expect(JSON.stringify(t.calls[0])).toBe(JSON.stringify(t.calls[2]));
    const { sig, ...unsigned } = sent;
    expect(verify(null, Buffer.from(canonicalize(unsigned)), createPublicKey({ key: key.publicDer, format: 'der', type: 'spki' }), Buffer.from(sig.signature, 'base64'))).toBe(true);
    expect(errors).toEqual([expect.objectContaining({ correlationId: bad.correlationId, status: 400, code: 'FIELD_FORMAT' })]);
    expect(agent.stats()).toMatchObject({ produced: 2, accepted: 1, failed: 1, queued: 0, retries: 2 });
  });

  it('signs each batch once (RFC 9162 tree head of the events without sig); a resend is the same bytes and signature', async () => {
    const { cfg, key } = base();
    const { TransportError } = await import('../src/transport.js');
    const t = new FakeTransport([() => new TransportError('down'), (ev) => ({ kind: 'items', items: ev.map(() => ({ status: 202 })) })]);
    const agent = await createAgent(cfg, { transport: t });
    const now = new Date();
    for (let i = 0; i < 3; i++) await agent.emitUsage({ ucxlAddr: 'ucxl://a:b@p:t', step: i, startedAt: now, endedAt: now, tags: { team: 'ml' } });
    expect(await agent.flush(5000)).toBe(0);
    await agent.close();
    const [first, second] = [t.calls[0]!, t.calls[1]!];
    expect(first.every((e) => !('sig' in e))).toBe(true);
    expect(JSON.stringify(first)).toBe(JSON.stringify(second));
    expect(t.batchSigs[0]).toEqual(t.batchSigs[1]);
    const bs = t.batchSigs[1]!;
    expect(bs).toMatchObject({ algo: 'ed25519', key_id: 'k1', tree_size: 3 });
    const root = merkleRoot(second.map((e) => merkleLeafHash(Buffer.from(canonicalize(e)))));
    expect(root.toString('base64')).toBe(bs.root);
    const pk = createPublicKey({ key: key.publicDer, format: 'der', type: 'spki' });
    expect(verify(null, batchSigningBytes(root, 3), pk, Buffer.from(bs.signature, 'base64'))).toBe(true);
    expect(second.map((e) => (e as UsageEvent).tags)).toEqual([{ team: 'ml' }, { team: 'ml' }, { team: 'ml' }]);
  });

  it('falls back to one signature per event when ingest refuses batch_sig (an older ingest)', async () => {
    const { cfg, key } = base();
    const t = new FakeTransport([
      () => ({ kind: 'whole', status: 400, error: { code: 'FIELD_UNKNOWN', message: 'not in the schema', field: 'batch_sig' } }),
      (ev) => ({ kind: 'items', items: ev.map(() => ({ status: 202 })) }),
    ]);
    const errors: DeliveryError[] = [];
    const agent = await createAgent(cfg, { transport: t, onError: (e) => errors.push(e) });
    const now = new Date();
    await agent.emitUsage({ ucxlAddr: 'ucxl://a:b@p:t', step: 1, startedAt: now, endedAt: now });
    expect(await agent.flush(5000)).toBe(0);
    await agent.close();
    expect(errors).toEqual([]);
    expect(t.batchSigs).toEqual([expect.objectContaining({ tree_size: 1 }), undefined]);
    const { sig, ...unsigned } = t.calls[1]![0]!;
    expect(verify(null, Buffer.from(canonicalize(unsigned)), createPublicKey({ key: key.publicDer, format: 'der', type: 'spki' }), Buffer.from(sig.signature, 'base64'))).toBe(true);
  });

  it('job() sends a running heartbeat then the usage event with measured cpu and the fn outcome', async () => {
    const { cfg } = base();
    const t = new FakeTransport([(ev) => ({ kind: 'items', items: ev.map(() => ({ status: 202 })) })]);
    const agent = await createAgent({ ...cfg, agentType: 'llm' }, { transport: t });
    const r = await agent.job('ucxl://a:b@p:t/x', async (ctx) => {
      let x = 0;
      for (let i = 0; i < 2e6; i++) x += i;
      ctx.llm({ model_name: 'm', provider: 'p', tokens_in: 10, tokens_out: 5 });
      ctx.add({ gpu_seconds: 2 });
      return x;
    }, { step: 'build' });
    expect(r).toBeGreaterThan(0);
    await expect(agent.job('ucxl://a:b@p:t/y', () => Promise.reject(new Error('boom')), { step: 'fails' })).rejects.toThrow('boom');
    await agent.flush(5000);
    await agent.close();
    const all = t.calls.flat();
    const kinds = all.map((e) => `${e.schema}:${e.job.status}`);
    expect(kinds).toEqual(['kaching.v1.job_status:running', 'kaching.v1.usage:succeeded', 'kaching.v1.job_status:running', 'kaching.v1.usage:failed']);
    const usage = all[1] as UsageEvent;
    expect(usage.job.correlation_id).toBe(agent.correlationId('build'));
    expect(all[0]!.job.correlation_id).toBe(usage.job.correlation_id);
    expect(usage.metrics.cpu_seconds).toBeGreaterThan(0);
    expect(usage.metrics.gpu_seconds).toBe(2);
    expect(usage.llm).toEqual({ model_name: 'm', provider: 'p', tokens_in: 10, tokens_out: 5 });
  });
});
