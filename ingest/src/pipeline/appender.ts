import type { NatsConnection } from '@nats-io/transport-node';
import type { IngestPartitioning } from './partitioning.js';
import {
  JetStreamPublisher,
  SCHEMA_FINGERPRINT_HEADER,
  STREAM_SCHEMA_FINGERPRINT,
  UnavailableError,
  encodeStreamRecord,
  type Names,
  type StreamRecord,
} from '@kaching/contracts';

export interface AppendResult {
  seq: number;
  duplicate: boolean;
}

/**
 * Appends stream records. Answers only from a PubAck: an error, a timeout or a dropped connection
 * becomes STREAM_UNAVAILABLE (503), never a success. While the connection is known to be down it
 * fails fast instead of letting the client buffer publishes.
 */
export class Appender {
  private readonly publisher: JetStreamPublisher;
  private static readonly HEADERS = { [SCHEMA_FINGERPRINT_HEADER]: STREAM_SCHEMA_FINGERPRINT };
  connected = true;

  constructor(
    private readonly nc: NatsConnection,
    private readonly n: Names,
    private readonly timeoutMs: number,
    private readonly retryAfterS: number,
    private readonly partitioning: Pick<IngestPartitioning, 'withCount'>,
  ) {
    this.publisher = new JetStreamPublisher(nc, timeoutMs);
  }

  async append(record: StreamRecord, deploymentId: string, msgId: string): Promise<AppendResult> {
    if (!this.connected || this.nc.isClosed()) {
      throw new UnavailableError('STREAM_UNAVAILABLE', { retryAfterS: this.retryAfterS, message: 'NATS is disconnected; nothing was stored, retry' });
    }
    const bytes = encodeStreamRecord(record);
    return this.partitioning.withCount(async (partitions) => {
      try {
        const ack = await this.publisher.publish(this.n.eventSubject(deploymentId, record.kind, partitions), bytes, msgId, Appender.HEADERS);
        return { seq: ack.seq, duplicate: ack.duplicate };
      } catch (cause) {
        throw new UnavailableError('STREAM_UNAVAILABLE', { retryAfterS: this.retryAfterS, cause });
      }
    });
  }

  close(): void {
    this.publisher.close();
  }
}
