import { UsageError, type Command, type CommandContext } from '@kaching/contracts';
// The SDK's side of dead letters (file, replay) lives in the SDK; these operator commands only drive it.
import { deadLetterPathOf, DeadLetterFile, EventSigner, HttpTransport, loadAgentConfig, NatsTransport, replayDeadLetters, type AgentConfig } from '@kaching/sdk';

const str = (ctx: CommandContext, k: string) => (typeof ctx.args[k] === 'string' && ctx.args[k] !== '' ? (ctx.args[k] as string) : undefined);

function agentConfig(ctx: CommandContext): AgentConfig {
  const file = str(ctx, 'config');
  return loadAgentConfig(file ? { file } : {});
}

/** --file, else the agent's own setting (KACHING_AGENT_CONFIG / KACHING_DEAD_LETTER_PATH / KACHING_QUEUE_DIR). */
function deadLetterFile(ctx: CommandContext, cfg?: AgentConfig): string {
  const explicit = str(ctx, 'file');
  if (explicit) return explicit;
  const env = process.env;
  const fromEnv = env.KACHING_DEAD_LETTER_PATH || (env.KACHING_QUEUE_DIR ? deadLetterPathOf({ queueDir: env.KACHING_QUEUE_DIR }) : undefined);
  const p = cfg ? deadLetterPathOf(cfg) : fromEnv;
  if (!p) throw new UsageError('no dead-letter file: pass --file, or the agent config (--config / KACHING_AGENT_CONFIG) with queue_dir or dead_letter_path');
  return p;
}

const common = {
  file: { type: 'string' as const, description: "the agent's dead-letter file (default: from the agent config: dead_letter_path, else <queue_dir>/dead-letter.jsonl)" },
  config: { type: 'string' as const, description: 'agent config file (default KACHING_AGENT_CONFIG, plus KACHING_* env)' },
  code: { type: 'string' as const, description: 'only entries refused with this error code, e.g. KEY_UNKNOWN' },
};

/**
 * `kaching agent dead-letter list|replay`: what an agent's SDK could not deliver because ingest refused it for
 * good, and sending it again once the operator fixed the cause. Run on the agent's host.
 */
export const deadLetterCommands: Command[] = [
  {
    name: 'agent dead-letter list',
    summary: 'Events an agent SDK could not deliver (refused by ingest), with the refusal',
    options: common,
    async run(ctx) {
      const file = str(ctx, 'file') ? deadLetterFile(ctx) : deadLetterFile(ctx, str(ctx, 'config') || process.env.KACHING_AGENT_CONFIG ? agentConfig(ctx) : undefined);
      const code = str(ctx, 'code');
      const entries = (await new DeadLetterFile(file).list()).filter((d) => !code || d.code === code);
      const byCode: Record<string, number> = {};
      for (const d of entries) byCode[d.code] = (byCode[d.code] ?? 0) + 1;
      const lines = entries.map((d) => `${d.dead_lettered_at}  ${d.code} (${d.status})  ${d.kind}  ${d.correlation_id}  key ${d.event.sig.key_id}  ${d.message}`);
      const summary = entries.length
        ? `${entries.length} dead letter(s) in ${file}: ${Object.entries(byCode).map(([c, n]) => `${c} ${n}`).join(', ')}`
        : `no dead letters in ${file}`;
      return { data: { file, count: entries.length, by_code: byCode, entries }, text: [...lines, summary].join('\n') };
    },
  },
  {
    name: 'agent dead-letter replay',
    summary: "Send an agent's dead letters to ingest again (after fixing the cause); accepted ones leave the file",
    options: {
      ...common,
      'correlation-id': { type: 'string', description: 'only this event' },
      resign: { type: 'boolean', description: "sign again with the agent's current key (key_id/key_path of its config), e.g. after a compromise revocation" },
    },
    details:
      'Uses the agent config for where and how to send (ingest_url or nats_url, token). Entries ingest refuses\n' +
      'again stay in the file with the new refusal; unanswered ones (ingest unreachable) stay unchanged.\n' +
      'Exit code 1 when an entry it sent was not accepted.',
    async run(ctx) {
      const cfg = agentConfig(ctx);
      const file = deadLetterFile(ctx, cfg);
      const code = str(ctx, 'code');
      const cid = str(ctx, 'correlation-id');
      const transport = cfg.ingestUrl
        ? new HttpTransport(cfg.ingestUrl, cfg.token, cfg.requestTimeoutMs)
        : new NatsTransport(cfg.natsUrl!, `${cfg.namespace}.ingest.${cfg.deploymentId}`, cfg.token, cfg.requestTimeoutMs);
      const store = new DeadLetterFile(file);
      try {
        const signer = ctx.args.resign === true ? (cfg.secretKey ? new EventSigner(cfg.keyId, cfg.secretKey) : EventSigner.fromFile(cfg.keyId, cfg.keyPath!)) : undefined;
        const r = await replayDeadLetters(store, transport, {
          batchSize: cfg.maxBatch,
          filter: (d) => (!code || d.code === code) && (!cid || d.correlation_id === cid),
          ...(signer ? { resign: signer } : {}),
        });
        const left = (await store.list()).length;
        const refused = Object.entries(r.refusedCodes).map(([c, n]) => `${c} ${n}`).join(', ');
        return {
          data: { file, ...r, left },
          text: `replayed ${r.sent}: accepted ${r.accepted} (${r.duplicates} already stored), refused again ${r.refused}${refused ? ` (${refused})` : ''}, unanswered ${r.unanswered}; ${left} left in ${file}`,
          exitCode: r.refused + r.unanswered ? 1 : 0,
        };
      } finally {
        await transport.close();
      }
    },
  },
];
