import { readFile } from 'node:fs/promises';
import { request } from 'node:https';
import type { HqPushAnswer, HqPushBody } from '@kaching/contracts';
import type { SyncConfig } from '../config.js';

/** HQ did not take a push: unreachable, TLS refused, or an error answer (with its catalogue code). */
export class HqPushError extends Error {
  override name = 'HqPushError';
  constructor(
    message: string,
    readonly status?: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

export const HQ_PUSH_PATH = '/v1/hq/rollups';

/**
 * POSTs one batch over mutually authenticated TLS. The certificate files are read for every push, so
 * a renewed certificate is used without a restart.
 */
export async function postRollups(config: SyncConfig, body: HqPushBody, signal?: AbortSignal): Promise<HqPushAnswer> {
  const [cert, key, ca] = await Promise.all([
    readFile(config.tls.certFile),
    readFile(config.tls.keyFile),
    config.tls.caFile ? readFile(config.tls.caFile) : Promise.resolve(undefined),
  ]);
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise<HqPushAnswer>((resolve, reject) => {
    const req = request(
      `${config.url}${HQ_PUSH_PATH}`,
      {
        method: 'POST',
        cert,
        key,
        ...(ca ? { ca } : {}),
        minVersion: 'TLSv1.2',
        headers: { 'content-type': 'application/json', 'content-length': payload.length },
        timeout: config.timeoutMs,
        ...(signal ? { signal } : {}),
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (e) => reject(new HqPushError(`HQ answer broke off: ${e.message}`)));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          if (res.statusCode === 200 && json && typeof json === 'object') return resolve(json as HqPushAnswer);
          const err = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
          reject(new HqPushError(`HQ answered ${res.statusCode}${err?.code ? ` ${err.code}` : ''}: ${err?.message ?? text.slice(0, 200)}`, res.statusCode, err?.code));
        });
      },
    );
    req.on('timeout', () => req.destroy(new HqPushError(`HQ did not answer within ${config.timeoutMs} ms`)));
    req.on('error', (e) => reject(e instanceof HqPushError ? e : new HqPushError(`HQ unreachable: ${e.message}`)));
    req.end(payload);
  });
}
