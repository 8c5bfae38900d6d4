import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { requireTool } from '../support/tools.js';

const DEPLOY = fileURLToPath(new URL('../../deploy/', import.meta.url));
const KEY = Buffer.alloc(32, 7).toString('base64');

/**
 * What can be validated of the packaging on this machine (deploy/README.md "What is tested"): the compose file
 * by Debian's docker-compose, the systemd units by systemd-analyze, and that every packaging can set the
 * license verification key (before, compose and Helm could not, so `license activate` failed there).
 */
describe('packaging', () => {
  const tmp: string[] = [];
  afterAll(() => {
    for (const d of tmp) rmSync(d, { recursive: true, force: true });
  });

  const composeConfig = (env: NodeJS.ProcessEnv) => {
    const bin = requireTool('docker-compose', 'docker-compose');
    const clean = { ...process.env };
    delete clean.KACHING_LICENSE_PUBLIC_KEY;
    return spawnSync(bin, ['-f', path.join(DEPLOY, 'compose.yaml'), 'config'], { cwd: DEPLOY, env: { ...clean, ...env }, encoding: 'utf8' });
  };

  it('deploy/compose.yaml is valid for `docker-compose config` and passes KACHING_LICENSE_PUBLIC_KEY to kaching', () => {
    const r = composeConfig({ KACHING_LICENSE_PUBLIC_KEY: KEY });
    expect({ status: r.status, stderr: r.stderr.trim() }).toEqual({ status: 0, stderr: '' });
    const kaching = r.stdout.slice(r.stdout.indexOf('\n  kaching:'), r.stdout.indexOf('\n  nats:'));
    expect(kaching).toContain(`KACHING_LICENSE_PUBLIC_KEY: ${KEY}`);
    expect(r.stdout).toMatch(/nats\/compose\.conf:\/etc\/nats\/kaching\.conf:ro/);
    // unset, the file is still valid: the variable is empty and license activation says it is not configured
    const unset = composeConfig({});
    expect(unset.status).toBe(0);
    expect(unset.stdout).toContain("KACHING_LICENSE_PUBLIC_KEY: ''");
  });

  it('the systemd units pass systemd-analyze verify, and their env file names KACHING_LICENSE_PUBLIC_KEY', () => {
    const bin = requireTool('systemd-analyze', 'systemd');
    // verify resolves the units by file name: the template needs an instance, and ExecStart's node must exist
    const dir = mkdtempSync(path.join(tmpdir(), 'kaching-units-'));
    tmp.push(dir);
    cpSync(path.join(DEPLOY, 'systemd'), dir, { recursive: true });
    const units = ['kaching.service', 'kaching@ingest.service', 'kaching@api.service', 'kaching-projector@0.service', 'kaching-enforcer@0.service', 'kaching.target'].map((u) => path.join(dir, u));
    const r = spawnSync(bin, ['verify', ...units], { cwd: dir, encoding: 'utf8' });
    expect({ status: r.status, problems: `${r.stdout}${r.stderr}`.trim() }).toEqual({ status: 0, problems: '' });
    expect(readFileSync(path.join(DEPLOY, 'systemd/kaching.env'), 'utf8')).toMatch(/^KACHING_LICENSE_PUBLIC_KEY=/m);
  });

  it('the Helm chart sets KACHING_LICENSE_PUBLIC_KEY from values.licensePublicKey (not rendered here: no helm binary in Debian)', () => {
    expect(readFileSync(path.join(DEPLOY, 'helm/kaching/values.yaml'), 'utf8')).toMatch(/^licensePublicKey: ""$/m);
    const cm = readFileSync(path.join(DEPLOY, 'helm/kaching/templates/configmap.yaml'), 'utf8');
    expect(cm).toContain('{{- with .Values.licensePublicKey }}\n  KACHING_LICENSE_PUBLIC_KEY: {{ . | quote }}\n  {{- end }}');
    // every service container reads that ConfigMap
    expect(readFileSync(path.join(DEPLOY, 'helm/kaching/templates/deployments.yaml'), 'utf8')).toMatch(/containers:[\s\S]*configMapRef:\s*\n\s*name: \{\{ include "kaching.fullname" \$ \}\}-env/);
  });
});
