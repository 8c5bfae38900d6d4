import pg from 'pg';
import type { Tables } from '../db/tables.js';

export const q = (ident: string): string => `"${ident.replace(/"/g, '""')}"`;

/** An SQL literal of a value (null stays NULL): merges run as one script, without bind parameters. */
export const lit = (v: string | number | null): string => (v === null ? 'null' : pg.escapeLiteral(String(v)));

/**
 * Part of a rebuild from a staged stream: statements run in order in one transaction, then the listed
 * tables get the live tables' indexes. Steps of one rebuild are independent and run side by side.
 */
export interface BuildStep {
  sql: string[];
  indexes: (keyof Omit<Tables, 'shadow'>)[];
}
