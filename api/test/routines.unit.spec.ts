import { describe, expect, it } from 'vitest';
import { parseApiKey, secretMatches, sha256 } from '../src/routines/secrets.js';
import { decodeCursor, encodeCursor, toPage } from '../src/routines/cursor.js';
import { fromValidation, toKachingError } from '../src/http/errors.js';
import { buildOpenApi } from '../src/http/openapi.js';
import { parseExpiry } from '@kaching/contracts';
import { loadConfig } from '@kaching/api';

describe('API key format', () => {
  it('parses ka_<key_id>_<secret> even when the base64url secret contains underscores', () => {
    const secret = 'a_b-c'.padEnd(43, 'x');
    expect(parseApiKey(`ka_${'0'.repeat(24)}_${secret}`)).toEqual({ keyId: '0'.repeat(24), secret });
    for (const bad of ['', 'ka_', `kt_${'0'.repeat(24)}_${secret}`, `ka_${'0'.repeat(23)}_${secret}`, `ka_${'0'.repeat(24)}_${secret}!`]) expect(parseApiKey(bad)).toBeUndefined();
  });

  it('compares the secret against the stored hash', () => {
    expect(secretMatches('s3cret', sha256('s3cret'))).toBe(true);
    expect(secretMatches('s3cres', sha256('s3cret'))).toBe(false);
    expect(secretMatches('s3cret', Buffer.alloc(3))).toBe(false);
  });
});

describe('cursor pagination', () => {
  it('round-trips a keyset cursor and rejects foreign ones with FIELD_FORMAT', () => {
    const c = encodeCursor(['2026-01-01T00:00:00.000Z', 'x']);
    expect(decodeCursor(c, 2)).toEqual(['2026-01-01T00:00:00.000Z', 'x']);
    expect(decodeCursor(undefined, 2)).toBeUndefined();
    expect(() => decodeCursor(c, 3)).toThrow(expect.objectContaining({ code: 'FIELD_FORMAT', field: 'cursor' }));
    expect(() => decodeCursor('%%%', 1)).toThrow(expect.objectContaining({ code: 'FIELD_FORMAT' }));
  });

  it('uses the extra row to decide whether there is a next page', () => {
    expect(toPage([1, 2, 3], 2, (x) => [String(x)])).toEqual({ items: [1, 2], next_cursor: encodeCursor(['2']) });
    expect(toPage([1, 2], 2, (x) => [String(x)])).toEqual({ items: [1, 2], next_cursor: null });
  });
});

describe('error mapping', () => {
  it('maps schema violations to catalogue codes with field and rule', () => {
    expect(fromValidation([{ keyword: 'required', instancePath: '/action_params', params: { missingProperty: 'model' } }]).toBody().error).toMatchObject({ code: 'FIELD_REQUIRED', field: 'action_params.model', rule: 'required' });
    expect(fromValidation([{ keyword: 'format', instancePath: '/deployment_id', params: { format: 'uuid' } }]).toBody().error).toMatchObject({ code: 'FIELD_FORMAT', field: 'deployment_id', rule: 'format:uuid' });
    expect(fromValidation([{ keyword: 'maximum', instancePath: '/limit', params: { limit: 1000 } }]).code).toBe('FIELD_RANGE');
  });

  it('maps Postgres row-level-security violations to NOT_FOUND and unknown errors to INTERNAL', () => {
    expect(toKachingError(Object.assign(new Error('new row violates row-level security policy'), { code: '42501' })).code).toBe('NOT_FOUND');
    expect(toKachingError(new Error('boom')).code).toBe('INTERNAL');
  });
});

describe('OpenAPI generation', () => {
  it('turns route schemas into operations with path/query parameters, body and security', () => {
    const doc = buildOpenApi(
      [
        { method: 'GET', url: '/v1/things/:id', auth: 'read', schema: { summary: 's', tags: ['t'], params: { type: 'object', properties: { id: { type: 'string' } } }, querystring: { type: 'object', required: ['q'], properties: { q: { type: 'string' } } } } },
        { method: 'POST', url: '/v1/things', auth: 'admin', schema: { body: { type: 'object' } } },
        { method: 'GET', url: '/healthz', auth: 'none', schema: {} },
      ],
      { title: 'x', version: '1' },
    ) as any;
    const get = doc.paths['/v1/things/{id}'].get;
    expect(get.parameters).toEqual([
      { name: 'id', in: 'path', required: true, schema: { type: 'string' } },
      { name: 'q', in: 'query', required: true, schema: { type: 'string' } },
    ]);
    expect(get.security).toEqual([{ apiKey: [] }, { jwt: [] }, { session: [] }]);
    expect(get.responses['304']).toBeDefined();
    expect(doc.paths['/v1/things'].post.requestBody.content['application/json'].schema).toEqual({ type: 'object' });
    expect(doc.paths['/healthz'].get.security).toEqual([]);
  });
});

describe('config and CLI parsing', () => {
  it('defaults API_PORT to 7071 and reads the license key', () => {
    expect(loadConfig({}).port).toBe(7071);
    expect(loadConfig({ API_PORT: '0', KACHING_LICENSE_PUBLIC_KEY: 'pk' })).toMatchObject({ port: 0, licensePublicKey: 'pk' });
    expect(() => loadConfig({ API_PORT: 'x' })).toThrow();
  });

  it('parses --expires durations and timestamps', () => {
    expect(parseExpiry('30d', 0).getTime()).toBe(30 * 86_400_000);
    expect(parseExpiry('2030-01-01T00:00:00Z').toISOString()).toBe('2030-01-01T00:00:00.000Z');
    expect(() => parseExpiry('soon')).toThrow(/neither/);
  });
});
