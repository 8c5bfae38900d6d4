import type { BaseConfig } from '../config/base.js';

/** One `kaching` subcommand. Packages export a list of these; deploy's dispatcher routes to them. */
export interface Command {
  /** Words after `kaching`, e.g. "token issue". */
  name: string;
  summary: string;
  options?: Record<string, CommandOption>;
  positionals?: { name: string; description: string; required?: boolean }[];
  /** Long help shown by `kaching <name> --help` after the options. */
  details?: string;
  run(ctx: CommandContext): Promise<CommandResult>;
}

export interface CommandOption {
  type: 'string' | 'boolean';
  description: string;
  default?: string | boolean;
  required?: boolean;
  short?: string;
}

export interface CommandContext {
  args: Record<string, string | boolean | undefined>;
  positionals: string[];
  config: BaseConfig;
  /** --json given: print machine-readable output only. */
  json: boolean;
  /** Human progress output (suppressed under --json). Goes to stderr so stdout stays clean. */
  progress(line: string): void;
  /** Aborted on SIGINT/SIGTERM: long-running commands stop cleanly when it fires. */
  signal: AbortSignal;
}

export interface CommandResult {
  /** Printed as JSON under --json. */
  data: unknown;
  /** Printed for humans otherwise (defaults to a JSON rendering of data). */
  text?: string;
  /** Non-zero marks a finding (e.g. verify-projections found differences). */
  exitCode?: number;
}

/** Thrown for wrong usage: the dispatcher prints the message and the command's usage, exit 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export function requireString(ctx: CommandContext, key: string): string {
  const v = ctx.args[key];
  if (typeof v !== 'string' || v === '') throw new UsageError(`--${key} is required`);
  return v;
}

/**
 * Operator commands work on the database directly (no API key needed): that is how the first org and its
 * first keys come to exist. The pool lives for one command.
 */
export async function withCommandPool<T>(ctx: CommandContext, fn: (pool: import('pg').Pool) => Promise<T>): Promise<T> {
  const { createPool } = await import('../db/pool.js');
  const pool = createPool({ databaseUrl: ctx.config.databaseUrl, namespace: ctx.config.namespace, max: 2, applicationName: 'kaching-cli' });
  try {
    return await fn(pool);
  } finally {
    await pool.end();
  }
}

/** `30d`, `12h`, `90m`, `45s` from now, or an RFC 3339 time. */
export function parseExpiry(v: string, now = Date.now()): Date {
  const m = /^(\d+)([smhd])$/.exec(v);
  if (m) return new Date(now + Number(m[1]) * { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3 }[m[2] as 's' | 'm' | 'h' | 'd']);
  const t = Date.parse(v);
  if (Number.isNaN(t)) throw new UsageError(`--expires "${v}" is neither a duration (30d, 12h, 90m, 45s) nor an RFC 3339 time`);
  return new Date(t);
}
