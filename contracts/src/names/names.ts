import { partitionOf, type Lane } from '../consumer/partition.js';

/**
 * Every stream, subject, consumer, KV bucket and Postgres schema name derives from one namespace,
 * so two installations (or two test files) on the same NATS and Postgres never meet.
 */
export const DEFAULT_NAMESPACE = 'kaching';
const NAMESPACE_RULE = /^[a-z][a-z0-9_]{0,30}$/;

export type ProjectionName = 'raw' | 'rollups' | 'concurrency';
export const PROJECTIONS: readonly ProjectionName[] = ['raw', 'rollups', 'concurrency'];

export interface Names {
  namespace: string;
  /** Postgres schema holding every table of this installation. */
  dbSchema: string;
  eventsStream: string;
  /**
   * `<ns>.events.<N>.<p>.<deployment>.<kind>` with N the partition count and p the deployment's partition
   * (FNV-1a, see consumer/partition.ts); the stream captures `<ns>.events.>`.
   */
  eventSubject(deploymentId: string, kind: 'usage' | 'job_status', partitions: number): string;
  /** The 4-token subject written before partitions existed (still read as the "legacy" lane). */
  legacyEventSubject(deploymentId: string, kind: 'usage' | 'job_status'): string;
  /** The filter subject of one lane. */
  laneFilter(lane: Lane): string;
  eventsWildcard: string;
  /** Agents on NATS send ingest requests here (token in a header). */
  ingestSubject(deploymentId: string): string;
  ingestWildcard: string;
  decisionsStream: string;
  controlSubject(deploymentId: string): string;
  controlWildcard: string;
  /** Config changes published by the API/CLI so the enforcer reacts at once. */
  configSubject(deploymentId: string): string;
  configWildcard: string;
  /** Admission checks ("may this job run?"). */
  checkSubject(deploymentId: string): string;
  checkWildcard: string;
  decisionsBucket: string;
  /** KV key of the current decision per (deployment, scope). */
  decisionKey(deploymentId: string, scope: string): string;
  /** KV bucket of the effective features (license merged with flags), one key per deployment. */
  featuresBucket: string;
  /** KV key of a deployment's effective features: the deployment id. */
  featuresKey(deploymentId: string): string;
  consumer(name: ProjectionName | 'enforcer' | string): string;
}

export function isValidNamespace(ns: string): boolean {
  return NAMESPACE_RULE.test(ns);
}

export function names(namespace: string = DEFAULT_NAMESPACE): Names {
  if (!isValidNamespace(namespace)) {
    throw new Error(`KACHING_NAMESPACE must match ${NAMESPACE_RULE} (got "${namespace}")`);
  }
  const ns = namespace;
  const NS = ns.toUpperCase();
  return {
    namespace: ns,
    dbSchema: ns,
    eventsStream: `${NS}_EVENTS`,
    eventSubject: (d, kind, partitions) => `${ns}.events.${partitions}.${partitionOf(d, partitions)}.${d}.${kind}`,
    legacyEventSubject: (d, kind) => `${ns}.events.${d}.${kind}`,
    laneFilter: (lane) => (lane.count === null ? `${ns}.events.*.*` : `${ns}.events.${lane.count}.${lane.partition}.>`),
    eventsWildcard: `${ns}.events.>`,
    ingestSubject: (d) => `${ns}.ingest.${d}`,
    ingestWildcard: `${ns}.ingest.*`,
    decisionsStream: `${NS}_DECISIONS`,
    controlSubject: (d) => `${ns}.control.${d}`,
    controlWildcard: `${ns}.control.*`,
    configSubject: (d) => `${ns}.config.${d}`,
    configWildcard: `${ns}.config.*`,
    checkSubject: (d) => `${ns}.check.${d}`,
    checkWildcard: `${ns}.check.*`,
    decisionsBucket: `${ns}_decisions`,
    // KV keys allow [-/_=.a-zA-Z0-9]; scopes are sanitised so any scope string maps to one key.
    decisionKey: (d, scope) => `${d}.${scope.replace(/[^-/_=a-zA-Z0-9]/g, '_')}`,
    featuresBucket: `${ns}_features`,
    featuresKey: (d) => d,
    consumer: (name) => `${ns}_${name}`,
  };
}
