import { describe, expect, it } from 'vitest';
import { assignLaneGroups, assignLanes, fnv1a32, lanesOf, names, parseLane, partitionOf } from '@kaching/contracts';

describe('partitions hash like nats-server partition()', () => {
  it('FNV-1a-32 of the token bytes, as fnv.New32a in server/subject_transform.go (reference values)', () => {
    // FNV-1a test vectors (Fowler/Noll/Vo): "", "a", "foobar"
    expect(fnv1a32('')).toBe(0x811c9dc5);
    expect(fnv1a32('a')).toBe(0xe40c292c);
    expect(fnv1a32('foobar')).toBe(0xbf9cf968);
  });

  it('matches the partition numbers of the NATS subject-mapping documentation', () => {
    // docs: neworders.* -> neworders.{{wildcard(1)}}.{{partition(3,1)}}
    const doc3: Record<string, number> = { customerid1: 0, customerid2: 2, customerid3: 1, customerid4: 2, customerid5: 1, customerid6: 0 };
    for (const [k, p] of Object.entries(doc3)) expect(partitionOf(k, 3), k).toBe(p);
    // docs: foo.*.* -> foo.{{wildcard(1)}}.{{wildcard(2)}}.{{partition(10,1,2)}} hashes the tokens concatenated
    expect(partitionOf('1a', 10)).toBe(1);
    expect(partitionOf('1b', 10)).toBe(0);
    expect(partitionOf('2b', 10)).toBe(9);
    expect(partitionOf('2a', 10)).toBe(2);
  });

  it('puts the partition into the subject; lanes filter their own subjects only', () => {
    const n = names('kaching');
    const dep = '6f1c1b7e-2a5b-4c8e-9b1d-0c6f7a9e1d23';
    const p = partitionOf(dep, 4);
    expect(n.eventSubject(dep, 'usage', 4)).toBe(`kaching.events.4.${p}.${dep}.usage`);
    expect(n.legacyEventSubject(dep, 'usage')).toBe(`kaching.events.${dep}.usage`);
    expect(n.laneFilter(parseLane(`4.${p}`))).toBe(`kaching.events.4.${p}.>`);
    expect(n.laneFilter(parseLane('legacy'))).toBe('kaching.events.*.*');
    expect(() => parseLane('4.4')).toThrow();
  });

  it('assigns lanes deterministically and balanced, moving few lanes when a member joins', () => {
    const lanes = ['legacy', ...lanesOf(4).map((l) => l.id)];
    const two = assignLanes(lanes, ['a', 'b']);
    expect(assignLanes(lanes, ['b', 'a'])).toEqual(two);
    const load = (m: Map<string, string>) => [...m.values()].reduce((acc, o) => acc.set(o, (acc.get(o) ?? 0) + 1), new Map<string, number>());
    expect([...load(two).values()].sort()).toEqual([2, 3]);
    const three = assignLanes(lanes, ['a', 'b', 'c']);
    expect(Math.max(...load(three).values())).toBe(2);
    expect(assignLanes(lanes, ['a']).size).toBe(5);
  });

  it('leaves no member without a lane while another holds two more than it', () => {
    // 5 lanes over 4 members: 2/1/1/1 for every member list (a cap of ceil(5/4) = 2 alone allowed 2/2/1/0)
    for (let i = 0; i < 200; i++) {
      const members = ['a', 'b', 'c', 'd'].map((m) => `${m}-${i}`);
      const m = assignLanes(['legacy', ...lanesOf(4).map((l) => l.id)], members);
      const load = members.map((x) => [...m.values()].filter((o) => o === x).length).sort();
      expect(load).toEqual([1, 1, 1, 2]);
    }
  });

  it('balances the live partitions apart from the draining lanes', () => {
    for (let i = 0; i < 200; i++) {
      const members = ['a', 'b', 'c', 'd'].map((m) => `${m}-${i}`);
      const m = assignLaneGroups(lanesOf(4).map((l) => l.id), ['legacy'], members);
      // every member reads exactly one live partition; the legacy lane goes to one of them on top
      for (const x of members) expect(lanesOf(4).filter((l) => m.get(l.id) === x)).toHaveLength(1);
      expect(members).toContain(m.get('legacy'));
    }
  });
});

describe('KACHING_STREAM_REPLICAS', () => {
  it('warns when streams run at R1 on a cluster, not standalone or at R3', async () => {
    const { warnOnReplicas } = await import('@kaching/contracts');
    const warned: string[] = [];
    const log = { warn: (_o: object, msg: string) => void warned.push(msg) };
    const server = (cluster?: string) => ({ info: cluster ? { cluster } : {} }) as unknown as Parameters<typeof warnOnReplicas>[0];
    expect(warnOnReplicas(server('kaching'), 1, log)).toBe(true);
    expect(warnOnReplicas(server('kaching'), 3, log)).toBe(false);
    expect(warnOnReplicas(server(), 1, log)).toBe(false);
    expect(warned).toHaveLength(1);
    expect(warned[0]).toMatch(/KACHING_STREAM_REPLICAS=3/);
  });
});
