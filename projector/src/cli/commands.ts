import { connectNats, createPool, names, PROJECTIONS, UsageError, type Command, type ProjectionName } from '@kaching/contracts';
import { loadConfig } from '../config.js';
import { replay, replayPhaseText } from '../replay.js';
import { start } from '../service.js';
import { collectStatus, formatStatus } from '../status.js';
import { verifyProjections } from '../verify.js';

function projectionArg(v: string | undefined): ProjectionName {
  if (!v || !PROJECTIONS.includes(v as ProjectionName)) throw new UsageError(`projection must be one of ${PROJECTIONS.join(', ')}`);
  return v as ProjectionName;
}

export const commands: Command[] = [
  {
    name: 'replay',
    summary: 'Rebuild a projection from the archive and the stream into shadow tables, then swap atomically (reads continue)',
    positionals: [{ name: 'projection', description: 'raw | rollups | concurrency', required: true }],
    options: {
      'from-seq': { type: 'string', description: 'start at this stream sequence (rebuilt tables hold events from here on)' },
      since: { type: 'string', description: 'start at the first event stored at or after this RFC 3339 time' },
      'batch-size': { type: 'string', description: 'events per transaction while catching up with what arrives during the rebuild', default: '2000' },
      'accept-history-loss': { type: 'boolean', description: 'rebuild even though neither the archive nor the stream holds messages the live tables count (their history is then gone)' },
    },
    async run(ctx) {
      const projection = projectionArg(ctx.positionals[0]);
      const fromRaw = ctx.args['from-seq'];
      const since = ctx.args.since;
      if (fromRaw !== undefined && since !== undefined) throw new UsageError('give --from-seq or --since, not both');
      let fromSeq: number | undefined;
      if (typeof fromRaw === 'string') {
        fromSeq = Number(fromRaw);
        if (!Number.isInteger(fromSeq) || fromSeq < 1) throw new UsageError('--from-seq must be a positive integer');
      }
      if (typeof since === 'string' && Number.isNaN(Date.parse(since))) throw new UsageError('--since must be an RFC 3339 time');
      const batchSize = Number(ctx.args['batch-size'] ?? 2000);
      if (!Number.isInteger(batchSize) || batchSize < 1) throw new UsageError('--batch-size must be a positive integer');
      let lastReport = 0;
      const r = await replay(ctx.config, projection, {
        fromSeq,
        since: typeof since === 'string' ? since : undefined,
        batchSize,
        acceptHistoryLoss: ctx.args['accept-history-loss'] === true,
        signal: ctx.signal,
        onProgress(p) {
          if (Date.now() - lastReport < 1000 && p.pending > 0) return;
          lastReport = Date.now();
          ctx.progress(p.phase === 'build'
            ? `replay ${p.projection}: building shadow tables from ${p.applied} events (up to seq ${p.seq})`
            : `replay ${p.projection} (${p.phase}): seq ${p.seq}, ${p.applied} events, ${p.pending} to go, ${Math.round(p.eventsPerSecond)} ev/s`);
        },
      });
      return {
        data: r,
        text: `replayed ${r.projection}: ${r.events} events${r.archived ? ` (${r.archived} from the archive)` : ''} up to seq ${r.lastSeq} in ${r.seconds.toFixed(1)} s (${Math.round(r.eventsPerSecond)} ev/s), swapped by ${r.swap} (${replayPhaseText(r.phases)})`,
      };
    },
  },
  {
    name: 'verify-projections',
    summary: 'Recompute rollups and the concurrency index from raw samples and report every difference (exit 1 if any)',
    options: { since: { type: 'string', description: 'only buckets from this time (default: the raw retention window)' } },
    async run(ctx) {
      const cfg = loadConfig();
      const since = typeof ctx.args.since === 'string'
        ? ctx.args.since
        : new Date(Date.now() - (cfg.retentionDays - 1) * 86_400_000).toISOString().slice(0, 10) + 'T00:00:00Z';
      const pool = createPool({ databaseUrl: ctx.config.databaseUrl, namespace: ctx.config.namespace, max: 1 });
      try {
        const diffs = await verifyProjections(pool, { since });
        const text = diffs.length === 0
          ? `projections match raw samples (since ${since})`
          : `${diffs.length} difference(s):\n` + diffs.slice(0, 50).map((d) => `  ${d.table} ${JSON.stringify(d.key)} expected ${JSON.stringify(d.expected)} actual ${JSON.stringify(d.actual)}`).join('\n');
        return { data: { since, differences: diffs }, text, exitCode: diffs.length ? 1 : 0 };
      } finally {
        await pool.end();
      }
    },
  },
  {
    name: 'status',
    summary: 'Stream, consumers, checkpoints and lag at a glance',
    async run(ctx) {
      const n = names(ctx.config.namespace);
      const nc = await connectNats(ctx.config.natsUrl, { name: 'kaching-status', timeout: 3000 }).catch(() => null);
      const pool = createPool({ databaseUrl: ctx.config.databaseUrl, namespace: ctx.config.namespace, max: 1 });
      try {
        const s = await collectStatus(nc, pool, n);
        return { data: s, text: formatStatus(s) };
      } finally {
        await nc?.close().catch(() => undefined);
        await pool.end().catch(() => undefined);
      }
    },
  },
  {
    name: 'projector',
    summary: 'Run the projector alone (PROJECTOR_PROJECTIONS=raw,rollups,concurrency selects which)',
    async run(ctx) {
      const cfg = { ...loadConfig(), ...ctx.config };
      const h = await start(cfg);
      ctx.progress(`projector running (${cfg.projections.join(', ')}), metrics at ${h.url}/metrics`);
      await new Promise<void>((resolve) => {
        if (ctx.signal.aborted) resolve();
        else ctx.signal.addEventListener('abort', () => resolve(), { once: true });
      });
      await h.close();
      return { data: { stopped: true }, text: 'projector stopped' };
    },
  },
];
