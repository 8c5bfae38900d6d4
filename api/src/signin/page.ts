import { SIGNIN_CSS } from './style.js';

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** Headers of the sign-in page: never cached, never framed, posts only to itself. */
export const SIGNIN_HEADERS = {
  'cache-control': 'no-store',
  'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
  'referrer-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
} as const;

export interface SigninView {
  /** The double-submit token also set as the kaching_signin cookie (login CSRF). */
  csrf: string;
  login?: string;
  error?: { code: string; message: string };
}

/** The sign-in page: a plain form posting to /v1/auth/signin, no script. */
export function signinPage(v: SigninView): string {
  const err = v.error ? `<p class="err" role="alert" data-testid="signin-error" data-code="${esc(v.error.code)}">${esc(v.error.message)}</p>` : '<p class="err"></p>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>KACHING · sign in</title><style>${SIGNIN_CSS}</style></head>
<body><main>
<div class="brand">KA<span>CHING</span></div>
<h1>Sign in</h1>
<form method="post" action="/v1/auth/signin" data-testid="signin-form">
<input type="hidden" name="csrf" value="${esc(v.csrf)}">
<label>Login<input name="login" autocomplete="username" required maxlength="200" value="${esc(v.login ?? '')}" data-testid="signin-login"></label>
<label>Password<input name="password" type="password" autocomplete="current-password" required maxlength="1024" data-testid="signin-password"></label>
<button type="submit" data-testid="signin-submit">Sign in</button>
${err}
</form>
</main></body></html>`;
}
