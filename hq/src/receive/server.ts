import { readFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import Fastify, { LogController, type FastifyError, type FastifyInstance } from 'fastify';
import type pg from 'pg';
import { AuthError, HQ_PUSH_SCHEMA, KachingError, isKachingError, mapAjvError, type HqPushBody, type Logger } from '@kaching/contracts';
import type { ReceiverConfig } from '../config.js';
import { HQ_PUSH_PATH } from '../sync/client.js';
import { applyRows } from './store.js';
import { installationByCert } from './installations.js';

export interface Receiver {
  url: string;
  app: FastifyInstance;
  close(): Promise<void>;
}

function toKachingError(err: unknown): KachingError {
  if (isKachingError(err)) return err;
  const e = err as FastifyError & { validation?: Parameters<typeof mapAjvError>[0]; code?: string };
  if (e?.validation?.length) return mapAjvError(e.validation);
  switch (e?.code) {
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new KachingError('UNSUPPORTED_MEDIA_TYPE');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new KachingError('BODY_TOO_LARGE');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new KachingError('MALFORMED_JSON');
    case '22003':
      return new KachingError('FIELD_RANGE', { message: 'A value is out of range for HQ’s columns' });
    case 'ECONNREFUSED':
    case '57P01':
      return new KachingError('DATABASE_UNAVAILABLE');
  }
  return new KachingError('INTERNAL', { cause: err });
}

/**
 * HQ's receiving end: HTTPS that demands a client certificate from the configured CA (the TLS
 * handshake refuses anyone else), then maps the certificate's fingerprint to a registered
 * installation. The body must match the redaction policy's schema exactly.
 */
export async function startReceiver(opts: { pool: pg.Pool; config: ReceiverConfig; log: Logger; clock?: () => number }): Promise<Receiver> {
  const { config, pool } = opts;
  const now = () => new Date((opts.clock ?? Date.now)());
  const app = Fastify({
    loggerInstance: opts.log,
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: config.bodyLimit,
    forceCloseConnections: true,
    // refuse what the policy does not list (Fastify's default would silently drop unknown fields)
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
    https: {
      cert: readFileSync(config.tls.certFile),
      key: readFileSync(config.tls.keyFile),
      ca: readFileSync(config.tls.clientCaFile),
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.2',
    },
  }) as unknown as FastifyInstance;
  app.setErrorHandler((err, req, reply) => {
    const k = toKachingError(err);
    if (k.status >= 500) req.log.error({ err }, 'hq push failed');
    void reply.code(k.status).send(k.toBody());
  });
  app.setNotFoundHandler((req, reply) => void reply.code(404).send(new KachingError('NOT_FOUND', { message: `No route ${req.method} ${req.url.split('?')[0]}` }).toBody()));

  app.post<{ Body: HqPushBody }>(HQ_PUSH_PATH, { schema: { body: HQ_PUSH_SCHEMA } }, async (req) => {
    const peer = (req.raw.socket as TLSSocket).getPeerCertificate?.();
    if (!peer?.raw) throw new AuthError('HQ_INSTALLATION_UNKNOWN', { message: 'No client certificate was presented' });
    const installation = await installationByCert(pool, peer.raw);
    if (!installation) throw new AuthError('HQ_INSTALLATION_UNKNOWN');
    if (req.body.installation_id !== installation.installation_id) throw new AuthError('HQ_INSTALLATION_MISMATCH');
    return applyRows(pool, installation.installation_id, req.body.rows, now());
  });
  app.get('/healthz', async () => ({ ok: true }));

  const url = await app.listen({ port: config.port, host: config.host });
  return {
    url,
    app,
    close: () => app.close(),
  };
}
