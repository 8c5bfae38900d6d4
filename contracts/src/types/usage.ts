import type { JobStatusEvent, UsageEvent } from '@kaching/sdk/protocol';

/** The event types agents send live with the zero-dependency agent SDK's protocol; servers add the rest. */
export * from '@kaching/sdk/protocol';

export const POLICY_DECISION_SCHEMA = 'kaching.v1.policy_decision' as const;

/** Facts the ingest service adds when it accepts an event. Not covered by the agent's signature. */
export interface IngestFacts {
  received_at: string; // RFC 3339, ingest clock
  org_id: string; // uuid, from the token's deployment
  /** ended_at before started_at by this many ms (accepted small skew), else 0. */
  clock_skew_ms: number;
  /** ucxl_addr segments replaced by the redaction policy (names only, never values). */
  redacted_segments: string[];
  /** Free-form markers, e.g. "clock_skew", "redacted". */
  flags: string[];
  /**
   * Hex SHA-256 of the agent's signing bytes when redaction changed the stored event: the stored event no
   * longer verifies, this ties it to what the agent signed (the agent's own copy verifies against it).
   */
  original_sha256?: string;
  /** Set when the event arrived in a Merkle-signed batch: what proves it on its own. */
  batch?: BatchProof;
}

/** An event's inclusion in a signed batch (RFC 9162-style tree over each event's JCS bytes). */
export interface BatchProof {
  key_id: string;
  /** base64 of the 32-byte Merkle tree head the agent signed. */
  root: string;
  /** base64 of the Ed25519 signature over the root. */
  signature: string;
  leaf_index: number;
  tree_size: number;
  /** base64 sibling hashes, leaf level first. */
  path: string[];
}

/** One message on the events stream. */
export type StreamRecord =
  | { kind: 'usage'; ingest: IngestFacts; usage: UsageEvent }
  | { kind: 'job_status'; ingest: IngestFacts; job_status: JobStatusEvent };
