import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

// Tests import package sources directly, so `vitest` needs no build; child processes use dist/.
const pkg = (name: string) => fileURLToPath(new URL(`./${name}/src/mod.ts`, import.meta.url));
const alias = {
  // the SDK's protocol subpath before the SDK itself: aliases match by prefix
  '@kaching/sdk/protocol': fileURLToPath(new URL('./ingest/sdk/src/protocol/mod.ts', import.meta.url)),
  '@kaching/sdk': fileURLToPath(new URL('./ingest/sdk/src/mod.ts', import.meta.url)),
  '@kaching/contracts': pkg('contracts'),
  '@kaching/ingest': pkg('ingest'),
  '@kaching/projector': pkg('projector'),
  '@kaching/enforcer': pkg('enforcer'),
  '@kaching/archiver': pkg('archiver'),
  '@kaching/api': pkg('api'),
  '@kaching/hq': pkg('hq'),
};
const exclude = ['**/node_modules/**', '**/dist/**'];

export default defineConfig({
  test: {
    // services log at info in production; tests only want warnings unless asked otherwise
    env: { LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' },
    // Most files wait on servers and child processes, not on this CPU: vitest's default (cores - 1) runs
    // them one at a time on a 2-core machine. KACHING_TEST_WORKERS overrides.
    maxWorkers: Number(process.env.KACHING_TEST_WORKERS ?? 2),
    minWorkers: 1,
    projects: [
      { resolve: { alias }, test: { name: 'unit', include: ['**/*.unit.spec.ts'], exclude } },
      {
        resolve: { alias },
        test: { name: 'int', include: ['**/*.int.spec.ts'], exclude, testTimeout: 60_000, hookTimeout: 60_000 },
      },
      {
        resolve: { alias },
        test: { name: 'e2e', include: ['**/*.e2e.spec.ts'], exclude, testTimeout: 180_000, hookTimeout: 120_000 },
      },
    ],
  },
});
