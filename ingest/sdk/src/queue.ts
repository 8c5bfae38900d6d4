import { mkdir, open, readdir, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { crc32 } from './crc32.js';

/**
 * The agent's outbox. Every event is appended here before `emitUsage` resolves and leaves only
 * when ingest answered for it, so an unreachable ingest or a crash never loses an event.
 *
 * On disk (`DiskQueue`): append-only segment files `seg-<20 digits>.q`, each a run of records
 *   [u32 BE payload length][u32 BE CRC-32 of payload][payload]
 * fsync'd before the append resolves; and a `cursor` file `{"segment":N,"offset":B}` naming the
 * first record not yet acknowledged, replaced atomically (write tmp, fsync, rename, fsync dir).
 * A crash between "ingest acked" and "cursor written" resends a few records on restart; that is
 * harmless because a resend is byte-identical (same Nats-Msg-Id, same projection identity).
 */
export type OnFull = 'block' | 'drop_oldest';

export interface QueueEntry {
  /** In-memory sequence, increasing in append order. */
  id: number;
  payload: Buffer;
}

export interface EventQueue {
  append(payloads: Buffer[]): Promise<void>;
  /** Up to `n` oldest entries, in order. */
  peek(n: number): QueueEntry[];
  /** Removes every entry with id <= `uptoId` (they were answered). */
  ack(uptoId: number): Promise<void>;
  readonly length: number;
  readonly bytes: number;
  /** Entries dropped by the drop_oldest policy since open. */
  readonly dropped: number;
  /** Records found damaged (bad CRC / torn) on open and skipped. */
  readonly corrupt: number;
  /** Resolves when the queue is non-empty or after `ms`. */
  waitForData(ms: number): Promise<void>;
  close(): Promise<void>;
}

export interface QueueOptions {
  maxBytes: number;
  onFull: OnFull;
  /** Called with the number of entries the drop_oldest policy just removed. */
  onDrop?(count: number): void;
}

export const RECORD_HEADER_BYTES = 8;
const SEGMENT_RE = /^seg-(\d{20})\.q$/;
const segName = (n: number) => `seg-${String(n).padStart(20, '0')}.q`;

export class QueueFullError extends Error {
  override name = 'QueueFullError';
}

/** Encodes one record: length + CRC header, then the payload. */
export function encodeRecord(payload: Buffer): Buffer {
  const h = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
  h.writeUInt32BE(payload.length, 0);
  h.writeUInt32BE(crc32(payload), 4);
  return Buffer.concat([h, payload]);
}

/** Decodes records from `buf` starting at `from`; stops at the first torn or damaged record. */
export function decodeRecords(buf: Buffer, from = 0): { records: { payload: Buffer; end: number }[]; goodEnd: number; damaged: boolean } {
  const records: { payload: Buffer; end: number }[] = [];
  let pos = from;
  while (pos < buf.length) {
    if (pos + RECORD_HEADER_BYTES > buf.length) return { records, goodEnd: pos, damaged: true };
    const len = buf.readUInt32BE(pos);
    const crc = buf.readUInt32BE(pos + 4);
    const end = pos + RECORD_HEADER_BYTES + len;
    if (end > buf.length) return { records, goodEnd: pos, damaged: true };
    const payload = buf.subarray(pos + RECORD_HEADER_BYTES, end);
    if (crc32(payload) !== crc) return { records, goodEnd: pos, damaged: true };
    records.push({ payload: Buffer.from(payload), end });
    pos = end;
  }
  return { records, goodEnd: pos, damaged: false };
}

/** Shared bookkeeping: the bound, the full policy and waiters. */
abstract class BoundedQueue implements EventQueue {
  protected entries: (QueueEntry & { seg: number; end: number; size: number })[] = [];
  protected nextId = 1;
  protected pendingBytes = 0;
  protected droppedCount = 0;
  protected corruptCount = 0;
  protected closed = false;
  private spaceWaiters: (() => void)[] = [];
  private dataWaiters: (() => void)[] = [];

  constructor(protected readonly opts: QueueOptions) {}

  get length() {
    return this.entries.length;
  }
  get bytes() {
    return this.pendingBytes;
  }
  get dropped() {
    return this.droppedCount;
  }
  get corrupt() {
    return this.corruptCount;
  }

  peek(n: number): QueueEntry[] {
    return this.entries.slice(0, n);
  }

  waitForData(ms: number): Promise<void> {
    if (this.entries.length || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        self.dataWaiters = self.dataWaiters.filter((w) => w !== done);
        resolve();
      }
      this.dataWaiters.push(done);
    });
  }

  /**
   * Makes room for `size` more bytes per the policy and reserves them (the caller releases the
   * reservation once the entries are in `entries`, or on failure). Reserving synchronously after the
   * check keeps concurrent appends from overshooting the bound together.
   */
  protected async reserve(size: number): Promise<void> {
    if (size > this.opts.maxBytes) throw new QueueFullError(`an append of ${size} bytes exceeds the queue bound of ${this.opts.maxBytes}`);
    while (this.pendingBytes + this.reservedBytes + size > this.opts.maxBytes) {
      if (this.closed) throw new QueueFullError('queue closed');
      if (this.opts.onFull === 'drop_oldest' && this.entries.length) {
        let freed = 0;
        let n = 0;
        while (n < this.entries.length && this.pendingBytes + this.reservedBytes + size - freed > this.opts.maxBytes) {
          freed += this.entries[n]!.size;
          n++;
        }
        const last = this.entries[n - 1]!;
        await this.removeUpTo(last.id);
        this.droppedCount += n;
        this.opts.onDrop?.(n);
        continue;
      }
      await new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
    }
    this.reservedBytes += size;
  }
  protected reservedBytes = 0;

  async ack(uptoId: number): Promise<void> {
    await this.removeUpTo(uptoId);
  }

  protected async removeUpTo(uptoId: number): Promise<void> {
    let n = 0;
    while (n < this.entries.length && this.entries[n]!.id <= uptoId) n++;
    if (n === 0) return;
    const removed = this.entries.splice(0, n);
    for (const e of removed) this.pendingBytes -= e.size;
    const last = removed[removed.length - 1]!;
    await this.persistCursor(last.seg, last.end);
    const waiters = this.spaceWaiters;
    this.spaceWaiters = [];
    for (const w of waiters) w();
  }

  protected pushEntries(items: { payload: Buffer; seg: number; end: number; size: number }[]): void {
    for (const it of items) {
      this.entries.push({ id: this.nextId++, ...it });
      this.pendingBytes += it.size;
    }
    if (items.length) {
      // Space waiters re-check too: under drop_oldest there is now something to drop.
      const waiters = [...this.dataWaiters, ...this.spaceWaiters];
      this.dataWaiters = [];
      this.spaceWaiters = [];
      for (const w of waiters) w();
    }
  }

  protected wakeAll(): void {
    for (const w of [...this.spaceWaiters, ...this.dataWaiters]) w();
    this.spaceWaiters = [];
    this.dataWaiters = [];
  }

  abstract append(payloads: Buffer[]): Promise<void>;
  protected abstract persistCursor(seg: number, end: number): Promise<void>;
  abstract close(): Promise<void>;
}

