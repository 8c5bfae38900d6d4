import { pino, type Logger } from 'pino';

/** Structured logs; secrets are redacted by path so a careless log call cannot leak them. */
export function createLogger(name: string, level: string = process.env.LOG_LEVEL ?? 'info'): Logger {
  return pino({
    name,
    level,
    redact: {
      paths: ['token', 'apiKey', 'secret', 'secretKey', 'authorization', 'headers.authorization', 'req.headers.authorization', '*.token', '*.secret'],
      censor: '[redacted]',
    },
  });
}
export type { Logger };
