import type { FastifyInstance } from 'fastify';
import { withOrg, type ApiContext } from '../context.js';
import { date, uuid } from '../schemas.js';
import { usageReport, type ReportQuery } from '../../routines/report.js';
import { renderUsagePdf } from '../../report/pdf.js';

export function reportRoutes(app: FastifyInstance, ctx: ApiContext): void {
  app.get<{ Querystring: ReportQuery }>(
    '/v1/reports/usage.pdf',
    {
      config: { auth: 'read' },
      schema: {
        summary: 'Usage and cost report of a deployment over local days, as PDF: utilisation totals, total cost, cost by model, by agent type, top tags, alerts',
        tags: ['usage'],
        querystring: {
          type: 'object', required: ['deployment_id', 'from', 'to'], additionalProperties: false,
          properties: {
            deployment_id: uuid,
            from: { ...date, description: "first local day of the deployment's time zone (inclusive)" },
            to: { ...date, description: 'the local day after the last one (exclusive), as in /v1/costs; at most 367 days after from' },
          },
        },
        produces: 'application/pdf',
        response: { 200: { description: 'A PDF document', type: 'string' } },
      },
    },
    async (req, reply) => {
      const now = ctx.now();
      // the data is read under row-level security; rendering happens after the transaction is closed
      const report = await withOrg(ctx, req, (c) => usageReport(c, req.query, now.getTime()));
      const pdf = await renderUsagePdf(report, now);
      const name = `kaching-usage-${report.deployment.deployment_id.slice(0, 8)}-${report.period.from}-${report.period.last_day}.pdf`;
      return reply
        .header('content-type', 'application/pdf')
        .header('content-disposition', `attachment; filename="${name}"`)
        .header('cache-control', 'private, no-store')
        .send(pdf);
    },
  );
}
