import { readFileSync } from 'node:fs';
import type { TLSSocket } from 'node:tls';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { certIdentity, InputError, KachingError, type CertIdentity, type ErrorBody } from '@kaching/contracts';
import type { IngestTlsConfig } from '../config.js';
import { OTLP_CONTENT_TYPES, decodeTraceRequest, encodeFailure, encodeTraceResponse, inflate, type OtlpEncoding, type PartialSuccess } from '../pipeline/otlpWire.js';
import type { IngestCore, Reply } from '../pipeline/ingestCore.js';
import type { IngestMetrics } from '../metrics.js';

export interface HttpDeps {
  core: IngestCore;
  metrics: IngestMetrics;
  bodyLimitBytes: number;
  tls?: IngestTlsConfig;
  ready(): Promise<{ ok: boolean; checks: Record<string, boolean> }>;
}

/** Fastify's own errors mapped onto the catalogue, so every 4xx has the catalogue body. */
function fromFastifyError(err: { code?: string; statusCode?: number; message?: string }): KachingError {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new InputError('BODY_TOO_LARGE');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new InputError('UNSUPPORTED_MEDIA_TYPE', { field: 'content-type', rule: 'enum:application/json' });
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return new InputError('MALFORMED_JSON');
  }
  if (err.statusCode === 413) return new InputError('BODY_TOO_LARGE');
  if (err.statusCode === 415) return new InputError('UNSUPPORTED_MEDIA_TYPE');
  if (err.statusCode && err.statusCode >= 400 && err.statusCode < 500) return new InputError('MALFORMED_JSON', { message: err.message });
  return new KachingError('INTERNAL');
}

const mediaType = (h: string | undefined) => (h ?? '').split(';')[0]!.trim().toLowerCase();

function send(reply: FastifyReply, r: Reply): FastifyReply {
  if (r.headers) reply.headers(r.headers);
  return reply.code(r.status).send(r.body);
}

/** HTTPS options; with a client CA the handshake itself refuses clients without a certificate from it. */
function httpsOptions(tls: IngestTlsConfig) {
  return {
    cert: readFileSync(tls.certFile),
    key: readFileSync(tls.keyFile),
    minVersion: 'TLSv1.2' as const,
    ...(tls.clientCaFile ? { ca: readFileSync(tls.clientCaFile), requestCert: true, rejectUnauthorized: true } : {}),
  };
}

// Parsed once per TLS connection (keep-alive clients send many requests on one).
const peers = new WeakMap<object, CertIdentity | null>();

/** The verified client certificate of the request's connection, or null. */
function peerOf(req: FastifyRequest): CertIdentity | null {
  const socket = req.raw.socket as TLSSocket;
  let id = peers.get(socket);
  if (id === undefined) {
    const raw = socket.authorized ? socket.getPeerCertificate?.()?.raw : undefined;
    id = raw ? certIdentity(raw) : null;
    peers.set(socket, id);
  }
  return id;
}

export function buildHttp(deps: HttpDeps): FastifyInstance {
  const common = { bodyLimit: deps.bodyLimitBytes, logger: false, forceCloseConnections: true } as const;
  const app = (deps.tls ? Fastify({ ...common, https: httpsOptions(deps.tls) }) : Fastify(common)) as unknown as FastifyInstance;
  const mtls = Boolean(deps.tls?.clientCaFile);
  const peer = (req: FastifyRequest) => (mtls ? peerOf(req) : undefined);
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(new InputError('MALFORMED_JSON'), undefined);
    }
  });

  app.setErrorHandler((err, req, reply) => {
    let e = err instanceof KachingError ? err : fromFastifyError(err as { code?: string; statusCode?: number });
    if (e.code === 'UNSUPPORTED_MEDIA_TYPE' && req.url.startsWith('/v1/traces')) {
      const types = Object.values(OTLP_CONTENT_TYPES);
      e = new InputError('UNSUPPORTED_MEDIA_TYPE', { field: 'content-type', rule: `enum:${types.join(',')}`, message: `Send ${types.join(' or ')}` });
    }
    deps.metrics.rejected.inc({ code: e.code, path: 'http' });
    if (e.retryAfterS !== undefined) reply.header('retry-after', String(e.retryAfterS));
    return reply.code(e.status).send(e.toBody());
  });
  app.setNotFoundHandler((_req, reply) => reply.code(404).send(new KachingError('NOT_FOUND').toBody()));

  const auth = (h: string | string[] | undefined) => (Array.isArray(h) ? h[0] : h);
  app.post('/v1/ingest/usage', async (req, reply) =>
    send(reply, await deps.core.handle('usage', req.body, auth(req.headers.authorization), { path: 'http', peer: peer(req) })),
  );
  app.post('/v1/ingest/job-status', async (req, reply) =>
    send(reply, await deps.core.handle('job-status', req.body, auth(req.headers.authorization), { path: 'http', peer: peer(req) })),
  );
  app.post('/v1/ingest/batch', async (req, reply) =>
    send(reply, await deps.core.handle('batch', req.body, auth(req.headers.authorization), { path: 'http', peer: peer(req) })),
  );

  // Own content-type parsers (raw bytes for JSON and protobuf) in an encapsulated context: the other routes keep theirs.
  void app.register(async (otlp) => {
    otlp.removeAllContentTypeParsers();
    otlp.addContentTypeParser([OTLP_CONTENT_TYPES.json, OTLP_CONTENT_TYPES.protobuf], { parseAs: 'buffer' }, (_req, body, done) => done(null, body));
    otlp.post('/v1/traces', async (req, reply) => {
      const encoding: OtlpEncoding = mediaType(req.headers['content-type']) === OTLP_CONTENT_TYPES.protobuf ? 'protobuf' : 'json';
      const ce = req.headers['content-encoding'];
      deps.metrics.otlpRequests.inc({ encoding, compression: String(ce ?? 'identity').toLowerCase() === 'gzip' ? 'gzip' : 'identity' });
      const decode = () => decodeTraceRequest(inflate(req.body as Buffer, Array.isArray(ce) ? ce.join(',') : ce, deps.bodyLimitBytes, encoding), encoding);
      const r = await deps.core.handleOtlp(decode, auth(req.headers.authorization), peer(req));
      if (r.headers) reply.headers(r.headers);
      const body =
        r.status === 200
          ? encodeTraceResponse((r.body as { partialSuccess?: PartialSuccess }).partialSuccess, encoding)
          : encodeFailure(r.status, r.body as ErrorBody, encoding);
      return reply.code(r.status).type(OTLP_CONTENT_TYPES[encoding]).send(body);
    });
  });

  app.get('/metrics', async (_req, reply) => {
    reply.header('content-type', deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
  app.get('/healthz', async () => ({ ok: true }));
  app.get('/readyz', async (_req, reply) => {
    const r = await deps.ready();
    return reply.code(r.ok ? 200 : 503).send(r);
  });
  return app;
}
