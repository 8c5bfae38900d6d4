import { createHash } from 'node:crypto';
import {
  AuthError,
  InputError,
  KachingError,
  JOB_STATUS_SCHEMA,
  USAGE_SCHEMA,
  batchProofs,
  batchSigningBytes,
  checkTimestamps,
  decodeBase64Strict,
  merkleLeafHash,
  merkleRoot,
  messageId,
  digestOfSigningBytes,
  signingBytes,
  validateJobStatus,
  validateUsage,
  type BatchProof,
  type CertIdentity,
  type ErrorBody,
  type IngestFacts,
  type Signature,
  type JobStatusEvent,
  type StreamRecord,
  type UsageEvent,
} from '@kaching/contracts';
import type { Logger } from 'pino';
import type { TokenAuthenticator, TokenPrincipal } from '../auth/tokens.js';
import type { KeyStore } from '../auth/keys.js';
import type { CertBindings } from '../auth/certBindings.js';
import type { IngestConfig } from '../config.js';
import type { IngestMetrics } from '../metrics.js';
import type { Appender } from './appender.js';
import type { RateLimiter } from './rateLimit.js';
import type { Verifier } from './verifier.js';
import { redactUcxl } from './redact.js';
import { otlpToUsageEvents } from './otlp.js';

export type Endpoint = 'usage' | 'job-status' | 'batch';
export type Path = 'http' | 'nats' | 'otlp';

/** A transport-neutral answer: HTTP sends it as is, NATS replies `{status, body}`. */
export interface Reply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export interface ItemResult {
  index: number;
  status: number;
  seq?: number;
  duplicate?: boolean;
  error?: ErrorBody['error'];
}

type Kind = 'usage' | 'job_status';
const SCOPE: Record<Kind, string> = { usage: 'ingest:usage', job_status: 'ingest:jobs' };

export interface IngestDeps {
  config: IngestConfig;
  tokens: TokenAuthenticator;
  /** Present when HTTP requires client certificates (INGEST_TLS_CLIENT_CA): pins them to deployments. */
  certs?: CertBindings;
  keys: KeyStore;
  verifier: Verifier;
  appender: Appender;
  limiter: RateLimiter;
  metrics: IngestMetrics;
  log: Logger;
}

/** The ingest pipeline shared by the HTTP bridge and the NATS service. */
export class IngestCore {
  constructor(private readonly d: IngestDeps) {}

  /** Handles one request. Never throws: every failure becomes a catalogue reply. */
  async handle(
    endpoint: Endpoint,
    body: unknown,
    authorization: string | undefined,
    opts: { path: Path; subjectDeployment?: string; extraFlags?: string[]; requiredScope?: string; peer?: CertIdentity | null },
  ): Promise<Reply> {
    try {
      const principal = await this.d.tokens.authenticate(authorization);
      await this.checkPeer(principal, opts.path, opts.peer);
      if (opts.subjectDeployment !== undefined && opts.subjectDeployment !== principal.deploymentId) {
        throw new AuthError('DEPLOYMENT_MISMATCH', { message: 'The ingest subject names a deployment the token does not belong to' });
      }
      if (opts.requiredScope && !principal.scopes.has(opts.requiredScope)) {
        throw new AuthError('TOKEN_SCOPE', { rule: `scope:${opts.requiredScope}` });
      }
      if (endpoint === 'batch') return await this.batch(principal, body, opts);
      const kind: Kind = endpoint === 'usage' ? 'usage' : 'job_status';
      if (!principal.scopes.has(SCOPE[kind])) throw new AuthError('TOKEN_SCOPE', { rule: `scope:${SCOPE[kind]}` });
      this.d.limiter.take(principal.tokenId, 1);
      const r = await this.one(principal, body, kind, opts);
      if (r.error) return this.errorReplyFromItem(r);
      return { status: r.status, body: { seq: r.seq, duplicate: r.duplicate } };
    } catch (err) {
      return this.errorReply(err, opts.path);
    }
  }

