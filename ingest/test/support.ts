import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { cryptoReady, generateSigningKeyPair, issueIngestToken, registerAgentKey } from '@kaching/contracts';

export interface SeededDeployment {
  orgId: string;
  deploymentId: string;
  token: string;
  tokenId: string;
  keyId: string;
  publicKey: Uint8Array;
  secretKey: Uint8Array;
}

/** An org and a deployment inserted directly, plus a usage+jobs token and a registered signing key. */
export async function seedDeployment(pool: pg.Pool, opts: { redact?: string[]; keyId?: string } = {}): Promise<SeededDeployment> {
  await cryptoReady();
  const orgId = randomUUID();
  const deploymentId = randomUUID();
  await pool.query('insert into org (org_id, name) values ($1, $2)', [orgId, `org-${orgId.slice(0, 8)}`]);
  await pool.query('insert into deployment (deployment_id, org_id, name, redact_segments) values ($1, $2, $3, $4)', [
    deploymentId,
    orgId,
    `dep-${deploymentId.slice(0, 8)}`,
    opts.redact ?? [],
  ]);
  const t = await issueIngestToken(pool, { deploymentId, scopes: ['ingest:usage', 'ingest:jobs'], label: 'test' });
  const kp = generateSigningKeyPair();
  const keyId = opts.keyId ?? 'agent-key-1';
  await registerAgentKey(pool, {
    deploymentId,
    keyId,
    publicKey: Buffer.from(kp.publicKey).toString('base64'),
    validFrom: new Date(Date.now() - 24 * 3600_000),
  });
  return { orgId, deploymentId, token: t.token, tokenId: t.tokenId, keyId, publicKey: kp.publicKey, secretKey: kp.secretKey };
}

export async function streamCount(nc: NatsConnection, stream: string): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const si = await jsm.streams.info(stream);
  return si.state.messages;
}

export async function post(url: string, path: string, body: unknown, token?: string, raw = false) {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`${url}${path}`, { method: 'POST', headers, body: raw ? (body as string) : JSON.stringify(body) });
  const text = await r.text();
  let json: any;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: r.status, body: json, headers: r.headers };
}
