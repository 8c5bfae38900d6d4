import type { Command } from './command.js';
import { migrate } from '../db/migrate.js';

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
];
