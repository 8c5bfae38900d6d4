import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CONFIG = path.join(ROOT, 'tsconfig.test.json');

function testProgramOptions(): ts.ParsedCommandLine {
  const read = ts.readConfigFile(CONFIG, ts.sys.readFile);
  if (read.error) throw new Error(ts.flattenDiagnosticMessageText(read.error.messageText, '\n'));
  return ts.parseJsonConfigFileContent(read.config, ts.sys, ROOT);
}

/**
 * vitest strips types without checking them, so a test's compile-time half (contracts/test/types-match's
 * Shape<T> literals) only runs if something type-checks the test files. `npm test` does: tsc -p tsconfig.test.json.
 */
describe('test files are type-checked by npm test', () => {
  it('npm test runs tsc on tsconfig.test.json before vitest', () => {
    const scripts = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> }).scripts;
    expect(scripts.test).toMatch(/tsc -p tsconfig\.test\.json && vitest run/);
  });

  it('tsconfig.test.json covers every test file of the repository', () => {
    const listed = execFileSync('git', ['ls-files', '*.spec.ts', '*/test/**/*.ts', 'test/**/*.ts'], { cwd: ROOT, encoding: 'utf8' })
      .split('\n')
      .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))
      .map((f) => path.join(ROOT, f));
    const covered = new Set(testProgramOptions().fileNames.map((f) => path.resolve(f)));
    expect(listed.filter((f) => !covered.has(f))).toEqual([]);
    expect(listed.length).toBeGreaterThan(50);
  });

  it('a drift between a TS type and its Shape literal in types-match is a compile error', () => {
    const file = path.join(ROOT, 'contracts/test/types-match.unit.spec.ts');
    const original = readFileSync(file, 'utf8');
    const drifted = original.replace("agent_type: 'required', version: 'optional' }", "agent_type: 'required' }");
    expect(drifted).not.toBe(original);
    const check = (text: string) => {
      const opts = testProgramOptions().options;
      const host = ts.createCompilerHost(opts);
      const readFile = host.readFile.bind(host);
      host.readFile = (f) => (path.resolve(f) === file ? text : readFile(f));
      const getSourceFile = host.getSourceFile.bind(host);
      host.getSourceFile = (f, lang, onError) => (path.resolve(f) === file ? ts.createSourceFile(f, text, lang) : getSourceFile(f, lang, onError));
      const program = ts.createProgram([file], opts, host);
      return ts.getPreEmitDiagnostics(program, program.getSourceFile(file)).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
    };
    expect(check(original)).toEqual([]);
    expect(check(drifted).join('\n')).toMatch(/Property 'version' is missing/);
  }, 120_000);
});
