import { connectNats, createPool, names, type Command, type CommandContext } from '@kaching/contracts';
import { loadConfig, type ArchiverConfig } from '../config.js';
import { ParquetCodec } from '../segment.js';
import { start } from '../service.js';
import { archiveStatus } from '../status.js';
import { openStore } from '../stores.js';
import { verifyArchive } from '../verify.js';

const configOf = (ctx: CommandContext): ArchiverConfig => ({ ...loadConfig(process.env), ...ctx.config });

export const commands: Command[] = [
  {
    name: 'archiver',
    summary: 'Run the archiver alone (stream -> Parquet segments; until SIGINT/SIGTERM)',
    details: 'KACHING_ARCHIVE_DIR ($KACHING_HOME/archive) or KACHING_ARCHIVE_URL=s3://bucket/prefix, KACHING_ARCHIVE_SEGMENT_EVENTS, KACHING_ARCHIVE_SEGMENT_SECONDS, KACHING_HOT_RETENTION (30d), KACHING_ARCHIVE_LAG_ALERT_EVENTS; see archiver/README.md.',
    async run(ctx) {
      const h = await start(configOf(ctx));
      ctx.progress(`archiver running; metrics at ${h.url}/metrics`);
      await new Promise<void>((r) => (ctx.signal.aborted ? r() : ctx.signal.addEventListener('abort', () => r(), { once: true })));
      await h.close();
      return { data: { stopped: true }, text: 'archiver stopped' };
    },
  },
  {
    name: 'archive verify',
    summary: 'Recompute the archive hash chains; --deep also re-hashes every segment and re-verifies every event signature',
    options: { deep: { type: 'boolean', description: 'Re-hash segment files, read them back and re-verify every signature' } },
    details: 'Exit 0 when the archive is intact, 1 naming the first break (lane, manifest entry, segment file, what is wrong).',
    async run(ctx) {
      const cfg = configOf(ctx);
      const pool = createPool({ databaseUrl: cfg.databaseUrl, namespace: cfg.namespace, applicationName: 'kaching-archive-verify' });
      const codec = new ParquetCodec();
      try {
        const r = await verifyArchive({ store: openStore(cfg), codec, pool, deep: ctx.args.deep === true });
        const events = r.lanes.reduce((a, l) => a + l.events, 0);
        const b = r.first_break;
        const text = b
          ? `archive BROKEN at lane ${b.lane}, entry ${b.index}${b.file ? ` (${b.file})` : ''}: ${b.problem}`
          : `archive intact: ${r.lanes.reduce((a, l) => a + l.segments, 0)} segments, ${events} events in ${r.lanes.length} lanes${r.deep ? `; ${r.events_verified} signatures re-verified, ${r.events_unverifiable} unverifiable (redacted or unsigned)` : ''}`;
        return { data: r, text, exitCode: r.ok ? 0 : 1 };
      } finally {
        await codec.close();
        await pool.end();
      }
    },
  },
  {
    name: 'archive status',
    summary: 'Archive segments, first and last archived sequence, bytes, lag behind the stream, oldest event',
    async run(ctx) {
      const cfg = configOf(ctx);
      const pool = createPool({ databaseUrl: cfg.databaseUrl, namespace: cfg.namespace, applicationName: 'kaching-archive-status' });
      const nc = await connectNats(cfg.natsUrl, { timeout: 3000 }).catch(() => null);
      try {
        const s = await archiveStatus({ store: openStore(cfg), nc, pool, names: names(cfg.namespace) });
        const text = [
          `archive ${s.location}: ${s.segments} segments, ${s.events} events, ${s.bytes} bytes`,
          `  sequences ${s.first_seq ?? '-'}..${s.last_seq ?? '-'}, oldest event ${s.oldest_event_at ?? '-'}`,
          `  lag ${s.lag_events ?? '?'} events behind the stream (${s.stream_first_seq ?? '?'}..${s.stream_last_seq ?? '?'}), archived through ${s.archived_through ?? '?'}${s.alert_since ? `; LAG ALERT since ${s.alert_since}` : ''}`,
        ].join('\n');
        return { data: s, text };
      } finally {
        await nc?.close().catch(() => undefined);
        await pool.end();
      }
    },
  },
];