  /**
   * OTLP traces: GenAI spans become unsigned usage events (scope ingest:otlp). `decode` runs after the token
   * is checked, so an unauthenticated caller learns nothing about its body. A 200 carries the OTLP
   * partial_success (rejected spans with their catalogue codes); the HTTP layer encodes it.
   */
  async handleOtlp(decode: () => unknown, authorization: string | undefined, peer?: CertIdentity | null): Promise<Reply> {
    try {
      const principal = await this.d.tokens.authenticate(authorization);
      await this.checkPeer(principal, 'otlp', peer);
      if (!principal.scopes.has('ingest:otlp')) throw new AuthError('TOKEN_SCOPE', { rule: 'scope:ingest:otlp' });
      const { events, rejected, ignoredSpans } = otlpToUsageEvents(decode(), principal.deploymentId);
      if (events.length > this.d.config.batchMax) {
        throw new InputError('BATCH_TOO_LARGE', { field: 'resourceSpans', rule: `maxItems:${this.d.config.batchMax} GenAI spans` });
      }
      if (events.length) this.d.limiter.take(principal.tokenId, events.length);
      const opts = { path: 'otlp' as const, extraFlags: ['unsigned_otlp'], unsigned: true };
      const results = await Promise.all(events.map((e, i) => this.one(principal, e.event, 'usage', opts, i)));
      const unavailable = results.find((r) => r.status === 503);
      if (unavailable) {
        return { status: 503, body: { error: unavailable.error }, headers: { 'retry-after': String(this.d.config.retryAfterS) } };
      }
      const refused = [
        ...rejected.map((r) => ({ span: r.span, error: r.error.toBody().error })),
        ...results.flatMap((r) => (r.status >= 400 && r.error ? [{ span: events[r.index]!.span, error: r.error }] : [])),
      ];
      for (const r of rejected) this.d.metrics.rejected.inc({ code: r.error.code, path: 'otlp' });
      const describe = (x: (typeof refused)[number]) => `span ${x.span}: ${x.error.code}${x.error.field ? ` ${x.error.field}` : ''}${x.error.rule ? ` (${x.error.rule})` : ''}`;
      const partialSuccess = refused.length ? { rejectedSpans: refused.length, errorMessage: refused.slice(0, 20).map(describe).join('; ') } : undefined;
      const headers = {
        'kaching-accepted-spans': String(results.filter((r) => r.status < 400).length),
        'kaching-duplicate-spans': String(results.filter((r) => r.duplicate).length),
        'kaching-ignored-spans': String(ignoredSpans),
      };
      return { status: 200, body: { partialSuccess }, headers };
    } catch (err) {
      return this.errorReply(err, 'otlp');
    }
  }

  /** HTTP paths under mTLS: the certificate must be bound to the token's deployment. NATS has its own users. */
  private async checkPeer(principal: TokenPrincipal, path: Path, peer: CertIdentity | null | undefined): Promise<void> {
    if (this.d.certs && path !== 'nats') await this.d.certs.check(principal, peer ?? null);
  }

