import { connect, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';

/** NATS_URL may list several servers (a cluster), comma-separated. */
export function natsServers(url: string): string[] {
  return url.split(',').map((s) => s.trim()).filter(Boolean);
}

/**
 * A connection to NATS_URL's servers. Services keep theirs for their whole life, so by default it reconnects
 * for ever (nats.js gives up after 10 attempts, about 20 s, and a service would then sit dead); a one-shot
 * command passes its own limits.
 */
export function connectNats(url: string, opts: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
  return connect({ maxReconnectAttempts: -1, reconnectTimeWait: 1000, ...opts, servers: natsServers(url) });
}
