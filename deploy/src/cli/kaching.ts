import { commands as contractsCommands, type Command } from '@kaching/contracts';
import { dispatch } from './dispatch.js';

/** Every package contributes its commands; this file only routes. */
async function allCommands(): Promise<Command[]> {
  const packages = await Promise.all([
    import('@kaching/ingest'),
    import('@kaching/projector'),
    import('@kaching/enforcer'),
    import('@kaching/archiver'),
    import('@kaching/api'),
    import('@kaching/hq'),
    import('../up/commands.js'),
    // the benchmark lives with the tests (test/bench) and is compiled by the same `tsc -b`
    import('../../../test/bench/dist/mod.js'),
  ]);
  return [...contractsCommands, ...packages.flatMap((p) => ((p as { commands?: Command[] }).commands ?? []))];
}

const code = await dispatch(await allCommands(), process.argv.slice(2));
process.exitCode = code;
