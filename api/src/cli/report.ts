import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { asOrg, requireString, UsageError, withCommandPool, type Command } from '@kaching/contracts';
import { checkPeriod, usageReport } from '../routines/report.js';
import { renderUsagePdf } from '../report/pdf.js';
import { usd } from '../report/format.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export const reportCommands: Command[] = [
  {
    name: 'report',
    summary: 'Write the usage and cost report of a deployment as PDF (the same document as GET /v1/reports/usage.pdf)',
    options: {
      deployment: { type: 'string', description: 'Deployment id', required: true },
      from: { type: 'string', description: "First local day, YYYY-MM-DD (the deployment's time zone)", required: true },
      to: { type: 'string', description: 'The local day after the last one, YYYY-MM-DD (exclusive, as in /v1/costs)', required: true },
      out: { type: 'string', description: 'Output file; default: kaching-usage-<deployment>-<from>-<last day>.pdf in the current directory' },
    },
    details:
      'Reads the database as the operator, but the report itself is built under row-level security as the\n' +
      "deployment's organisation, exactly as the API builds it. Example:\n" +
      '  kaching report --deployment 7d0c… --from 2026-11-01 --to 2026-12-01 --out november.pdf',
    async run(ctx) {
      const deployment = requireString(ctx, 'deployment');
      if (!UUID.test(deployment)) throw new UsageError('--deployment must be a uuid');
      const from = requireString(ctx, 'from');
      const to = requireString(ctx, 'to');
      try {
        checkPeriod(from, to);
      } catch (e) {
        throw new UsageError(`--${(e as { field?: string }).field ?? 'from'}: ${(e as Error).message}`);
      }
      const now = new Date();
      const report = await withCommandPool(ctx, async (pool) => {
        const dep = await pool.query<{ org_id: string }>('select org_id from deployment where deployment_id = $1', [deployment]);
        if (!dep.rows[0]) throw Object.assign(new Error(`no deployment ${deployment}`), { code: 'NOT_FOUND' });
        return asOrg(pool, dep.rows[0].org_id, (c) => usageReport(c, { deployment_id: deployment, from, to }, now.getTime()));
      });
      const pdf = await renderUsagePdf(report, now);
      const out = path.resolve(typeof ctx.args.out === 'string' && ctx.args.out ? ctx.args.out : `kaching-usage-${deployment.slice(0, 8)}-${from}-${report.period.last_day}.pdf`);
      await writeFile(out, pdf);
      const data = { file: out, bytes: pdf.length, deployment_id: deployment, from, to, cost_micro_usd: report.cost.cost_micro_usd, cost_usd: report.cost.cost_usd, requests: report.cost.requests };
      return { data, text: `${out}: ${pdf.length} bytes; ${report.deployment.name}, ${from} to ${report.period.last_day}, total cost ${usd(report.cost.cost_micro_usd)}` };
    },
  },
];
