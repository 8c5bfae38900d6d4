import { pino, type Logger } from 'pino';

/** Structured logs; secrets are redacted by path so a careless log call cannot leak them. */
export function createLogger(name: string, level: string = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: [
        'token', 'apiKey', 'secret', 'secretKey', 'authorization', 'headers.authorization', 'req.headers.authorization', '*.token', '*.secret',
        // people: passwords, session cookies, CSRF tokens, JWTs, the HQ salt
        'password', '*.password', 'cookie', 'headers.cookie', 'req.headers.cookie', 'headers["set-cookie"]', 'res.headers["set-cookie"]',
        'csrf', 'csrf_token', 'access_token', '*.access_token', 'hqSalt', '*.hqSalt',
      ],
      censor: '[redacted]',
    },
  });
}
export type { Logger };
