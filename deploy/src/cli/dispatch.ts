import { parseArgs, type ParseArgsConfig } from 'node:util';
import { baseConfig, UsageError, type Command } from '@kaching/contracts';

/** Finds the command whose name matches the longest prefix of argv words. */
export function findCommand(all: Command[], argv: string[]): { command: Command; rest: string[] } | undefined {
  const words = argv.filter((a) => !a.startsWith('-'));
  let best: Command | undefined;
  for (const c of all) {
    const parts = c.name.split(' ');
    if (parts.every((p, i) => words[i] === p) && (!best || parts.length > best.name.split(' ').length)) best = c;
  }
  if (!best) return undefined;
  const rest = [...argv];
  for (const p of best.name.split(' ')) rest.splice(rest.indexOf(p), 1);
  return { command: best, rest };
}

export function usageOf(c: Command): string {
  const lines = [`kaching ${c.name}${(c.positionals ?? []).map((p) => (p.required ? ` <${p.name}>` : ` [${p.name}]`)).join('')} [options]`, '', c.summary, ''];
  for (const p of c.positionals ?? []) lines.push(`  ${p.name.padEnd(22)} ${p.description}`);
  for (const [k, o] of Object.entries(c.options ?? {})) {
    const flag = `--${k}${o.type === 'string' ? ' <value>' : ''}`;
    const dflt = o.default !== undefined ? ` (default: ${String(o.default)})` : o.required ? ' (required)' : '';
    lines.push(`  ${flag.padEnd(22)} ${o.description}${dflt}`);
  }
  lines.push(`  ${'--json'.padEnd(22)} machine-readable output`, `  ${'--help'.padEnd(22)} this help`);
  if (c.details) lines.push('', c.details);
  return lines.join('\n');
}

export function overview(all: Command[]): string {
  const width = Math.max(...all.map((c) => c.name.length)) + 2;
  return [
    'kaching — usage metering and budget enforcement for AI-agent fleets',
    '',
    'Usage: kaching <command> [options]   (every command takes --json and --help)',
    '',
    'Commands:',
    ...[...all].sort((a, b) => a.name.localeCompare(b.name)).map((c) => `  ${c.name.padEnd(width)}${c.summary}`),
    '',
    'Environment: NATS_URL, DATABASE_URL, KACHING_NAMESPACE, INGEST_PORT, API_PORT, LOG_LEVEL;',
    '  NATS_TLS_CA, NATS_TLS_CERT, NATS_TLS_KEY, NATS_USER, NATS_PASSWORD, NATS_CREDS; INGEST_TLS_CERT, INGEST_TLS_KEY, INGEST_TLS_CLIENT_CA',
  ].join('\n');
}

/** Runs one command line; returns the process exit code. */
export async function dispatch(all: Command[], argv: string[]): Promise<number> {
  const wantsJson = argv.includes('--json');
  if (argv.length === 0 || argv[0] === '--help' || argv[0] === '-h' || argv[0] === 'help') {
    process.stdout.write(overview(all) + '\n');
    return 0;
  }
  const found = findCommand(all, argv);
  if (!found) {
    return fail(wantsJson, 'UNKNOWN_COMMAND', `unknown command "${argv.filter((a) => !a.startsWith('-')).join(' ')}"; see kaching --help`, 2);
  }
  const { command, rest } = found;
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(usageOf(command) + '\n');
    return 0;
  }
  const options: NonNullable<ParseArgsConfig['options']> = { json: { type: 'boolean' } };
  for (const [k, o] of Object.entries(command.options ?? {})) {
    options[k] = { type: o.type, ...(o.short ? { short: o.short } : {}) };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: rest, options, allowPositionals: true, strict: true });
  } catch (e) {
    return fail(wantsJson, 'USAGE', `${(e as Error).message}\n\n${usageOf(command)}`, 2);
  }
  const args: Record<string, string | boolean | undefined> = {};
  for (const [k, o] of Object.entries(command.options ?? {})) {
    const v = (parsed.values as Record<string, string | boolean | undefined>)[k];
    args[k] = v ?? o.default;
    if (o.required && (args[k] === undefined || args[k] === '')) {
      return fail(wantsJson, 'USAGE', `--${k} is required\n\n${usageOf(command)}`, 2);
    }
  }
  const required = (command.positionals ?? []).filter((p) => p.required).length;
  if (parsed.positionals.length < required) {
    return fail(wantsJson, 'USAGE', `missing ${command.positionals![parsed.positionals.length]!.name}\n\n${usageOf(command)}`, 2);
  }
  const controller = new AbortController();
  const stop = () => controller.abort();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  try {
    const result = await command.run({
      args,
      positionals: parsed.positionals,
      config: baseConfig(),
      json: wantsJson,
      progress: (line) => {
        if (!wantsJson) process.stderr.write(line + '\n');
      },
      signal: controller.signal,
    });
    if (wantsJson) process.stdout.write(JSON.stringify(result.data, null, 2) + '\n');
    else process.stdout.write((result.text ?? JSON.stringify(result.data, null, 2)) + '\n');
    return result.exitCode ?? 0;
  } catch (e) {
    const err = e as Error & { code?: string };
    if (e instanceof UsageError) return fail(wantsJson, 'USAGE', `${err.message}\n\n${usageOf(command)}`, 2);
    return fail(wantsJson, typeof err.code === 'string' ? err.code : 'ERROR', err.message, 1);
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
}

function fail(json: boolean, code: string, message: string, exitCode: number): number {
  if (json) process.stdout.write(JSON.stringify({ error: { code, message } }) + '\n');
  process.stderr.write(`kaching: ${message}\n`);
  return exitCode;
}
