import { createHash } from 'node:crypto';

/** Namespaces of the SDK's name-based ids (RFC 4122 v5 layout over SHA-1). */
export const CORRELATION_NAMESPACE = 'b1f0c7e2-4a7d-5c1e-9f3a-6b2d8e0c4a11';
export const JOB_NAMESPACE = 'c2e1d8f3-5b8e-5d2f-8a4b-7c3e9f1d5b22';
export const IDENTITY_NAMESPACE = 'd3f2e9a4-6c9f-5e3a-9b5c-8d4fa02e6c33';

/** A version-5 UUID: the same (namespace, name) always gives the same id. */
export function uuidV5(name: string, namespace: string): string {
  const ns = Buffer.from(namespace.replace(/-/g, ''), 'hex');
  const h = createHash('sha1').update(ns).update(name, 'utf8').digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20, 32)}`;
}

// A unit separator keeps ("a","b c") and ("a b","c") apart.
const key = (agentId: string, runId: string, step: string | number) => `${agentId}\u001f${runId}\u001f${String(step)}`;

/** The correlation id of step `step` of run `runId` of an agent: a retried step maps to the same event. */
export function correlationId(agentId: string, runId: string, step: string | number): string {
  return uuidV5(key(agentId, runId, step), CORRELATION_NAMESPACE);
}

/** The job id that goes with the correlation id above. */
export function jobIdFor(agentId: string, runId: string, step: string | number): string {
  return uuidV5(key(agentId, runId, step), JOB_NAMESPACE);
}
