// HTTP helpers for tests of people's sign-in: a tiny cookie-aware client.

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: any;
  setCookies: string[];
}

export interface Call {
  cookie?: string;
  csrf?: string;
  bearer?: string;
  body?: unknown;
  form?: Record<string, string>;
  headers?: Record<string, string>;
}

export async function call(baseUrl: string, method: string, path: string, c: Call = {}): Promise<Answer> {
  const headers: Record<string, string> = { ...(c.headers ?? {}) };
  if (c.cookie) headers.cookie = c.cookie;
  if (c.csrf) headers['x-csrf-token'] = c.csrf;
  if (c.bearer) headers.authorization = `Bearer ${c.bearer}`;
  let body: string | undefined;
  if (c.form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(c.form).toString();
  } else if (c.body !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(c.body);
  }
  const res = await fetch(baseUrl + path, { method, headers, redirect: 'manual', ...(body !== undefined ? { body } : {}) });
  const text = await res.text();
  let json: any;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, text, json, setCookies: res.headers.getSetCookie() };
}

/** `name=value` of a Set-Cookie line, for sending back. */
export function cookiePair(setCookie: string): string {
  return setCookie.split(';')[0]!.trim();
}

export function findCookie(setCookies: string[], name: string): string | undefined {
  return setCookies.find((c) => c.startsWith(`${name}=`));
}

export interface SignedIn {
  cookie: string;
  csrf: string;
  sessionId: string;
}

export async function signIn(baseUrl: string, login: string, password: string): Promise<SignedIn> {
  const r = await call(baseUrl, 'POST', '/v1/auth/signin', { body: { login, password } });
  if (r.status !== 200) throw new Error(`sign-in as ${login} failed: ${r.status} ${r.text}`);
  const set = findCookie(r.setCookies, 'kaching_session') ?? findCookie(r.setCookies, '__Host-kaching_session');
  return { cookie: cookiePair(set!), csrf: r.json.csrf_token, sessionId: r.json.session_id };
}
