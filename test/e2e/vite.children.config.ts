import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

// Child processes of the e2e tests run TypeScript sources through vite-node with the same
// @kaching/* aliases as vitest, so they never depend on a stale dist/.
const pkg = (name: string) => fileURLToPath(new URL(`../../${name}/src/mod.ts`, import.meta.url));

export default defineConfig({
  resolve: {
    alias: {
      '@kaching/sdk/protocol': fileURLToPath(new URL('../../ingest/sdk/src/protocol/mod.ts', import.meta.url)),
      '@kaching/sdk': fileURLToPath(new URL('../../ingest/sdk/src/mod.ts', import.meta.url)),
      '@kaching/contracts': pkg('contracts'),
      '@kaching/ingest': pkg('ingest'),
      '@kaching/projector': pkg('projector'),
      '@kaching/enforcer': pkg('enforcer'),
      '@kaching/api': pkg('api'),
      '@kaching/hq': pkg('hq'),
    },
  },
  logLevel: 'silent',
});