/** For agents without a queue directory: same bound and policy, but a crash loses what is queued. */
export class MemoryQueue extends BoundedQueue {
  async append(payloads: Buffer[]): Promise<void> {
    const size = payloads.reduce((s, p) => s + p.length + RECORD_HEADER_BYTES, 0);
    await this.reserve(size);
    this.reservedBytes -= size;
    this.pushEntries(payloads.map((payload) => ({ payload, seg: 0, end: 0, size: payload.length + RECORD_HEADER_BYTES })));
  }
  protected async persistCursor(): Promise<void> {}
  async close(): Promise<void> {
    this.closed = true;
    this.wakeAll();
  }
}

export interface DiskQueueOptions extends QueueOptions {
  /** A new segment starts once the active one reaches this size. */
  segmentBytes?: number;
}

interface PendingWrite {
  payloads: Buffer[];
  size: number;
  resolve(): void;
  reject(e: unknown): void;
}

export class DiskQueue extends BoundedQueue {
  private fh: FileHandle | undefined;
  private activeSeg = 0;
  private activeSize = 0;
  private writes: PendingWrite[] = [];
  private writing = false;
  private cursorChain: Promise<void> = Promise.resolve();
  private readonly segmentBytes: number;

  private constructor(
    readonly dir: string,
    opts: DiskQueueOptions,
  ) {
    super(opts);
    this.segmentBytes = opts.segmentBytes ?? 4 * 1024 * 1024;
  }

  static async open(dir: string, opts: DiskQueueOptions): Promise<DiskQueue> {
    const q = new DiskQueue(dir, opts);
    await q.recover();
    return q;
  }

