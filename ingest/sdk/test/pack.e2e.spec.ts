import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const SDK_DIR = fileURLToPath(new URL('..', import.meta.url));
const work = mkdtempSync(path.join(tmpdir(), 'kaching-sdk-pack-'));

afterAll(() => rmSync(work, { recursive: true, force: true }));

/** The SDK as a user gets it: `npm pack`ed, installed alone into an empty project, used from plain Node. */
describe('@kaching/sdk as a package of its own', () => {
  it('packs only its build, installs into an empty directory with no dependencies, and signs events there', () => {
    const packed = JSON.parse(execFileSync('npm', ['pack', '--json', '--pack-destination', work], { cwd: SDK_DIR, encoding: 'utf8' })) as { filename: string; files: { path: string }[] }[];
    const files = packed[0]!.files.map((f) => f.path);
    expect(files).toContain('dist/mod.js');
    expect(files).toContain('dist/protocol/mod.js');
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('test/'))).toEqual([]);

    const app = path.join(work, 'app');
    execFileSync('mkdir', ['-p', app]);
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' }));
    execFileSync('npm', ['install', '--no-audit', '--no-fund', '--offline', path.join(work, packed[0]!.filename)], { cwd: app, encoding: 'utf8' });
    // nothing but the SDK itself was installed
    expect(readdirSync(path.join(app, 'node_modules')).filter((d) => !d.startsWith('.'))).toEqual(['@kaching']);
    expect(readdirSync(path.join(app, 'node_modules', '@kaching'))).toEqual(['sdk']);

    writeFileSync(
      path.join(app, 'main.mjs'),
      `import { generateKeyPairSync, verify } from 'node:crypto';
import { EventSigner, canonicalize, createAgent, wrapOpenAI, wrapAnthropic, withTags } from '@kaching/sdk';
import { merkleLeafHash, merkleRoot, batchSigningBytes } from '@kaching/sdk/protocol';
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d, 'base64url').toString('base64');
const signer = new EventSigner('k1', seed);
const event = { schema: 'kaching.v1.usage', deployment_id: '00000000-0000-4000-8000-000000000001', agent: { agent_id: '00000000-0000-4000-8000-000000000002', agent_type: 'x' },
  node: { node_id: '00000000-0000-4000-8000-000000000003', hostname: 'h' }, job: { job_id: '00000000-0000-4000-8000-000000000004', correlation_id: 'c1', ucxl_addr: 'ucxl://a:b@c:d', started_at: '2026-01-01T00:00:00Z', ended_at: '2026-01-01T00:00:01Z', status: 'succeeded' },
  metrics: { cpu_seconds: 1, gpu_seconds: 0, ram_mb_peak: 0, disk_io_mb: 0, net_in_mb: 0, net_out_mb: 0, context_reads: 0, context_writes: 0, context_bytes_read: 0, context_bytes_written: 0 } };
const signed = signer.sign(event);
const eventOk = verify(null, Buffer.from(canonicalize(event)), publicKey, Buffer.from(signed.sig.signature, 'base64'));
const batch = signer.signBatch([event, { ...event, job: { ...event.job, correlation_id: 'c2' } }]);
const root = merkleRoot([event, { ...event, job: { ...event.job, correlation_id: 'c2' } }].map((e) => merkleLeafHash(Buffer.from(canonicalize(e)))));
const batchOk = root.toString('base64') === batch.root && verify(null, batchSigningBytes(root, 2), publicKey, Buffer.from(batch.signature, 'base64'));
const agent = await createAgent({ ingestUrl: 'http://127.0.0.1:9', token: 't', deploymentId: event.deployment_id, keyId: 'k1', secretKey: seed, flushIntervalMs: 60000 });
await withTags({ team: 'ml' }, () => agent.emitUsage({ ucxlAddr: 'ucxl://a:b@c:d', startedAt: new Date(), metrics: { cpu_seconds: 1 } }));
const stats = agent.stats();
await agent.close();
console.log(JSON.stringify({ eventOk, batchOk, queued: stats.queued, wrappers: typeof wrapOpenAI === 'function' && typeof wrapAnthropic === 'function' }));
`,
    );
    const out = JSON.parse(execFileSync(process.execPath, ['main.mjs'], { cwd: app, encoding: 'utf8' }).trim()) as Record<string, unknown>;
    expect(out).toEqual({ eventOk: true, batchOk: true, queued: 1, wrappers: true });
  });
});
