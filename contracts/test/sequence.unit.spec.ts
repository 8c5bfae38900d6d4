import { describe, expect, it } from 'vitest';
import { contiguousLimit } from '../src/nats/sequence.js';

const holding = (...present: number[]) => {
  const asked: number[] = [];
  const exists = async (seq: number) => (asked.push(seq), present.includes(seq));
  return { exists, asked };
};

describe('contiguousLimit', () => {
  it('moves to the highest sequence when the delivery covers checkpoint+1.. without a hole', async () => {
    const s = holding();
    expect(await contiguousLimit(10, [11, 12, 13], s.exists)).toBe(13);
    expect(s.asked).toEqual([]);
  });

  it('order of delivery does not matter, only coverage', async () => {
    expect(await contiguousLimit(10, [13, 11, 12], holding().exists)).toBe(13);
  });

  it('stops before a missing sequence the stream still holds (it will be redelivered later)', async () => {
    const s = holding(12);
    expect(await contiguousLimit(10, [11, 13, 14], s.exists)).toBe(11);
    expect(s.asked).toEqual([12]);
  });

  it('stays at the checkpoint when the first missing message comes before everything delivered', async () => {
    expect(await contiguousLimit(10, [12, 13], holding(11).exists)).toBe(10);
  });

  it('passes holes of messages the stream no longer holds (expired, deleted)', async () => {
    expect(await contiguousLimit(10, [11, 14], holding().exists)).toBe(14);
  });

  it('never moves backwards for a redelivery of what is already applied', async () => {
    expect(await contiguousLimit(20, [5, 6], holding(1, 2, 3).exists)).toBe(20);
  });
});
