import type { NatsConnection } from '@nats-io/transport-node';
import type { Logger } from 'pino';

/**
 * Whether a service's NATS connection is up right now (a closed connection never is). Readiness reports it, so
 * a probe sees an outage while it lasts and the service as ready again once the client reconnected (services
 * connect with `connectNats`, which retries for ever). Before, /readyz checked only `isClosed()`: the API said
 * `nats: true` through an outage, and once nats.js gave up (10 attempts, ~20 s) nothing ever recovered.
 */
export class NatsLink {
  private up = true;

  constructor(
    private readonly nc: NatsConnection,
    log?: Pick<Logger, 'warn' | 'info'>,
  ) {
    void (async () => {
      for await (const s of nc.status()) {
        if (s.type === 'disconnect') {
          this.up = false;
          log?.warn({ server: s.server }, 'NATS disconnected; reconnecting for as long as it takes');
        } else if (s.type === 'reconnect') {
          this.up = true;
          log?.info({ server: s.server }, 'NATS reconnected');
        }
      }
    })().catch(() => undefined);
  }

  get connected(): boolean {
    return this.up && !this.nc.isClosed();
  }
}
