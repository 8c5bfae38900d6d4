import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { signBatch, signEvent, type Unsigned, type UsageEvent } from '@kaching/contracts';
import { sampleUsage } from '@kaching/ingest';

export type Signing = 'per-event' | 'batch';

/**
 * Writes request bodies, one per line, for wrk to send once each: unique events (fresh correlation ids),
 * signed ahead of the run so the load generator spends nothing on crypto. `batchSize` 1 writes single
 * events; otherwise `{events}` bodies, each event signed (`per-event`) or one Merkle signature over the
 * batch (`batch`, with `batch_sig`). Needs cryptoReady().
 */
export async function presignBodies(o: {
  file: string;
  deploymentId: string;
  keyId: string;
  secretKey: Uint8Array;
  events: number;
  batchSize: number;
  signing?: Signing;
}): Promise<{ bodies: number; events: number; bytesPerEvent: number }> {
  const out = createWriteStream(o.file);
  let bytes = 0;
  let bodies = 0;
  for (let done = 0; done < o.events; done += o.batchSize) {
    const unsigned: Unsigned<UsageEvent>[] = Array.from({ length: o.batchSize }, () => sampleUsage(o.deploymentId));
    let line: string;
    if (o.batchSize === 1) line = JSON.stringify(signEvent(unsigned[0]!, o.keyId, o.secretKey));
    else if (o.signing === 'batch') line = JSON.stringify({ events: unsigned, batch_sig: signBatch(unsigned, o.keyId, o.secretKey) });
    else line = JSON.stringify({ events: unsigned.map((e) => signEvent(e, o.keyId, o.secretKey)) });
    bytes += Buffer.byteLength(line);
    bodies++;
    if (!out.write(line + '\n')) await once(out, 'drain');
  }
  out.end();
  await once(out, 'finish');
  const events = bodies * o.batchSize;
  return { bodies, events, bytesPerEvent: Math.round(bytes / events) };
}
