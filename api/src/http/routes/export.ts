import { PassThrough } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance } from 'fastify';
import type pg from 'pg';
import { to as copyTo } from 'pg-copy-streams';
import { withOrg, type ApiContext } from '../context.js';
import { dateTime, uuid } from '../schemas.js';

// cost: integer micro-USD (empty = the model had no price yet) and the same as exact USD; tags as JSON
const COLUMNS = `deployment_id, correlation_id, job_id, agent_id, node_id, agent_type, started_at, ended_at, status,
  cpu_seconds, gpu_seconds, ram_mb_peak, disk_io_mb, net_in_mb, net_out_mb, context_reads, context_writes,
  context_bytes_read, context_bytes_written, model_name, provider, model_tokens_in, model_tokens_out,
  model_tokens_cached_in, model_tokens_cache_write, model_tokens_reasoning, cost_micro_usd,
  (cost_micro_usd / 1000000.0)::numeric(24,6) as cost_usd, price_version, tags`;

interface ExportQuery {
  deployment_id?: string;
  from?: string;
  to?: string;
  agent_type?: string;
}

/** COPY takes no bind parameters: the (schema-validated) values are quoted by the driver. */
function exportSql(c: pg.PoolClient, q: ExportQuery): string {
  const where: string[] = [];
  if (q.deployment_id) where.push(`deployment_id = ${c.escapeLiteral(q.deployment_id)}::uuid`);
  if (q.agent_type) where.push(`agent_type = ${c.escapeLiteral(q.agent_type)}`);
  if (q.from) where.push(`started_at >= ${c.escapeLiteral(q.from)}::timestamptz`);
  if (q.to) where.push(`started_at < ${c.escapeLiteral(q.to)}::timestamptz`);
  const w = where.length ? `where ${where.join(' and ')}` : '';
  return `copy (select ${COLUMNS} from usage_sample ${w} order by started_at, deployment_id, correlation_id) to stdout with (format csv, header true)`;
}

export function exportRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: ExportQuery }>(
    '/v1/usage/export.csv',
    {
      config: { auth: 'read' },
      schema: {
        summary: 'Raw usage samples as CSV, streamed (COPY under row-level security)', tags: ['usage'],
        querystring: {
          type: 'object', additionalProperties: false,
          properties: { deployment_id: uuid, from: dateTime, to: dateTime, agent_type: { type: 'string', maxLength: 200 } },
        },
        produces: 'text/csv',
        response: { 200: { description: 'CSV with a header row', type: 'string' } },
      },
    },
    async (req, reply) => {
      const body = new PassThrough();
      // The RLS transaction stays open while rows flow; COPY's output is pulled only as fast as the
      // HTTP client reads it, so memory holds a few chunks, never the result.
      withOrg(ctx, req, async (c) => {
        const copy = c.query(copyTo(exportSql(c, req.query)));
        copy.on('error', () => undefined); // surfaced through pipeline()
        try {
          await pipeline(copy, body);
        } catch (err) {
          // the client went away mid-COPY: the connection is mid-protocol, so drop it rather than reuse it
          if (!copy.readableEnded) {
            // the resulting "terminated" error is expected; the pool discards the dead client on release
            c.on('error', () => undefined);
            (c as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
          }
          throw err;
        }
      }).catch((err: unknown) => {
        if (!body.destroyed) body.destroy(err as Error);
        req.log.warn({ err }, 'csv export ended early');
      });
      return reply
        .header('content-type', 'text/csv; charset=utf-8')
        .header('content-disposition', 'attachment; filename="kaching-usage.csv"')
        .header('cache-control', 'private, max-age=60')
        .send(body);
    },
  );
}
