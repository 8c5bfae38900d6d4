import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NatsConnection } from '@nats-io/transport-node';
import { ERROR_CATALOGUE, signEvent, type ErrorCode, type UsageEvent } from '@kaching/contracts';
import { loadConfig, signedUsage, start } from '@kaching/ingest';
import { isolatedEnv, type IsolatedEnv } from '../support/isolation.js';
import { seedDeployment, streamCount, type SeededDeployment } from '../../ingest/test/support.js';

// Seeded so a failure names an input that can be replayed; `npm run test:faults` tries ten times as many.
const INPUTS = process.env.KACHING_FAULTS === 'full' ? 5_000 : 520;
const SEED = Number(process.env.KACHING_FUZZ_SEED ?? 20261123);

function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Json = Record<string, any>;
interface BadInput {
  kind: string;
  body: string;
  token: string | undefined;
  contentType?: string;
}

const REQUIRED = [
  'schema', 'deployment_id', 'agent', 'agent.agent_id', 'agent.agent_type', 'node', 'node.node_id', 'node.hostname',
  'job', 'job.job_id', 'job.correlation_id', 'job.ucxl_addr', 'job.started_at', 'job.status', 'metrics',
  'metrics.cpu_seconds', 'metrics.gpu_seconds', 'metrics.ram_mb_peak', 'metrics.context_bytes_written', 'sig', 'sig.signature', 'sig.key_id',
];
const METRICS = ['cpu_seconds', 'gpu_seconds', 'ram_mb_peak', 'disk_io_mb', 'net_in_mb', 'net_out_mb', 'context_reads', 'context_writes', 'context_bytes_read', 'context_bytes_written'];
const UUIDS = ['deployment_id', 'agent.agent_id', 'node.node_id', 'job.job_id'];
const TIMES = ['job.started_at', 'job.ended_at'];

function setPath(o: Json, path: string, v: unknown): void {
  const parts = path.split('.');
  let cur = o;
  for (const p of parts.slice(0, -1)) cur = cur[p];
  if (v === undefined) delete cur[parts.at(-1)!];
  else cur[parts.at(-1)!] = v;
}

/** Every generator returns an input that must be refused; none can be a valid event by construction. */
function generators(D: SeededDeployment, other: SeededDeployment, rnd: () => number) {
  const pick = <T,>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const fresh = (): UsageEvent => signedUsage(D.deploymentId, D.keyId, D.secretKey, { correlationId: `fz-${randomUUID()}` });
  const resign = (e: Json): Json => {
    const { sig: _s, ...u } = e;
    return signEvent(u as never, D.keyId, D.secretKey);
  };
  const garbage = () => pick(['', 'x', '-1', 'null', '1e999', 'ü'.repeat(3), '\u0000', '../../etc', 'DROP TABLE job;', String(rnd())]);
  const body = (e: unknown) => JSON.stringify(e);
  const ok = D.token;
  return [
    (): BadInput => {
      const path = pick(REQUIRED);
      // sig members are removed after signing (re-signing would put them back)
      const e: Json = fresh();
      setPath(e, path, undefined);
      return { kind: 'missing field', body: body(path.startsWith('sig') ? e : resign(e)), token: ok };
    },
    (): BadInput => {
      const e: Json = fresh();
      const where = pick(['', 'agent.', 'node.', 'job.', 'metrics.']);
      setPath(e, `${where}unexpected_${Math.floor(rnd() * 1e6)}`, garbage());
      return { kind: 'unknown field', body: body(resign(e)), token: ok };
    },
    (): BadInput => {
      const e: Json = fresh();
      setPath(e, `metrics.${pick(METRICS)}`, pick([-1, -1e-9, 1e16, 1e300, '12', null, true, [], {}]));
      return { kind: 'bad metric', body: body(resign(e)), token: ok };
    },
    (): BadInput => { const e: Json = fresh(); setPath(e, pick(UUIDS), garbage()); return { kind: 'bad uuid', body: body(resign(e)), token: ok }; },
    (): BadInput => {
      const e: Json = fresh();
      setPath(e, pick(TIMES), pick(['yesterday', '2026-13-01T00:00:00Z', '2026-11-23 10:00', '', 0, '9999-01-01T00:00:00Z']));
      return { kind: 'bad timestamp', body: body(resign(e)), token: ok };
    },
    (): BadInput => {
      const e: Json = fresh();
      setPath(e, pick(['agent.agent_type', 'job.correlation_id', 'job.ucxl_addr', 'node.hostname']), 'y'.repeat(2000 + Math.floor(rnd() * 8000)));
      return { kind: 'oversize string', body: body(resign(e)), token: ok };
    },
    (): BadInput => {
      const e: Json = fresh();
      e.metrics.cpu_seconds = e.metrics.cpu_seconds + 1 + Math.floor(rnd() * 100); // changed after signing
      return { kind: 'tampered after signing', body: body(e), token: ok };
    },
    (): BadInput => {
      const e: Json = fresh();
      e.sig.signature = pick([
        Buffer.from(Array.from({ length: 64 }, () => Math.floor(rnd() * 256))).toString('base64'),
        '!!!not-base64!!!', e.sig.signature.slice(0, 20), '', e.sig.signature.replace(/[A-Za-z]/, '*'),
      ]);
      return { kind: 'bad signature', body: body(e), token: ok };
    },
    (): BadInput => { const e: Json = fresh(); e.sig.key_id = `nokey-${Math.floor(rnd() * 1e6)}`; return { kind: 'unknown key', body: body(e), token: ok }; },
    (): BadInput => {
      const e = signedUsage(D.deploymentId, other.keyId, other.secretKey, { correlationId: `fz-${randomUUID()}` });
      return { kind: "another deployment's key", body: body(e), token: ok };
    },
    (): BadInput => ({
      kind: 'bad token',
      body: body(fresh()),
      // header-legal values only: the HTTP client itself refuses control characters in a header
      token: pick([undefined, '', 'kt_', `kt_${randomUUID().replace(/-/g, '')}_${'A'.repeat(43)}`, 'Bearer', 'x'.repeat(5000), D.token.slice(0, -2), other.token]),
    }),
    (): BadInput => {
      const s = body(fresh());
      return { kind: 'broken encoding', body: pick([s.slice(0, Math.floor(rnd() * s.length)), s + '}', `[${s}]`, s.replace('{', '{,'), '\uFEFF\uFFFE', 'null', '42']), token: ok };
    },
    (): BadInput => ({ kind: 'wrong content type', body: body(fresh()), token: ok, contentType: pick(['text/plain', 'application/xml', 'multipart/form-data']) }),
  ];
}

