import { createHash } from 'node:crypto';
import { cryptoReady, signingBytes, verifyEventSignature } from '../crypto/ed25519.js';
import { redactUcxl } from '../redaction/redact.js';
import { verifyBatchProof } from '../crypto/batch.js';
import type { JobStatusEvent, StreamRecord, UsageEvent } from '../types/usage.js';
import { describeJudgement, judgeKey, type AgentKey, type KeyJudgement } from './agentKeys.js';

export type AuditVerdict =
  | 'verified'
  /** Redacted before append and no original supplied: the stored event alone cannot be re-verified. */
  | 'unverifiable_redacted'
  /** The original supplied for a redacted event is not what the agent sent (digest or redaction differs). */
  | 'original_mismatch'
  /** Not agent-signed (e.g. mapped from OTLP). */
  | 'unverifiable_unsigned'
  | 'signature_invalid'
  | 'key_unknown'
  /** The key was revoked for compromise: whatever it signed cannot be trusted, at any signing time. */
  | 'key_compromised'
  /** The key was superseded (planned rotation) before the report was made. */
  | 'key_superseded_before_signing'
  | 'key_not_yet_valid_at_signing'
  | 'key_expired_at_signing'
  | 'not_found';

const KEY_VERDICT: Record<Exclude<KeyJudgement, 'usable'>, AuditVerdict> = {
  compromised: 'key_compromised',
  superseded_before_report: 'key_superseded_before_signing',
  not_yet_valid: 'key_not_yet_valid_at_signing',
  expired: 'key_expired_at_signing',
};

export interface AuditResult {
  seq: number;
  verdict: AuditVerdict;
  /** true when the verdict is a real failure (exit non-zero). */
  failed: boolean;
  deployment_id?: string;
  correlation_id?: string;
  key_id?: string;
  signed_at?: string;
  received_at?: string;
  key_revoked_at?: string | null;
  key_revoke_reason?: 'compromise' | 'superseded' | null;
  detail: string;
}

/**
 * Re-verifies one stored event (decoded from the stream or from an archive segment) against the key that
 * was valid when it was signed. `lookupKey` fetches the key (ingest and the archiver use fetchAgentKey).
 */
export interface AuditOptions {
  /**
   * The agent's original event (as it signed it) for a redacted one: it must hash to the stored
   * original_sha256 and redact to the stored event; its signature is then checked as usual.
   */
  original?: unknown;
}

export async function verifyStoredRecord(
  seq: number,
  rec: StreamRecord,
  lookupKey: (deploymentId: string, keyId: string) => Promise<AgentKey | null>,
  opts: AuditOptions = {},
): Promise<AuditResult> {
  const stored: UsageEvent | JobStatusEvent = rec.kind === 'usage' ? rec.usage : rec.job_status;
  let event = stored;
  const signedAtIso = rec.kind === 'usage' ? (rec.usage.job.ended_at ?? rec.usage.job.started_at) : rec.job_status.observed_at;
  const base = {
    seq,
    deployment_id: event.deployment_id,
    correlation_id: event.job.correlation_id,
    key_id: event.sig.key_id,
    signed_at: signedAtIso,
    received_at: rec.ingest.received_at,
  };
  if (rec.ingest.flags.includes('unsigned_otlp')) {
    return { ...base, verdict: 'unverifiable_unsigned', failed: false, detail: 'mapped from OTLP spans: not agent-signed, nothing to re-verify' };
  }
  let how = '';
  if (rec.ingest.redacted_segments.length) {
    if (opts.original === undefined) {
      return {
        ...base,
        verdict: 'unverifiable_redacted',
        failed: false,
        detail: `cannot be re-verified alone: ucxl_addr segments [${rec.ingest.redacted_segments.join(', ')}] were redacted before append; the record keeps the SHA-256 of what the agent signed (${rec.ingest.original_sha256 ?? 'not recorded'}): verify it with the agent's original event (--original FILE)`,
      };
    }
    const mismatch = originalMismatch(rec, stored, opts.original);
    if (mismatch) return { ...base, verdict: 'original_mismatch', failed: true, detail: mismatch };
    event = opts.original as typeof stored;
    how = 'the original the agent signed (its digest matches the record, and it redacts to the stored event): ';
  }
  const key = await lookupKey(event.deployment_id, event.sig.key_id);
  if (!key) return { ...base, verdict: 'key_unknown', failed: true, detail: `key ${event.sig.key_id} is not registered for ${event.deployment_id}` };
  const keyRevokedAt = key.revokedAt === null ? null : new Date(key.revokedAt).toISOString();
  const keyFacts = { key_revoked_at: keyRevokedAt, key_revoke_reason: key.revokeReason };
  await cryptoReady();
  // an event of a signed batch is proven by its inclusion proof and the signature over the batch's tree head
  const proof = rec.ingest.batch;
  const ok = proof ? verifyBatchProof(event, proof, key.publicKey) : verifyEventSignature(event, key.publicKey);
  how += proof ? `the batch signature over its tree head, leaf ${proof.leaf_index} of ${proof.tree_size}` : 'its signature';
  // the same judgement ingest makes, at the instant the agent made the report
  const judgement = judgeKey(key, Date.parse(signedAtIso));
  if (judgement !== 'usable') {
    const sigNote = ok ? `${how} verifies, but ` : `${how} does not verify either; `;
    return { ...base, ...keyFacts, verdict: KEY_VERDICT[judgement], failed: true, detail: sigNote + describeJudgement(key, judgement, Date.parse(signedAtIso)) };
  }
  if (!ok) return { ...base, ...keyFacts, verdict: 'signature_invalid', failed: true, detail: `${how} does not verify over the stored event` };
  const note = keyRevokedAt ? ` (the key was superseded later, at ${keyRevokedAt})` : '';
  return { ...base, ...keyFacts, verdict: 'verified', failed: false, detail: `${how} verifies with key ${key.keyId}, valid at ${signedAtIso}${note}` };
}

/** Why `original` is not the event the agent signed for this redacted record, or null when it is. */
function originalMismatch(rec: StreamRecord, stored: UsageEvent | JobStatusEvent, original: unknown): string | null {
  const o = original as UsageEvent | JobStatusEvent;
  if (!o || typeof o !== 'object' || !o.job || !o.sig || typeof o.sig !== 'object') return 'the original is not a signed event';
  let bytes: Uint8Array;
  try {
    bytes = signingBytes(o);
  } catch {
    return 'the original cannot be canonicalised (RFC 8785)';
  }
  const digest = createHash('sha256').update(bytes).digest('hex');
  if (!rec.ingest.original_sha256) return 'the record keeps no digest of the original';
  if (digest !== rec.ingest.original_sha256) return `the original's SHA-256 ${digest} is not the recorded ${rec.ingest.original_sha256}`;
  // the digest ties the original to the record; the redaction must also turn it into exactly the stored event
  const addr = o.job.ucxl_addr;
  const again = { ...o, job: { ...o.job, ucxl_addr: addr === undefined ? addr : redactUcxl(addr, rec.ingest.redacted_segments).addr } };
  const same = Buffer.from(signingBytes(again)).equals(signingBytes(stored))
    && o.sig.algo === stored.sig.algo && o.sig.key_id === stored.sig.key_id && o.sig.signature === stored.sig.signature;
  return same ? null : 'the original, redacted with the recorded segments, is not the stored event';
}
