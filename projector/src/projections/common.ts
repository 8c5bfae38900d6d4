import pg from 'pg';

export const q = (ident: string): string => `"${ident.replace(/"/g, '""')}"`;

/** An SQL literal of a value (null stays NULL): merges run as one script, without bind parameters. */
export const lit = (v: string | number | null): string => (v === null ? 'null' : pg.escapeLiteral(String(v)));
