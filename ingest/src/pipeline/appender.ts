import { headers as natsHeaders, type NatsConnection } from '@nats-io/transport-node';
import { jetstream, type JetStreamClient } from '@nats-io/jetstream';
import {
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
  private readonly js: JetStreamClient;
  connected = true;

  constructor(
    private readonly nc: NatsConnection,
    private readonly n: Names,
    private readonly timeoutMs: number,
    private readonly retryAfterS: number,
  ) {
    this.js = jetstream(nc, { timeout: timeoutMs });
  }

  async append(record: StreamRecord, deploymentId: string, msgId: string): Promise<AppendResult> {
    if (!this.connected || this.nc.isClosed()) {
      throw new UnavailableError('STREAM_UNAVAILABLE', { retryAfterS: this.retryAfterS, message: 'NATS is disconnected; nothing was stored, retry' });
    }
    const h = natsHeaders();
    h.set(SCHEMA_FINGERPRINT_HEADER, STREAM_SCHEMA_FINGERPRINT);
    let bytes: Uint8Array;
    bytes = encodeStreamRecord(record);
    try {
      const ack = await this.js.publish(this.n.eventSubject(deploymentId, record.kind), bytes, {
        msgID: msgId,
        headers: h,
        timeout: this.timeoutMs,
      });
      return { seq: ack.seq, duplicate: ack.duplicate };
    } catch (cause) {
      throw new UnavailableError('STREAM_UNAVAILABLE', { retryAfterS: this.retryAfterS, cause });
    }
  }
}