  private async batch(principal: TokenPrincipal, body: unknown, opts: { path: Path; extraFlags?: string[] }): Promise<Reply> {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) {
      throw new InputError('FIELD_TYPE', { field: 'events', rule: 'type:object', message: 'A batch is {"events":[...]}' });
    }
    for (const k of Object.keys(body)) {
      if (k !== 'events' && k !== 'batch_sig') throw new InputError('FIELD_UNKNOWN', { field: k, rule: 'additionalProperties:false' });
    }
    const events = (body as { events?: unknown }).events;
    if (!Array.isArray(events)) throw new InputError('FIELD_TYPE', { field: 'events', rule: 'type:array' });
    if (events.length === 0) throw new InputError('BATCH_EMPTY', { field: 'events', rule: 'minItems:1' });
    if (events.length > this.d.config.batchMax) {
      throw new InputError('BATCH_TOO_LARGE', { field: 'events', rule: `maxItems:${this.d.config.batchMax}` });
    }
    this.d.limiter.take(principal.tokenId, events.length);
    const batchSig = (body as { batch_sig?: unknown }).batch_sig;
    const signed = batchSig === undefined ? undefined : await this.checkBatchSignature(principal, events, batchSig);
    const results = await Promise.all(events.map((e, i) => this.one(principal, e, null, opts, i, signed?.[i])));
    const unavailable = results.find((r) => r.status === 503);
    const out = { results };
    if (unavailable) {
      // Not every event is durable: the request as a whole must not look like a success.
      const retry = String(this.d.config.retryAfterS);
      return { status: 503, body: { ...out, error: unavailable.error }, headers: { 'retry-after': retry } };
    }
    return { status: 207, body: out };
  }

  /** One event through validation, signature, redaction and append. Errors become an item result. */
  private async one(
    principal: TokenPrincipal,
    raw: unknown,
    fixedKind: Kind | null,
    opts: { path: Path; extraFlags?: string[]; unsigned?: boolean },
    index = 0,
    inBatch?: BatchMember,
  ): Promise<ItemResult> {
    const started = performance.now();
    try {
      // A batch-signed event carries no sig of its own: the stored one names the batch key and signature,
      // and ingest.batch holds the proof that makes it verifiable alone.
      if (inBatch) raw = { ...(raw as object), sig: inBatch.sig };
      const kind = fixedKind ?? kindOf(raw);
      // OTLP events were admitted by the ingest:otlp scope already.
      if (!opts.unsigned && !principal.scopes.has(SCOPE[kind])) throw new AuthError('TOKEN_SCOPE', { rule: `scope:${SCOPE[kind]}` });
      const depId = typeof raw === 'object' && raw !== null ? (raw as { deployment_id?: unknown }).deployment_id : undefined;
      if (typeof depId === 'string' && depId !== principal.deploymentId) {
        throw new AuthError('DEPLOYMENT_MISMATCH', { field: 'deployment_id' });
      }
      const v = kind === 'usage' ? validateUsage(raw) : validateJobStatus(raw);
      if (!v.ok) throw v.error;
      const event = v.value as UsageEvent | JobStatusEvent;
      if (event.deployment_id !== principal.deploymentId) throw new AuthError('DEPLOYMENT_MISMATCH', { field: 'deployment_id' });
      const now = Date.now();
      const ts = checkTimestamps(event, new Date(now), {
        maxSkewMs: this.d.config.maxSkewMs,
        maxFutureMs: this.d.config.maxFutureMs,
        maxAgeMs: this.d.config.maxAgeMs,
      });
      if (ts instanceof KachingError) throw ts;
      const skewMs = ts.skewMs;
      // OTLP-mapped events carry no agent signature; they are flagged unsigned_otlp instead.
      // The signed bytes also give the message id's digest: canonicalise once per event (hot path).
      const signed = opts.unsigned
        ? signingBytes(event)
        : inBatch
          ? await this.checkBatchMember(event, kind, inBatch)
          : await this.checkSignature(event, kind);

      const flags: string[] = [...(opts.extraFlags ?? [])];
      if (skewMs > 0) flags.push('clock_skew');
      let stored = event;
      let redacted: string[] = [];
      const addr = event.job.ucxl_addr;
      if (addr !== undefined && principal.redactSegments.length) {
        const r = redactUcxl(addr, principal.redactSegments);
        if (r.redacted.length) {
          redacted = r.redacted;
          flags.push('redacted');
          stored = { ...event, job: { ...event.job, ucxl_addr: r.addr } } as typeof event;
        }
      }
      const ingest: IngestFacts = {
        received_at: new Date(now).toISOString(),
        org_id: principal.orgId,
        clock_skew_ms: skewMs,
        redacted_segments: redacted,
        flags,
        // the stored (redacted) event no longer verifies: keep what ties it to what the agent signed
        ...(redacted.length ? { original_sha256: createHash('sha256').update(signed).digest('hex') } : {}),
        ...(inBatch ? { batch: inBatch.proof } : {}),
      };
      const record: StreamRecord =
        kind === 'usage'
          ? { kind, ingest, usage: stored as UsageEvent }
          : { kind, ingest, job_status: stored as JobStatusEvent };
      // The id derives from what the agent sent, so a blind retry maps to the same message.
      const ack = await this.d.appender.append(record, event.deployment_id, messageId(event, digestOfSigningBytes(signed)));
      this.d.metrics.ackLatency.observe((performance.now() - started) / 1000);
      if (ack.duplicate) {
        this.d.metrics.duplicates.inc({ kind, path: opts.path });
        return { index, status: 200, seq: ack.seq, duplicate: true };
      }
      this.d.metrics.accepted.inc({ kind, path: opts.path });
      return { index, status: 202, seq: ack.seq, duplicate: false };
    } catch (err) {
      const e = asKachingError(err, this.d.log);
      this.d.metrics.rejected.inc({ code: e.code, path: opts.path });
      return { index, status: e.status, error: e.toBody().error };
    }
  }

  /** Verifies the agent's signature; returns the signed bytes (JCS of the event without sig). */
  private async checkSignature(event: UsageEvent | JobStatusEvent, kind: Kind): Promise<Uint8Array> {
    const sig = event.sig;
    if (sig.algo !== 'ed25519') throw new InputError('SIGNATURE_ALGO', { field: 'sig.algo', rule: 'const:ed25519' });
    let sigBytes: Uint8Array | null | undefined;
    try {
      sigBytes = decodeBase64Strict(sig.signature);
    } catch {
      sigBytes = null;
    }
    if (!sigBytes || sigBytes.length !== 64) {
      throw new InputError('BAD_BASE64', { field: 'sig.signature', rule: 'base64:64-bytes' });
    }
    const key = await this.d.keys.usableKey(event.deployment_id, sig.key_id, reportTime(event, kind));
    const signed = signingBytes(event);
    const ok = await this.d.verifier.verify(sigBytes, signed, key.publicKey);
    if (!ok) throw new AuthError('SIGNATURE_INVALID', { field: 'sig.signature' });
    return signed;
  }

  /**
   * A signed batch: one Ed25519 signature over the RFC 9162 tree head of the events' signing bytes. Verified
   * once for the batch; each event then gets its inclusion proof. Any flaw refuses the whole request, since
   * no event of it is proven.
   */
  private async checkBatchSignature(principal: TokenPrincipal, events: unknown[], raw: unknown): Promise<BatchMember[]> {
    const sig = parseBatchSignature(raw, events.length);
    const signingInputs = events.map((e, i) => {
      if (typeof e !== 'object' || e === null || Array.isArray(e)) throw new InputError('FIELD_TYPE', { field: `events.${i}`, rule: 'type:object' });
      if ('sig' in e) throw new InputError('FIELD_UNKNOWN', { field: `events.${i}.sig`, rule: 'batch_sig:events-carry-no-sig' });
      try {
        return signingBytes(e as UsageEvent);
      } catch {
        throw new InputError('FIELD_FORMAT', { field: `events.${i}`, rule: 'rfc8785:canonicalizable' });
      }
    });
    const key = await this.d.keys.get(principal.deploymentId, sig.key_id);
    if (!key) throw new AuthError('KEY_UNKNOWN', { field: 'batch_sig.key_id' });
    const leaves = signingInputs.map(merkleLeafHash);
    const root = merkleRoot(leaves);
    if (!root.equals(sig.rootBytes)) throw new AuthError('SIGNATURE_INVALID', { field: 'batch_sig.root', message: 'The root is not the RFC 9162 tree head of the events as sent' });
    if (!(await this.d.verifier.verify(sig.signatureBytes, batchSigningBytes(root, leaves.length), key.publicKey))) {
      throw new AuthError('SIGNATURE_INVALID', { field: 'batch_sig.signature' });
    }
    const eventSig: Signature = { algo: 'ed25519', key_id: sig.key_id, signature: sig.signature };
    return batchProofs(leaves, sig).map((proof, i) => ({ proof, sig: eventSig, signed: signingInputs[i]! }));
  }

  /** The batch signature holds; the key must be usable at the instant the agent made this event's report. */
  private async checkBatchMember(event: UsageEvent | JobStatusEvent, kind: Kind, m: BatchMember): Promise<Uint8Array> {
    await this.d.keys.usableKey(event.deployment_id, m.sig.key_id, reportTime(event, kind), 'batch_sig.key_id');
    return m.signed;
  }

  private errorReplyFromItem(r: ItemResult): Reply {
    const body: ErrorBody = { error: r.error! };
    return withRetryHeader({ status: r.status, body }, r.error?.retry_after_s);
  }

  errorReply(err: unknown, path: Path): Reply {
    const e = asKachingError(err, this.d.log);
    this.d.metrics.rejected.inc({ code: e.code, path });
    return withRetryHeader({ status: e.status, body: e.toBody() }, e.retryAfterS);
  }
}

