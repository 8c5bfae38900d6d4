import type pg from 'pg';
import type { NatsConnection } from '@nats-io/transport-node';
import type { KV } from '@nats-io/kv';
import type { FastifyRequest } from 'fastify';
import { asOrg, KachingError, publishConfigChange, type ConfigChange, type Names } from '@kaching/contracts';
import type { ApiConfig } from '../config.js';
import type { Caller, ApiScope } from '../routines/apikeys.js';
import type { AuthServices } from './auth.js';

export interface ApiContext {
  config: ApiConfig;
  pool: pg.Pool;
  nc: NatsConnection;
  names: Names;
  decisions(): Promise<KV>;
  /** The effective-features bucket (created on first use). */
  featuresKv(): Promise<KV>;
  auth: AuthServices;
  /** The API's clock (injected by tests): session and JWT lifetimes, sign-in windows. */
  now(): Date;
}

declare module 'fastify' {
  interface FastifyRequest {
    caller?: Caller;
  }
  interface FastifySchema {
    summary?: string;
    description?: string;
    tags?: string[];
    /** Media type of the 200 answer when not JSON. */
    produces?: string;
    hide?: boolean;
  }
  interface FastifyContextConfig {
    /** Scope the route needs; 'none' for public routes (docs, health); 'page' for HTML pages behind sign-in. */
    auth?: ApiScope | 'none' | 'page';
    /** GET answers get Cache-Control + ETag. */
    cache?: boolean;
  }
}

export function callerOf(req: FastifyRequest): Caller {
  if (!req.caller) throw new KachingError('API_KEY_MISSING');
  return req.caller;
}

/** Runs fn under row-level security as the caller's org. */
export function withOrg<T>(ctx: ApiContext, req: FastifyRequest, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  return asOrg(ctx.pool, callerOf(req).orgId, fn);
}

export function configChanged(ctx: ApiContext, change: Omit<ConfigChange, 'at'>): void {
  publishConfigChange(ctx.nc, ctx.names, change);
}
