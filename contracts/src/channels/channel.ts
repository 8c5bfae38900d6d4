import { isIP } from 'node:net';
import { InputError } from '../errors/errors.js';
import type { DecisionCode, PolicyDecision } from '../types/decision.js';

export const CHANNEL_KINDS = ['webhook', 'slack'] as const;
export type ChannelKind = (typeof CHANNEL_KINDS)[number];
export const ALERT_CODES: readonly DecisionCode[] = [
  'QUOTA_NEARING', 'QUOTA_EXCEEDED', 'BUDGET_EXCEEDED', 'NODES_LIMIT_EXCEEDED', 'SEATS_LIMIT_EXCEEDED', 'LICENSE_EXPIRED', 'PRICE_UNKNOWN',
];
export const SEVERITIES: readonly PolicyDecision['severity'][] = ['info', 'warn', 'error'];

export interface NewChannel {
  name?: string;
  kind: string;
  url: string;
  /** Only this deployment's alerts; absent: every deployment of the org. */
  deployment_id?: string | null;
  /** Only these alert codes / severities; absent: all. */
  codes?: string[] | null;
  severities?: string[] | null;
}

export interface Channel {
  channel_id: string;
  org_id: string;
  name: string | null;
  kind: ChannelKind;
  /** Slack incoming-webhook URLs are credentials: shown with their token cut off. */
  url: string;
  deployment_id: string | null;
  codes: string[] | null;
  severities: string[] | null;
  enabled: boolean;
  created_at: string;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const isUuid = (v: unknown): v is string => typeof v === 'string' && UUID.test(v);

function loopback(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || (isIP(h) === 4 && h.startsWith('127.')) || h === '::1';
}

/** http(s) only, no credentials in it; plain http only to this machine (tests, a local relay). */
export function checkChannelUrl(raw: unknown, field = 'url'): string {
  if (typeof raw !== 'string' || raw.length > 2000) throw new InputError('CHANNEL_URL_INVALID', { field, rule: 'maxLength:2000' });
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new InputError('CHANNEL_URL_INVALID', { field, rule: 'format:url', message: 'The channel URL is not an absolute URL' });
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new InputError('CHANNEL_URL_INVALID', { field, rule: 'scheme:https', message: 'The channel URL must be https' });
  if (u.protocol === 'http:' && !loopback(u.hostname)) {
    throw new InputError('CHANNEL_URL_INVALID', { field, rule: 'scheme:https', message: 'The channel URL must be https (plain http only to localhost)' });
  }
  if (u.username || u.password) throw new InputError('CHANNEL_URL_INVALID', { field, rule: 'no-credentials', message: 'The channel URL must not carry a user or password' });
  return u.toString();
}

export function checkKind(raw: unknown, field = 'kind'): ChannelKind {
  if (typeof raw !== 'string' || !(CHANNEL_KINDS as readonly string[]).includes(raw)) {
    throw new InputError('CHANNEL_KIND_UNKNOWN', { field, rule: `enum:${CHANNEL_KINDS.join(',')}` });
  }
  return raw as ChannelKind;
}

export function checkCode(raw: unknown, field = 'code'): DecisionCode {
  if (typeof raw !== 'string' || !(ALERT_CODES as readonly string[]).includes(raw)) {
    throw new InputError('CHANNEL_FILTER_INVALID', { field, rule: `enum:${ALERT_CODES.join(',')}`, message: `Unknown alert code ${JSON.stringify(String(raw)).slice(0, 60)}` });
  }
  return raw as DecisionCode;
}

export function checkSeverity(raw: unknown, field = 'severity'): PolicyDecision['severity'] {
  if (typeof raw !== 'string' || !(SEVERITIES as readonly string[]).includes(raw)) {
    throw new InputError('CHANNEL_FILTER_INVALID', { field, rule: `enum:${SEVERITIES.join(',')}`, message: 'Unknown severity' });
  }
  return raw as PolicyDecision['severity'];
}

function list<T>(raw: unknown, field: string, check: (v: unknown, f: string) => T): T[] | null {
  if (raw === undefined || raw === null) return null;
  if (!Array.isArray(raw) || raw.length === 0 || raw.length > 20) throw new InputError('CHANNEL_FILTER_INVALID', { field, rule: 'minItems:1,maxItems:20' });
  return [...new Set(raw.map((v, i) => check(v, `${field}.${i}`)))];
}

/** Validates a new channel; every failure names the field and the rule. */
export function checkNewChannel(input: NewChannel): { name: string | null; kind: ChannelKind; url: string; deploymentId: string | null; codes: DecisionCode[] | null; severities: string[] | null } {
  const kind = checkKind(input.kind);
  const url = checkChannelUrl(input.url);
  const dep = input.deployment_id ?? null;
  if (dep !== null && !isUuid(dep)) throw new InputError('CHANNEL_FILTER_INVALID', { field: 'deployment_id', rule: 'format:uuid' });
  const name = input.name === undefined || input.name === null ? null : String(input.name).slice(0, 200);
  return { name, kind, url, deploymentId: dep, codes: list(input.codes, 'codes', checkCode), severities: list(input.severities, 'severities', checkSeverity) };
}

/** The URL as listed: a Slack webhook's path is its token, so only its first segment shows. */
export function displayUrl(kind: string, url: string): string {
  if (kind !== 'slack') return url;
  const u = new URL(url);
  const first = u.pathname.split('/').filter(Boolean)[0];
  return `${u.origin}/${first ? first + '/' : ''}…`;
}
