import { jetstreamManager } from '@nats-io/jetstream';
import { connectNats } from '../nats/connect.js';
import { UsageError, withCommandPool, type Command } from './command.js';
import { migrate } from '../db/migrate.js';
import { names } from '../names/names.js';
import { partitionEpochs, setPartitioning } from '../consumer/registry.js';
import { pricingCommands } from '../pricing/commands.js';
import { channelCommands } from '../channels/commands.js';
import { featureCommands } from '../features/commands.js';
import { tlsCommands } from '../tls/commands.js';

export const commands: Command[] = [
  {
    name: 'migrate',
    summary: 'Apply SQL migrations to the namespace schema (idempotent, safe to run concurrently)',
    async run(ctx) {
      const r = await migrate({ databaseUrl: ctx.config.databaseUrl, namespace: ctx.config.namespace });
      return {
        data: r,
        text: r.applied.length
          ? `schema "${r.schema}": applied ${r.applied.join(', ')}`
          : `schema "${r.schema}": up to date (${r.alreadyApplied.length} migrations)`,
      };
    },
  },
  {
    name: 'partitions set',
    summary: 'Change the partition count of the events stream (online; every count stays exact)',
    options: { count: { type: 'string', description: 'new partition count (1..1024)', required: true } },
    details: `Ingest instances switch to the new count within KACHING_LEASE_MS/4. Consumers read the new count's lanes
from the stream position this command records; the old count's lanes keep draining until no ingest instance
publishes with it and nothing is left in them, then they are retired.`,
    async run(ctx) {
      const count = Number(ctx.args.count);
      if (!Number.isInteger(count) || count < 1 || count > 1024) throw new UsageError('--count must be an integer in 1..1024');
      const n = names(ctx.config.namespace);
      // the stream position first: everything published with the new count lies after it
      const nc = await connectNats(ctx.config.natsUrl, { name: 'kaching-partitions', timeout: 5000 });
      let lastSeq = 0;
      try {
        const jsm = await jetstreamManager(nc);
        lastSeq = await jsm.streams.info(n.eventsStream).then((si) => si.state.last_seq, () => 0);
      } finally {
        await nc.close();
      }
      return withCommandPool(ctx, async (pool) => {
        const before = (await partitionEpochs(pool)).at(-1);
        const e = await setPartitioning(pool, count, lastSeq);
        if (!e) return { data: { changed: false, partitions: count }, text: `partition count is already ${count}` };
        return {
          data: { changed: true, from: before?.partitions ?? null, partitions: e.partitions, epoch: e.epoch, start_seq: e.startSeq },
          text: `partition count ${before?.partitions ?? '(none)'} -> ${e.partitions} (epoch ${e.epoch}, from stream sequence ${e.startSeq}); old lanes drain, then retire`,
        };
      });
    },
  },
  {
    name: 'partitions show',
    summary: 'The partition count in force and its history',
    async run(ctx) {
      return withCommandPool(ctx, async (pool) => {
        const epochs = await partitionEpochs(pool);
        const cur = epochs.at(-1);
        return {
          data: { partitions: cur?.partitions ?? null, epochs },
          text: cur ? `partitions: ${cur.partitions} (epoch ${cur.epoch}); history: ${epochs.map((e) => `${e.partitions}@${e.startSeq}`).join(' -> ')}` : 'no partition count recorded yet (services write KACHING_PARTITIONS at first start)',
        };
      });
    },
  },
  ...pricingCommands,
  ...channelCommands,
  ...featureCommands,
  ...tlsCommands,
];
