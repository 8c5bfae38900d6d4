/** An API answer that was not 2xx: the catalogue code and the HTTP status. */
export class ApiError extends Error {
  override name = 'ApiError';
  constructor(
    message: string,
    readonly status: number,
    readonly code?: string,
  ) {
    super(message);
  }
}

let csrfToken: string | null = null;

/** Writes carry the session's CSRF token (the session cookie itself is HttpOnly and sent by the browser). */
export function useCsrfToken(token: string): void {
  csrfToken = token;
}

export async function api<T>(path: string, opts: { method?: string; body?: unknown } = {}): Promise<T> {
  const method = opts.method ?? 'GET';
  const headers: Record<string, string> = {};
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrfToken) headers['x-csrf-token'] = csrfToken;
  // no-cache: always revalidate; the API answers 304 on an unchanged ETag
  const r = await fetch(path, {
    method,
    headers,
    body: opts.body === undefined ? null : JSON.stringify(opts.body),
    cache: 'no-cache',
    credentials: 'same-origin',
  });
  const j = (await r.json()) as T & { error?: { code?: string; message?: string } };
  if (!r.ok) throw new ApiError(j.error?.message ?? r.statusText, r.status, j.error?.code);
  return j;
}
