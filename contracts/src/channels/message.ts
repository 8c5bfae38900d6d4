import type { PolicyDecision } from '../types/decision.js';
import { formatQuantity } from '../format/human.js';

/** What a channel test delivers (stored in the delivery log like a decision). */
export interface ChannelTestPayload {
  schema: 'kaching.v1.channel_test';
  channel_id: string;
  message: string;
  issued_at: string;
}
export type DeliveryPayload = PolicyDecision | ChannelTestPayload;

export function testPayload(channelId: string, now = new Date()): ChannelTestPayload {
  return { schema: 'kaching.v1.channel_test', channel_id: channelId, message: 'Test message from KACHING: this channel receives alerts.', issued_at: now.toISOString() };
}

const isTest = (p: DeliveryPayload): p is ChannelTestPayload => p.schema === 'kaching.v1.channel_test';

/** The Standard Webhooks envelope: `type`, `timestamp`, `data` (the decision as the enforcer publishes it). */
export function webhookBody(p: DeliveryPayload): string {
  if (isTest(p)) return JSON.stringify({ type: 'channel.test', timestamp: p.issued_at, data: p });
  return JSON.stringify({ type: `decision.${p.state}`, timestamp: p.issued_at, data: p });
}

const mrkdwnEscape = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Slack incoming-webhook JSON: `text` (notification fallback) and `blocks` with the figures formatted for people. */
export function slackBody(p: DeliveryPayload): string {
  if (isTest(p)) {
    return JSON.stringify({
      text: `KACHING test: ${p.message}`,
      blocks: [{ type: 'section', text: { type: 'mrkdwn', text: `:white_check_mark: *KACHING test*\n${mrkdwnEscape(p.message)}` } }],
    });
  }
  const icon = p.severity === 'error' ? ':rotating_light:' : p.severity === 'warn' ? ':warning:' : ':information_source:';
  const fields: { type: 'mrkdwn'; text: string }[] = [
    { type: 'mrkdwn', text: `*Scope*\n${mrkdwnEscape(p.scope)}` },
    { type: 'mrkdwn', text: `*Action*\n${p.action} (${p.enforcement})` },
  ];
  if (p.metric && p.observed !== undefined) fields.push({ type: 'mrkdwn', text: `*Used*\n${formatQuantity(p.metric, p.observed)}` });
  if (p.metric && p.limit !== undefined) fields.push({ type: 'mrkdwn', text: `*Limit*\n${formatQuantity(p.metric, p.limit)}` });
  if (p.period) fields.push({ type: 'mrkdwn', text: `*Period*\n${p.period.kind} from ${p.period.window_start.slice(0, 10)}` });
  return JSON.stringify({
    text: `[KACHING ${p.code}] ${p.message}`,
    blocks: [
      { type: 'header', text: { type: 'plain_text', text: `${p.code.replace(/_/g, ' ').toLowerCase().replace(/^./, (c) => c.toUpperCase())}`, emoji: true } },
      { type: 'section', text: { type: 'mrkdwn', text: `${icon} ${mrkdwnEscape(p.message)}` }, fields },
      { type: 'context', elements: [{ type: 'mrkdwn', text: `deployment ${p.deployment_id} · severity ${p.severity} · ${p.issued_at}` }] },
    ],
  });
}
