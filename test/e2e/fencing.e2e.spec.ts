import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { jetstream } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { currentPartitioning, ensureEventsStream, PROJECTIONS } from '@kaching/contracts';
import { verifyProjections } from '@kaching/projector';
import { generateMessages, publishMessages, type GeneratedMessage } from '../../projector/src/bench/generate.js';
import { expectedWinners } from '../../projector/test/helpers.js';
import { isolatedEnv, type IsolatedEnv } from '../support/isolation.js';
import { ServiceProcess } from '../support/instances.js';
import { deploymentsCovering, lanesCaughtUp, owners, seedDeployments, waitFor } from './scale-support.js';

/**
 * Fencing (issue 16): a projector process SIGSTOPped past its lease loses its lanes to the other one; when
 * it is continued it commits nothing more under its old fence (every checkpoint write is audited with the
 * fence it was made under and the lease's fence at that moment), and no event is lost or counted twice.
 */
describe('a projector paused past its lease (SIGSTOP, then SIGCONT)', () => {
  let env: IsolatedEnv;
  let nc: NatsConnection;
  const procs: ServiceProcess[] = [];
  const orgId = randomUUID();
  const deployments = deploymentsCovering(4, 1);
  const published: GeneratedMessage[] = [];
  let sending = true;
  let sender: Promise<void> = Promise.resolve();

  beforeAll(async () => {
    env = await isolatedEnv();
    nc = await env.nats();
    await ensureEventsStream(nc, env.names);
    await seedDeployments(env.pool, orgId, deployments);
    await currentPartitioning(env.pool, 4);
    // test-only audit of every checkpoint write
    await env.pool.query(`
      create table cp_audit (id bigserial primary key, consumer text, lane text, last_seq bigint, committed_fence bigint, lease_fence bigint);
      create function cp_audit_fn() returns trigger language plpgsql as $$ begin
        insert into cp_audit (consumer, lane, last_seq, committed_fence, lease_fence)
        values (new.consumer, new.lane, new.last_seq, new.committed_fence,
                (select fence from consumer_lease l where l.consumer = new.consumer and l.lane = new.lane));
        return new; end $$;
      create trigger cp_audit after update of last_seq on consumer_checkpoint for each row execute function cp_audit_fn();`);
    const childEnv = { ...env.env, KACHING_PARTITIONS: '4', KACHING_LEASE_MS: '2000', PROJECTOR_BATCH_SIZE: '50' };
    procs.push(new ServiceProcess('projector', childEnv, 'projector-a'), new ServiceProcess('projector', childEnv, 'projector-b'));
    await Promise.all(procs.map((p) => p.start()));
  });

  afterAll(async () => {
    sending = false;
    await sender.catch(() => undefined);
    await Promise.all(procs.map((p) => p.stop()));
    await env?.cleanup();
  });

  it('commits nothing after losing its lease; nothing lost, nothing doubled', async () => {
    const [a, b] = procs as [ServiceProcess, ServiceProcess];
    const pidOf = (owner: string) => Number(owner.split('-').at(-2));
    await waitFor(async () => {
      for (const p of PROJECTIONS) if (new Set((await owners(env.pool, p)).values()).size !== 2) return false;
      return true;
    }, 60_000, 'lanes split over both instances');
    const aHeld = [...(await owners(env.pool, 'raw')).entries()].filter(([, o]) => pidOf(o) === a.child!.pid).map(([l]) => l);
    expect(aHeld.length).toBeGreaterThan(0);
    const aLanes = aHeld.filter((l) => l !== 'legacy'); // the legacy lane gets no events here

    let round = 0;
    sender = (async () => {
      while (sending) {
        round++;
        for (const [i, deploymentId] of deployments.entries()) {
          const msgs = generateMessages(env.names, { orgId, deploymentId, jobs: 20, seed: round * 1000 + i, partitions: 4, base: new Date('2026-11-20T00:00:00Z') });
          await publishMessages(jetstream(nc), msgs);
          published.push(...msgs);
        }
      }
    })();

    await waitFor(async () => (await a.metric('kaching_projector_events_applied_total', { projection: 'raw' })) > 0, 60_000, 'instance a applying');
    a.signal('SIGSTOP');
    // b takes every lane once a's leases (2 s) expired
    await waitFor(async () => {
      for (const p of PROJECTIONS) {
        const o = await owners(env.pool, p);
        if (o.size !== 5 || [...o.values()].some((x) => pidOf(x) !== b.child!.pid)) return false;
      }
      return true;
    }, 60_000, 'b owning every lane').catch(async (err) => {
      const l = await env.pool.query('select consumer, lane, owner, fence, expires_at > now() as live from consumer_lease order by 1, 2');
      const i = await env.pool.query('select instance_id, expires_at > now() as live from kaching_instance');
      const act = await env.pool.query(`select pid, state, wait_event_type, left(query, 80) as q, now() - xact_start as age from pg_stat_activity where datname = current_database()`);
      console.log(JSON.stringify({ b: b.child!.pid, l: l.rows, i: i.rows, act: act.rows }, null, 1), b.log.slice(-3000));
      throw err;
    });
    a.signal('SIGCONT');
    // a comes back: it finds its leases gone, then gets a share of the lanes again by rebalancing
    // by its renewal failing or by a batch failing its fence check, whichever comes first
    await waitFor(async () => /lease lost|lane given up/.test(a.log), 30_000, 'a noticing it lost its leases').catch((err) => {
      console.log(a.log.slice(-4000));
      throw err;
    });
    await waitFor(async () => new Set((await owners(env.pool, 'raw')).values()).size === 2, 60_000, 'a rebalanced back in');
    sending = false;
    await sender;
    await waitFor(() => lanesCaughtUp(env.pool, nc, env.names, [...PROJECTIONS]), 120_000, 'caught up');

    // every checkpoint write was made under the lease's fence of that moment, and per lane the fences never go back
    const audit = await env.pool.query<{ consumer: string; lane: string; committed_fence: string; lease_fence: string }>('select consumer, lane, committed_fence, lease_fence from cp_audit order by id');
    expect(audit.rows.length).toBeGreaterThan(0);
    const stale = audit.rows.filter((r) => r.committed_fence !== r.lease_fence);
    expect(stale).toEqual([]);
    const lastFence = new Map<string, number>();
    for (const r of audit.rows) {
      const k = `${r.consumer}/${r.lane}`;
      expect(Number(r.committed_fence), k).toBeGreaterThanOrEqual(lastFence.get(k) ?? 0);
      lastFence.set(k, Number(r.committed_fence));
    }
    // a's lanes moved: their fences grew past the ones a held
    for (const lane of aLanes) {
      const fences = audit.rows.filter((r) => r.consumer === 'raw' && r.lane === lane).map((r) => Number(r.committed_fence));
      expect(new Set(fences).size, lane).toBeGreaterThan(1);
    }

    // exact: one usage_sample row per identity with the winning revision's numbers, rollups agree with it
    const winners = expectedWinners(published);
    const rows = await env.pool.query<{ n: string; bytes: string }>('select count(*)::text as n, sum(context_bytes_read)::text as bytes from usage_sample');
    expect(Number(rows.rows[0]!.n)).toBe(winners.size);
    expect(BigInt(rows.rows[0]!.bytes)).toBe([...winners.values()].reduce((s, w) => s + BigInt(w.contextBytesRead), 0n));
    expect(await verifyProjections(env.pool)).toEqual([]);
  });
});
