import { connect, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

/**
 * Options every long-lived NATS connection of a service uses. nats.js gives up after 10 reconnect attempts
 * 2 s apart by default and then closes the connection for good: a NATS outage of ~20 s would leave the
 * process running but deaf (no enforcement, 500s from the API). A service instead retries for as long as it
 * runs, so it recovers from an outage of any length on its own.
 */
export const SERVICE_NATS_OPTIONS = {
  maxReconnectAttempts: -1,
  reconnectTimeWait: 1000,
  reconnectJitter: 250,
} as const satisfies Partial<ConnectionOptions>;

/** Connects a service's long-lived connection (see SERVICE_NATS_OPTIONS); `extra` may add, never weaken, options. */
export function connectService(servers: string, name: string, extra: Partial<ConnectionOptions> = {}): Promise<NatsConnection> {
  return connect({ servers, name, ...extra, ...SERVICE_NATS_OPTIONS });
}

/**
 * Whether the connection is up right now (a closed connection never is). Readiness reports it, so a probe sees
 * an outage while it lasts and the service as ready again once the client reconnected.
 */
export class NatsLink {
  private up = true;
  private readonly listeners: ((connected: boolean) => void)[] = [];

  constructor(
    private readonly nc: NatsConnection,
    log?: Pick<Logger, 'warn' | 'info'>,
  ) {
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') {
          this.set(false);
          log?.warn({ server: s.server }, 'NATS disconnected; reconnecting for as long as it takes');
        } else if (s.type === 'reconnect') {
          this.set(true);
          log?.info({ server: s.server }, 'NATS reconnected');
        }
      }
    })().catch(() => undefined);
  }

  get connected(): boolean {
    return this.up && !this.nc.isClosed();
  }

  onChange(fn: (connected: boolean) => void): void {
    this.listeners.push(fn);
  }

  private set(up: boolean): void {
    this.up = up;
    for (const l of this.listeners) l(up);
  }
}
