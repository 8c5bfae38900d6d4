import { InputError } from '@kaching/contracts';

/** Opaque keyset cursor: the sort key of the last row of the previous page. */
export function encodeCursor(key: unknown[]): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

export function decodeCursor(raw: string | undefined, arity: number): string[] | undefined {
  if (raw === undefined || raw === '') return undefined;
  try {
    const v = JSON.parse(Buffer.from(raw, 'base64url').toString('utf8')) as unknown;
    if (Array.isArray(v) && v.length === arity && v.every((x) => typeof x === 'string')) return v as string[];
  } catch {
    /* fall through */
  }
  throw new InputError('FIELD_FORMAT', { field: 'cursor', rule: 'format:cursor', message: 'The cursor is not one this endpoint issued' });
}

export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

/** Rows were fetched with limit + 1: the extra row says whether another page exists. */
export function toPage<T>(rows: T[], limit: number, key: (row: T) => unknown[]): Page<T> {
  const more = rows.length > limit;
  const items = more ? rows.slice(0, limit) : rows;
  const last = items[items.length - 1];
  return { items, next_cursor: more && last !== undefined ? encodeCursor(key(last)) : null };
}
