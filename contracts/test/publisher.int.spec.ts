import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { ensureEventsStream, JetStreamPublisher, PublishFailed } from '../src/mod.js';
import { isolatedEnv, type IsolatedEnv } from '../../test/support/isolation.js';

describe('JetStreamPublisher (real NATS)', () => {
  let env: IsolatedEnv;
  let nc: NatsConnection;

  beforeAll(async () => {
    env = await isolatedEnv({ migrate: false });
    nc = await env.nats();
    await ensureEventsStream(nc, env.names);
  });
  afterAll(async () => {
    await env?.cleanup();
  });

  const subject = () => env.names.eventSubject('00000000-0000-4000-8000-000000000001', 'usage', 1);

  it('answers with the PubAck: sequence, and duplicate for an exact resend (same message id)', async () => {
    const p = new JetStreamPublisher(nc, 5000);
    try {
      const data = new TextEncoder().encode('one');
      const a = await p.publish(subject(), data, 'id-1', { 'Kaching-Test': 'x' });
      const b = await p.publish(subject(), data, 'id-1');
      const c = await p.publish(subject(), data, 'id-2');
      expect(a).toMatchObject({ stream: env.names.eventsStream, duplicate: false });
      expect(b).toEqual({ ...a, duplicate: true });
      expect(c.seq).toBe(a.seq + 1);
      const m = await (await jetstreamManager(nc)).streams.getMessage(env.names.eventsStream, { seq: a.seq });
      if (!m) throw new Error(`no message at seq ${a.seq}`);
      expect(m.header.get('Nats-Msg-Id')).toBe('id-1');
      expect(m.header.get('Kaching-Test')).toBe('x');
    } finally {
      p.close();
    }
  });

  it('keeps many appends in flight and answers each one', async () => {
    const p = new JetStreamPublisher(nc, 5000);
    try {
      const acks = await Promise.all(Array.from({ length: 2000 }, (_, i) => p.publish(subject(), new Uint8Array([i % 256]), `many-${i}`)));
      expect(new Set(acks.map((a) => a.seq)).size).toBe(2000);
      expect(p.inFlight).toBe(0);
    } finally {
      p.close();
    }
  });

  it('fails, never succeeds, when no stream takes the subject', async () => {
    const p = new JetStreamPublisher(nc, 5000);
    try {
      const err = await p.publish(`${env.namespace}.nostream.x`, new Uint8Array([1]), 'x').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PublishFailed);
      expect((err as PublishFailed).reason).toBe('no_responders');
    } finally {
      p.close();
    }
  });

  it('fails with a timeout when nothing acknowledges, and on close for what is still waiting', async () => {
    const silent = nc.subscribe(`${env.namespace}.silent.>`); // takes the message, never answers
    const p = new JetStreamPublisher(nc, 300);
    try {
      const timedOut = await p.publish(`${env.namespace}.silent.a`, new Uint8Array([1]), 'y').catch((e: unknown) => e);
      expect((timedOut as PublishFailed).reason).toBe('timeout');
      const waiting = p.publish(`${env.namespace}.silent.b`, new Uint8Array([1]), 'z').catch((e: unknown) => e);
      p.close();
      expect(((await waiting) as PublishFailed).reason).toBe('closed');
    } finally {
      silent.unsubscribe();
      p.close();
    }
  });
});
