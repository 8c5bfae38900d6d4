import { randomUUID } from 'node:crypto';
import { open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { SignedEvent } from './protocol/mod.js';
import type { EventSigner } from './signer.js';
import { TransportError, type ItemOutcome, type Transport } from './transport.js';

/**
 * An event ingest refused for good (a 4xx other than 408/429), kept with the refusal so an operator can see
 * why and send it again once the cause is fixed (a key registered, a revocation reconsidered, a token
 * scope granted…). Leaving the disk queue and entering the dead-letter file happen in that order only after
 * the dead-letter write is fsync'd: a refused event is never silently gone.
 */
export interface DeadLetter {
  /** Local id of this entry (a replay removes or rewrites entries by it). */
  id: string;
  dead_lettered_at: string;
  correlation_id: string;
  kind: 'usage' | 'job_status';
  status: number;
  code: string;
  message: string;
  field?: string;
  /** How many times ingest refused it (1, plus one per replay refused again). */
  refusals: number;
  event: SignedEvent;
}

export interface DeadLetterStore {
  /** The file, when there is one (else entries live as long as the process). */
  readonly path: string | undefined;
  add(entries: DeadLetter[]): Promise<void>;
  list(): Promise<DeadLetter[]>;
  /** Removes `resolved` ids and replaces entries of the same id with `updated`, in one atomic step. */
  settle(resolved: ReadonlySet<string>, updated: readonly DeadLetter[]): Promise<void>;
  count(): Promise<number>;
}

export function deadLetterFrom(event: SignedEvent, outcome: ItemOutcome, now = new Date()): DeadLetter {
  const d: DeadLetter = {
    id: randomUUID(),
    dead_lettered_at: now.toISOString(),
    correlation_id: event.job.correlation_id,
    kind: event.schema === 'kaching.v1.job_status' ? 'job_status' : 'usage',
    status: outcome.status,
    code: outcome.error?.code ?? `HTTP_${outcome.status}`,
    message: outcome.error?.message ?? 'refused by ingest',
    refusals: 1,
    event,
  };
  if (outcome.error?.field) d.field = outcome.error.field;
  return d;
}

export class MemoryDeadLetters implements DeadLetterStore {
  readonly path = undefined;
  private entries: DeadLetter[] = [];
  async add(entries: DeadLetter[]): Promise<void> {
    this.entries.push(...entries);
  }
  async list(): Promise<DeadLetter[]> {
    return [...this.entries];
  }
  async settle(resolved: ReadonlySet<string>, updated: readonly DeadLetter[]): Promise<void> {
    this.entries = applySettle(this.entries, resolved, updated);
  }
  async count(): Promise<number> {
    return this.entries.length;
  }
}

/**
 * JSON Lines, one DeadLetter per line, appended and fsync'd. The agent appends while an operator's
 * `kaching agent dead-letter replay` may rewrite the file from another process: both hold `<file>.lock`
 * (created exclusively; a lock whose process is gone is broken) for the few milliseconds they touch it.
 */
export class DeadLetterFile implements DeadLetterStore {
  private chain: Promise<unknown> = Promise.resolve();
  constructor(readonly path: string) {}

  add(entries: DeadLetter[]): Promise<void> {
    if (!entries.length) return Promise.resolve();
    return this.locked(async () => {
      const fh = await open(this.path, 'a', 0o600);
      try {
        await fh.writeFile(entries.map((e) => JSON.stringify(e) + '\n').join(''));
        await fh.sync();
      } finally {
        await fh.close();
      }
    });
  }

  list(): Promise<DeadLetter[]> {
    return this.locked(() => this.read());
  }

  async count(): Promise<number> {
    return (await this.list()).length;
  }

  settle(resolved: ReadonlySet<string>, updated: readonly DeadLetter[]): Promise<void> {
    return this.locked(async () => {
      const next = applySettle(await this.read(), resolved, updated);
      const tmp = `${this.path}.tmp`;
      const fh = await open(tmp, 'w', 0o600);
      try {
        await fh.writeFile(next.map((e) => JSON.stringify(e) + '\n').join(''));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, this.path);
      const dir = await open(path.dirname(this.path), 'r');
      await dir.sync().finally(() => dir.close());
    });
  }

  private async read(): Promise<DeadLetter[]> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    const out: DeadLetter[] = [];
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      try {
        out.push(JSON.parse(line) as DeadLetter);
      } catch {
        // a torn last line (crash mid-append, never acknowledged): its event is still in the queue
      }
    }
    return out;
  }

  /** Serialised in this process, exclusive across processes. */
  private locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = async () => {
      const lock = `${this.path}.lock`;
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          await writeFile(lock, String(process.pid), { flag: 'wx' });
          break;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
          const owner = Number(await readFile(lock, 'utf8').catch(() => '')) || 0;
          if (owner && !processAlive(owner)) {
            await rm(lock, { force: true });
            continue;
          }
          if (Date.now() > deadline) throw new Error(`${lock} is held by process ${owner || '?'}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      }
      try {
        return await fn();
      } finally {
        await rm(lock, { force: true });
      }
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function applySettle(entries: DeadLetter[], resolved: ReadonlySet<string>, updated: readonly DeadLetter[]): DeadLetter[] {
  const byId = new Map(updated.map((u) => [u.id, u]));
  return entries.filter((e) => !resolved.has(e.id)).map((e) => byId.get(e.id) ?? e);
}

export interface ReplayOptions {
  /** Only entries this returns true for (default: all). */
  filter?(d: DeadLetter): boolean;
  /**
   * Sign each event again with this signer before sending (e.g. after its key was revoked for compromise, with
   * the agent's new key). The signature is not part of an event's identity, so a re-signed event is still the
   * same event to ingest and to the projections.
   */
  resign?: EventSigner;
  batchSize?: number;
}

export interface ReplayReport {
  /** Entries sent. */
  sent: number;
  /** Accepted now (202) or already in the stream (200 duplicate): removed from the dead-letter file. */
  accepted: number;
  duplicates: number;
  /** Refused again: kept, with the new refusal. */
  refused: number;
  /** Not answered (network, 5xx, 429): kept unchanged, replay again later. */
  unanswered: number;
  refusedCodes: Record<string, number>;
}

/**
 * Sends dead letters to ingest again. An entry leaves the file only after ingest accepted it; a crash in the
 * middle resends a few, which ingest answers as duplicates.
 */
export async function replayDeadLetters(store: DeadLetterStore, transport: Transport, opts: ReplayOptions = {}): Promise<ReplayReport> {
  const report: ReplayReport = { sent: 0, accepted: 0, duplicates: 0, refused: 0, unanswered: 0, refusedCodes: {} };
  const all = (await store.list()).filter((d) => opts.filter?.(d) ?? true);
  const size = Math.max(1, opts.batchSize ?? 200);
  for (let i = 0; i < all.length; i += size) {
    const chunk = all.slice(i, i + size);
    const events = chunk.map((d) => (opts.resign ? resign(d.event, opts.resign) : d.event));
    report.sent += chunk.length;
    const resolved = new Set<string>();
    const updated: DeadLetter[] = [];
    let outcomes: ItemOutcome[];
    try {
      const o = await transport.sendBatch(events);
      outcomes = o.kind === 'items' ? o.items : chunk.map(() => ({ status: o.status, ...(o.error ? { error: o.error } : {}) }));
    } catch (e) {
      if (!(e instanceof TransportError)) throw e;
      report.unanswered += chunk.length;
      continue;
    }
    outcomes.forEach((o, j) => {
      const d = chunk[j]!;
      if (o.status >= 200 && o.status < 300) {
        resolved.add(d.id);
        report.accepted++;
        if (o.duplicate) report.duplicates++;
      } else if (isPermanentStatus(o.status)) {
        const again = deadLetterFrom(events[j]!, o);
        updated.push({ ...again, id: d.id, refusals: d.refusals + 1 });
        report.refused++;
        report.refusedCodes[again.code] = (report.refusedCodes[again.code] ?? 0) + 1;
      } else report.unanswered++;
    });
    await store.settle(resolved, updated);
  }
  return report;
}

function resign(event: SignedEvent, signer: EventSigner): SignedEvent {
  const { sig: _old, ...unsigned } = event;
  return signer.sign(unsigned as never) as SignedEvent;
}

/** A 4xx that sending again cannot change (408 timeout and 429 rate limit are transient). */
export function isPermanentStatus(status: number): boolean {
  return status >= 400 && status < 500 && status !== 429 && status !== 408;
}
