import { request } from 'node:https';
import { HQ_METRIC_FIELDS, HQ_POLICY, type HqRollupRow } from '@kaching/contracts';
import type { IssuedCert } from '../../test/support/pki.js';

export interface HttpsAnswer {
  status: number;
  json: any;
}

/** POST over HTTPS with an optional client certificate; rejects when the TLS handshake fails. */
export function postTls(url: string, body: unknown, opts: { ca: Buffer; client?: IssuedCert }): Promise<HttpsAnswer> {
  const payload = Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        ca: opts.ca,
        ...(opts.client ? { cert: opts.client.cert, key: opts.client.key } : {}),
        headers: { 'content-type': 'application/json', 'content-length': payload.length },
        agent: false,
      },
      (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => {
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = text;
          }
          resolve({ status: res.statusCode!, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}

/** A policy-conformant row with every metric set to `value`. */
export function row(deployment: string, day: string, revision: number, value = '1', over: Partial<HqRollupRow> = {}): HqRollupRow {
  const r: Record<string, unknown> = { deployment, org: 'a'.repeat(64), day, revision, deleted: false };
  for (const f of HQ_METRIC_FIELDS) r[f] = value;
  return { ...(r as HqRollupRow), ...over };
}

export function push(installationId: string, rows: HqRollupRow[]) {
  return { policy: HQ_POLICY, installation_id: installationId, rows };
}

export async function waitFor(cond: () => Promise<boolean>, timeoutMs = 60_000, what = 'condition'): Promise<void> {
  const t0 = Date.now();
  while (!(await cond())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