describe('abuse: generated bad inputs against the real ingest', () => {
  let env: IsolatedEnv;
  let svc: Awaited<ReturnType<typeof start>>;
  let nc: NatsConnection;
  let D: SeededDeployment;
  let other: SeededDeployment;

  beforeAll(async () => {
    env = await isolatedEnv();
    svc = await start({ ...loadConfig(env.env), port: 0, host: '127.0.0.1', rateLimitPerSec: 0, logLevel: 'silent' });
    nc = await env.nats();
    D = await seedDeployment(env.pool, { keyId: 'fuzz-key' });
    other = await seedDeployment(env.pool, { keyId: 'other-key' });
  });
  afterAll(async () => {
    await svc?.close();
    await env?.cleanup();
  });

  it(`refuses ${INPUTS} generated bad inputs, each with a 4xx carrying its catalogue code, and appends nothing`, async () => {
    const rnd = prng(SEED);
    const gens = generators(D, other, rnd);
    const before = await streamCount(nc, env.names.eventsStream);
    const inputs = Array.from({ length: INPUTS }, (_, i) => gens[i % gens.length]!());
    const byCode = new Map<string, number>();
    const failures: string[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < inputs.length) {
          const i = next++;
          const input = inputs[i]!;
          const headers: Record<string, string> = { 'content-type': input.contentType ?? 'application/json' };
          if (input.token !== undefined) headers.authorization = `Bearer ${input.token}`;
          const r = await fetch(`${svc.url}/v1/ingest/usage`, { method: 'POST', headers, body: input.body });
          const text = await r.text();
          let code: string | undefined;
          try {
            code = JSON.parse(text)?.error?.code;
          } catch {
            code = undefined;
          }
          const entry = code ? ERROR_CATALOGUE[code as ErrorCode] : undefined;
          if (r.status < 400 || r.status >= 500 || !entry || entry.status !== r.status) {
            failures.push(`#${i} ${input.kind}: ${r.status} ${text.slice(0, 160)}`);
          }
          byCode.set(code ?? '?', (byCode.get(code ?? '?') ?? 0) + 1);
        }
      }),
    );
    const after = await streamCount(nc, env.names.eventsStream);
    const line = `abuse: inputs tried ${INPUTS}, refused with a catalogue 4xx ${INPUTS - failures.length}, appended ${after - before} (seed ${SEED}; codes ${[...byCode].map(([c, n]) => `${c}=${n}`).join(' ')})`;
    console.log(line);
    await mkdir('test/artifacts', { recursive: true });
    await writeFile('test/artifacts/abuse-summary.txt', line + '\n');
    expect(failures).toEqual([]);
    expect(after).toBe(before);
    // the inputs really span the catalogue: schema, signature, key, token and encoding refusals all occur
    for (const c of ['FIELD_REQUIRED', 'FIELD_UNKNOWN', 'SIGNATURE_INVALID', 'KEY_UNKNOWN', 'TOKEN_INVALID', 'MALFORMED_JSON']) {
      expect(byCode.get(c) ?? 0, c).toBeGreaterThan(0);
    }
  });
});
