import type pg from 'pg';
import { currentPartitioning, InstanceRegistration, UnavailableError, type Logger, type PartitionEpoch } from '@kaching/contracts';

/**
 * The partition count this ingest instance publishes with. Read at start and re-read every beat
 * (KACHING_LEASE_MS / 4). The instance registry row tells consumers which count it still uses: the epoch
 * of its oldest append still in flight, so an old-count lane is drained only after its last append landed.
 * An instance that could not renew its row for a whole lease refuses appends (503): consumers may already
 * have retired the lanes of the count it knows.
 */
export class IngestPartitioning {
  private epoch: PartitionEpoch | null = null;
  private readonly inFlight = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly registration: InstanceRegistration;

  constructor(
    private readonly pool: pg.Pool,
    private readonly o: { initial: number; leaseMs: number; retryAfterS: number; log: Logger },
  ) {
    this.registration = new InstanceRegistration(pool, { role: 'ingest', ttlMs: o.leaseMs });
  }

  get instanceId(): string {
    return this.registration.id;
  }

  /**
   * Reads the count and registers, then keeps doing so. Resolves after the first attempt, whether or not
   * Postgres answered: until it does, appends answer 503 (as token checks would).
   */
  async start(): Promise<void> {
    const every = Math.max(100, Math.floor(this.o.leaseMs / 4));
    let stopped = false;
    this.stop = () => (stopped = true);
    const round = async () => {
      await this.refresh().catch((err) => this.o.log.warn({ err: (err as Error).message }, 'could not read the partition count / renew the ingest registration'));
      if (stopped) return;
      this.timer = setTimeout(() => void round(), every);
      this.timer.unref();
    };
    await round();
  }

  private stop: () => void = () => undefined;

  private async refresh(): Promise<void> {
    const next = await currentPartitioning(this.pool, this.o.initial);
    if (this.epoch && next.epoch !== this.epoch.epoch) {
      this.o.log.info({ from: this.epoch.partitions, to: next.partitions, epoch: next.epoch }, 'partition count changed');
    }
    this.epoch = next;
    this.registration.setPartitionEpoch(this.oldestInUse());
    await this.registration.beat();
  }

  private oldestInUse(): number {
    let oldest = this.epoch!.epoch;
    for (const [e, n] of this.inFlight) if (n > 0 && e < oldest) oldest = e;
    return oldest;
  }

  /** Runs one append with the current count (and holds that count "in use" until it settles). */
  async withCount<T>(fn: (partitions: number) => Promise<T>): Promise<T> {
    const epoch = this.epoch;
    if (!epoch || performance.now() > this.registration.validUntil) {
      throw new UnavailableError('STREAM_UNAVAILABLE', {
        retryAfterS: this.o.retryAfterS,
        message: 'this ingest instance could not confirm the partition count with the database; nothing was stored, retry',
      });
    }
    this.inFlight.set(epoch.epoch, (this.inFlight.get(epoch.epoch) ?? 0) + 1);
    try {
      return await fn(epoch.partitions);
    } finally {
      const left = this.inFlight.get(epoch.epoch)! - 1;
      if (left > 0) this.inFlight.set(epoch.epoch, left);
      else this.inFlight.delete(epoch.epoch);
    }
  }

  get partitions(): number | null {
    return this.epoch?.partitions ?? null;
  }

  async close(): Promise<void> {
    this.stop();
    clearTimeout(this.timer);
    await this.registration.remove().catch(() => undefined);
  }
}