function withRetryHeader(reply: Reply, retryAfterS: number | undefined): Reply {
  if (retryAfterS !== undefined) reply.headers = { ...reply.headers, 'retry-after': String(retryAfterS) };
  return reply;
}

/** When the agent made the report: validity of its key is judged at this instant. */
function reportTime(event: UsageEvent | JobStatusEvent, kind: Kind): number {
  return Date.parse(kind === 'usage' ? ((event as UsageEvent).job.ended_at ?? event.job.started_at) : (event as JobStatusEvent).observed_at);
}

/** One event of a signed batch: its proof, the sig it is stored with, and its signing bytes (computed once). */
interface BatchMember {
  proof: BatchProof;
  sig: Signature;
  signed: Uint8Array;
}

const KEY_ID = /^[^\u0000-\u001f\u007f]{1,200}$/;

function parseBatchSignature(raw: unknown, events: number) {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new InputError('FIELD_TYPE', { field: 'batch_sig', rule: 'type:object' });
  const o = raw as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!['algo', 'key_id', 'tree_size', 'root', 'signature'].includes(k)) throw new InputError('FIELD_UNKNOWN', { field: `batch_sig.${k}`, rule: 'additionalProperties:false' });
  }
  for (const k of ['algo', 'key_id', 'tree_size', 'root', 'signature']) {
    if (o[k] === undefined) throw new InputError('FIELD_REQUIRED', { field: `batch_sig.${k}`, rule: 'required' });
  }
  if (o.algo !== 'ed25519') throw new InputError('SIGNATURE_ALGO', { field: 'batch_sig.algo', rule: 'const:ed25519' });
  if (typeof o.key_id !== 'string' || !KEY_ID.test(o.key_id)) throw new InputError('FIELD_FORMAT', { field: 'batch_sig.key_id', rule: 'string:1-200,no-control-chars' });
  if (o.tree_size !== events) throw new InputError('FIELD_RANGE', { field: 'batch_sig.tree_size', rule: 'const:events.length' });
  const rootBytes = typeof o.root === 'string' ? decodeBase64Strict(o.root) : undefined;
  if (!rootBytes || rootBytes.length !== 32) throw new InputError('BAD_BASE64', { field: 'batch_sig.root', rule: 'base64:32-bytes' });
  const signatureBytes = typeof o.signature === 'string' ? decodeBase64Strict(o.signature) : undefined;
  if (!signatureBytes || signatureBytes.length !== 64) throw new InputError('BAD_BASE64', { field: 'batch_sig.signature', rule: 'base64:64-bytes' });
  return { algo: 'ed25519' as const, key_id: o.key_id, tree_size: events, root: o.root as string, signature: o.signature as string, rootBytes, signatureBytes };
}

function kindOf(raw: unknown): Kind {
  const schema = typeof raw === 'object' && raw !== null ? (raw as { schema?: unknown }).schema : undefined;
  if (schema === USAGE_SCHEMA) return 'usage';
  if (schema === JOB_STATUS_SCHEMA) return 'job_status';
  if (schema === undefined) throw new InputError('FIELD_REQUIRED', { field: 'schema', rule: 'required' });
  throw new InputError('SCHEMA_UNKNOWN', { field: 'schema', rule: `enum:${USAGE_SCHEMA}|${JOB_STATUS_SCHEMA}` });
}

export function asKachingError(err: unknown, log?: Logger): KachingError {
  if (err instanceof KachingError) return err;
  log?.error({ err }, 'unexpected ingest error');
  return new KachingError('INTERNAL');
}
