import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT, exited, spawnTs } from './support.js';

// The `up` and `simulate` commands through the real `kaching` dispatcher: --help, and --json errors.

const CLI = path.join(PROJECT, 'deploy', 'src', 'cli', 'kaching.ts');

async function run(args: string[]): Promise<{ code: number | null; out: string }> {
  const p = spawnTs(CLI, args, { ...process.env, LOG_LEVEL: 'silent' });
  const r = await exited(p);
  return { code: r.code, out: p.output() };
}

describe('kaching up / simulate CLI', () => {
  it('prints help for both commands with exit 0', async () => {
    const up = await run(['up', '--help']);
    expect(up.code).toBe(0);
    expect(up.out).toMatch(/kaching up \[options\]/);
    expect(up.out).toMatch(/--demo/);
    const sim = await run(['simulate', '--help']);
    expect(sim.code).toBe(0);
    expect(sim.out).toMatch(/--deployment <value>/);
    expect(sim.out).toMatch(/--rate <value>/);
  });

  it('answers a missing --deployment with a JSON usage error and exit 2', async () => {
    const r = await run(['simulate', '--json', '--duration', '1']);
    expect(r.code).toBe(2);
    const line = r.out.split('\n').find((l) => l.startsWith('{'))!;
    expect(JSON.parse(line).error.code).toBe('USAGE');
  });
});
