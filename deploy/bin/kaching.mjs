#!/usr/bin/env node
// The `kaching` command. Compiled by `npm install` (prepare: tsc -b); see deploy/src/cli.
import '../dist/cli/kaching.js';
