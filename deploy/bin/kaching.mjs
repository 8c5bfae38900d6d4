#!/usr/bin/env -S node --max-semi-space-size=64
// The `kaching` command. Compiled by `npm install` (prepare: tsc -b); see deploy/src/cli.
// --max-semi-space-size=64: a larger young generation; ingest spent a quarter of its CPU in scavenges at 16 MB (see README, Performance). `node deploy/bin/kaching.mjs` skips this line: pass the flag yourself.
import '../dist/cli/kaching.js';
