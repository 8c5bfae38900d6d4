import { cryptoReady, verifyEventSignature } from '../crypto/ed25519.js';
import { verifyBatchProof } from '../crypto/batch.js';
import type { JobStatusEvent, StreamRecord, UsageEvent } from '../types/usage.js';
import { describeJudgement, judgeKey, type AgentKey, type KeyJudgement } from './agentKeys.js';

export type AuditVerdict =
  | 'verified'
  /** The stored ucxl_addr was redacted: the signed original is not stored, so it cannot be re-verified. */
  | 'unverifiable_redacted'
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
export async function verifyStoredRecord(
  seq: number,
  rec: StreamRecord,
  lookupKey: (deploymentId: string, keyId: string) => Promise<AgentKey | null>,
): Promise<AuditResult> {
  const event: UsageEvent | JobStatusEvent = rec.kind === 'usage' ? rec.usage : rec.job_status;
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
  if (rec.ingest.redacted_segments.length) {
    return {
      ...base,
      verdict: 'unverifiable_redacted',
      failed: false,
      detail: `cannot be re-verified: ucxl_addr segments [${rec.ingest.redacted_segments.join(', ')}] were redacted before append and the original value is not stored (its signature was checked at ingest)`,
    };
  }
  const key = await lookupKey(event.deployment_id, event.sig.key_id);
  if (!key) return { ...base, verdict: 'key_unknown', failed: true, detail: `key ${event.sig.key_id} is not registered for ${event.deployment_id}` };
  const keyRevokedAt = key.revokedAt === null ? null : new Date(key.revokedAt).toISOString();
  const keyFacts = { key_revoked_at: keyRevokedAt, key_revoke_reason: key.revokeReason };
  await cryptoReady();
  // an event of a signed batch is proven by its inclusion proof and the signature over the batch's tree head
  const proof = rec.ingest.batch;
  const ok = proof ? verifyBatchProof(event, proof, key.publicKey) : verifyEventSignature(event, key.publicKey);
  const how = proof ? `the batch signature over its tree head, leaf ${proof.leaf_index} of ${proof.tree_size}` : 'its signature';
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
