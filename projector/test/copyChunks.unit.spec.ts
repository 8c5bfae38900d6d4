import { describe, expect, it } from 'vitest';
import { COPY_CHUNK_BYTES, CopyChunks } from '../src/db/copyChunks.js';

describe('CopyChunks', () => {
  it('hands over chunks of at most the chunk size that join to exactly the UTF-8 of every line, in order', () => {
    const c = new CopyChunks();
    const lines = Array.from({ length: 20_000 }, (_, i) => `${i}\tcoder-é-${'x'.repeat(i % 97)}\t€\t\\N\n`);
    const chunks: Buffer[] = [];
    for (const l of lines) {
      const full = c.add(l);
      if (full) chunks.push(full);
    }
    const rest = c.take();
    if (rest) chunks.push(rest);
    expect(chunks.length).toBeGreaterThan(2);
    for (const ch of chunks) expect(ch.length).toBeLessThanOrEqual(COPY_CHUNK_BYTES);
    expect(Buffer.concat(chunks).equals(Buffer.from(lines.join(''), 'utf8'))).toBe(true);
    expect(c.take()).toBeNull();
  });

  it('takes a line longer than a chunk whole', () => {
    const c = new CopyChunks();
    const big = `${'ü'.repeat(COPY_CHUNK_BYTES)}\n`;
    expect(c.add('a\n')).toBeNull();
    expect(c.add(big)?.toString()).toBe('a\n');
    expect(c.take()?.toString()).toBe(big);
  });
});