  private async recover(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    await rm(path.join(this.dir, 'cursor.tmp'), { force: true });
    const segs = (await readdir(this.dir))
      .map((f) => SEGMENT_RE.exec(f))
      .filter((m): m is RegExpExecArray => !!m)
      .map((m) => Number(m[1]))
      .sort((a, b) => a - b);
    let cursor = { segment: segs[0] ?? 1, offset: 0 };
    try {
      const c = JSON.parse(await readFile(path.join(this.dir, 'cursor'), 'utf8')) as { segment: number; offset: number };
      if (Number.isInteger(c.segment) && Number.isInteger(c.offset)) cursor = c;
    } catch {
      /* no cursor yet: nothing was ever acknowledged */
    }
    for (const s of segs) {
      if (s < cursor.segment) {
        await rm(path.join(this.dir, segName(s)), { force: true });
        continue;
      }
      const file = path.join(this.dir, segName(s));
      const buf = await readFile(file);
      const from = s === cursor.segment ? Math.min(cursor.offset, buf.length) : 0;
      const r = decodeRecords(buf, from);
      this.pushEntries(r.records.map((rec) => ({ payload: rec.payload, seg: s, end: rec.end, size: rec.payload.length + RECORD_HEADER_BYTES })));
      if (r.damaged) {
        this.corruptCount++;
        // A torn tail (crash mid-append, never acknowledged to the caller) is cut off; damage inside
        // an older segment skips the rest of that segment.
        if (s === segs[segs.length - 1]) {
          const fh = await open(file, 'r+');
          await fh.truncate(r.goodEnd);
          await fh.sync();
          await fh.close();
        }
      }
    }
    const last = segs.filter((s) => s >= cursor.segment).pop();
    this.activeSeg = last ?? Math.max(cursor.segment, 1);
    this.fh = await open(path.join(this.dir, segName(this.activeSeg)), 'a');
    this.activeSize = (await this.fh.stat()).size;
    await this.syncDir();
  }

  append(payloads: Buffer[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('queue closed'));
    const size = payloads.reduce((s, p) => s + p.length + RECORD_HEADER_BYTES, 0);
    return this.reserve(size).then(
      () =>
        new Promise<void>((resolve, reject) => {
          this.writes.push({ payloads, size, resolve, reject });
          void this.drainWrites();
        }),
    );
  }

  /** Group commit: every append waiting while one fsync runs shares the next write + fsync. */
  private async drainWrites(): Promise<void> {
    if (this.writing) return;
    this.writing = true;
    try {
      while (this.writes.length) {
        const batch = this.writes;
        this.writes = [];
        try {
          if (this.activeSize >= this.segmentBytes) await this.roll();
          const items: { payload: Buffer; seg: number; end: number; size: number }[] = [];
          const bufs: Buffer[] = [];
          let pos = this.activeSize;
          for (const w of batch) {
            for (const p of w.payloads) {
              const rec = encodeRecord(p);
              bufs.push(rec);
              pos += rec.length;
              items.push({ payload: p, seg: this.activeSeg, end: pos, size: rec.length });
            }
          }
          const all = Buffer.concat(bufs);
          await this.fh!.write(all, 0, all.length, null);
          await this.fh!.sync();
          this.activeSize = pos;
          for (const w of batch) this.reservedBytes -= w.size;
          this.pushEntries(items);
          for (const w of batch) w.resolve();
        } catch (e) {
          for (const w of batch) {
            this.reservedBytes -= w.size;
            w.reject(e);
          }
        }
      }
    } finally {
      this.writing = false;
    }
  }

  private async roll(): Promise<void> {
    await this.fh!.close();
    this.activeSeg++;
    this.fh = await open(path.join(this.dir, segName(this.activeSeg)), 'a');
    this.activeSize = 0;
    await this.syncDir();
  }

  protected persistCursor(seg: number, end: number): Promise<void> {
    // Serialised so an older cursor never overwrites a newer one.
    this.cursorChain = this.cursorChain.then(async () => {
      const tmp = path.join(this.dir, 'cursor.tmp');
      const fh = await open(tmp, 'w');
      try {
        await fh.writeFile(JSON.stringify({ segment: seg, offset: end }));
        await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(tmp, path.join(this.dir, 'cursor'));
      await this.syncDir();
      // Segments wholly before the cursor are done.
      for (const f of await readdir(this.dir)) {
        const m = SEGMENT_RE.exec(f);
        if (m && Number(m[1]) < seg) await rm(path.join(this.dir, f), { force: true });
      }
    });
    return this.cursorChain;
  }

  private async syncDir(): Promise<void> {
    const d = await open(this.dir, 'r');
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    while (this.writing || this.writes.length) await new Promise((r) => setTimeout(r, 5));
    await this.cursorChain.catch(() => undefined);
    await this.fh?.close();
    this.wakeAll();
  }
}

/** Bytes of segment files in a queue directory (for status displays). */
export async function queueDirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const f of await readdir(dir).catch(() => [] as string[])) {
    if (SEGMENT_RE.test(f)) total += (await stat(path.join(dir, f))).size;
  }
  return total;
}
