import type { Msg, NatsConnection, Subscription } from '@nats-io/transport-node';
import { InputError, type Names } from '@kaching/contracts';
import type { Endpoint, IngestCore, Reply } from '../pipeline/ingestCore.js';

/**
 * The NATS ingest service: agents send a request on `names.ingestSubject(deployment)` with the same
 * JSON as over HTTP and `Authorization: Bearer <token>` as a header; the reply is `{status, body, headers?}`.
 * The endpoint comes from the `Kaching-Endpoint` header (usage | job-status | batch) or, if absent,
 * from the body: `{events:[…]}` is a batch, otherwise the `schema` field decides.
 */
export const ENDPOINT_HEADER = 'Kaching-Endpoint';

export function serveNats(nc: NatsConnection, n: Names, core: IngestCore, bodyLimitBytes: number): Subscription {
  const prefix = n.ingestWildcard.slice(0, -1);
  return nc.subscribe(n.ingestWildcard, {
    queue: `${n.namespace}_ingest`,
    callback: (err, msg) => {
      if (err) return;
      void answer(msg).catch(() => undefined);
    },
  });

  async function answer(msg: Msg): Promise<void> {
    const reply = await handle(msg);
    if (msg.reply) msg.respond(JSON.stringify(reply));
  }

  async function handle(msg: Msg): Promise<Reply> {
    const deployment = msg.subject.startsWith(prefix) ? msg.subject.slice(prefix.length) : '';
    const authorization = msg.headers?.get('Authorization') || undefined;
    if (msg.data.length > bodyLimitBytes) return core.errorReply(new InputError('BODY_TOO_LARGE'), 'nats');
    let body: unknown;
    try {
      body = JSON.parse(msg.string());
    } catch {
      return core.errorReply(new InputError('MALFORMED_JSON'), 'nats');
    }
    const declared = msg.headers?.get(ENDPOINT_HEADER);
    let endpoint: Endpoint;
    if (declared === 'usage' || declared === 'job-status' || declared === 'batch') endpoint = declared;
    else if (body && typeof body === 'object' && 'events' in body) endpoint = 'batch';
    else endpoint = (body as { schema?: unknown })?.schema === 'kaching.v1.job_status' ? 'job-status' : 'usage';
    return core.handle(endpoint, body, authorization, { path: 'nats', subjectDeployment: deployment });
  }
}
