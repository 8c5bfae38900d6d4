import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { S3Settings } from './config.js';
import type { ArchiveStore } from './store.js';

const sha256hex = (b: string | Uint8Array) => createHash('sha256').update(b).digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data).digest();
// RFC 3986 encoding as SigV4 wants it (encodeURIComponent leaves !'()* alone)
const enc = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/** AWS Signature V4 Authorization header for S3 (headers must include host and x-amz-date; all are signed). */
export function signV4(o: { method: string; canonicalUri: string; canonicalQuery: string; headers: Record<string, string>; payloadHash: string; region: string; accessKeyId: string; secretAccessKey: string }): string {
  const amzDate = o.headers['x-amz-date']!;
  const day = amzDate.slice(0, 8);
  const signed = Object.keys(o.headers).sort();
  const canonical = [o.method, o.canonicalUri, o.canonicalQuery, signed.map((h) => `${h}:${o.headers[h]!.trim()}\n`).join(''), signed.join(';'), o.payloadHash].join('\n');
  const scope = `${day}/${o.region}/s3/aws4_request`;
  const toSign = ['AWS4-HMAC-SHA256', amzDate, scope, sha256hex(canonical)].join('\n');
  const kSigning = hmac(hmac(hmac(hmac(`AWS4${o.secretAccessKey}`, day), o.region), 's3'), 'aws4_request');
  const signature = createHmac('sha256', kSigning).update(toSign).digest('hex');
  return `AWS4-HMAC-SHA256 Credential=${o.accessKeyId}/${scope},SignedHeaders=${signed.join(';')},Signature=${signature}`;
}

/**
 * S3-compatible object storage over plain HTTP with AWS Signature V4 (path-style URLs, so MinIO, Ceph,
 * R2 and s3rver work as AWS does). A PUT is atomic: readers see the whole object or the previous one.
 */
export class S3Store implements ArchiveStore {
  constructor(private readonly s: S3Settings) {}

  get location(): string {
    return `s3://${this.s.bucket}${this.s.prefix ? `/${this.s.prefix}` : ''}`;
  }

  localPath(): null {
    return null;
  }

  async scratchPath(name: string): Promise<string> {
    const dir = join(tmpdir(), 'kaching-archive-scratch');
    await mkdir(dir, { recursive: true });
    return join(dir, `${randomBytes(6).toString('hex')}-${name}`);
  }

  private objectKey(key: string): string {
    return this.s.prefix ? `${this.s.prefix}/${key}` : key;
  }

  private async request(method: string, key: string | null, query: Record<string, string> = {}, body?: Uint8Array): Promise<Response> {
    const url = new URL(this.s.endpoint);
    const path = `/${this.s.bucket}${key === null ? '' : `/${this.objectKey(key)}`}`;
    const canonicalUri = path.split('/').map(enc).join('/');
    const canonicalQuery = Object.keys(query).sort().map((k) => `${enc(k)}=${enc(query[k]!)}`).join('&');
    const now = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d{3}/, '');
    const payloadHash = sha256hex(body ?? '');
    const headers: Record<string, string> = { host: url.host, 'x-amz-content-sha256': payloadHash, 'x-amz-date': now };
    const authorization = signV4({ method, canonicalUri, canonicalQuery, headers, payloadHash, region: this.s.region, accessKeyId: this.s.accessKeyId, secretAccessKey: this.s.secretAccessKey });
    const { host: _host, ...sent } = headers;
    const res = await fetch(`${url.origin}${canonicalUri}${canonicalQuery ? `?${canonicalQuery}` : ''}`, {
      method,
      headers: { ...sent, authorization },
      ...(body ? { body: new Blob([new Uint8Array(body)]) } : {}),
    });
    if (!res.ok && res.status !== 404) throw new Error(`S3 ${method} ${path}: ${res.status} ${(await res.text()).slice(0, 300)}`);
    return res;
  }

  async putBytes(key: string, bytes: Uint8Array): Promise<void> {
    const r = await this.request('PUT', key, {}, bytes);
    if (r.status === 404) throw new Error(`S3 bucket ${this.s.bucket} not found`);
    await r.arrayBuffer();
  }

  async putFile(key: string, path: string): Promise<void> {
    await this.putBytes(key, await readFile(path));
    await rm(path, { force: true });
  }

  async remove(key: string): Promise<void> {
    await (await this.request('DELETE', key)).arrayBuffer();
  }

  async get(key: string): Promise<Buffer | null> {
    const r = await this.request('GET', key);
    if (r.status === 404) return (await r.arrayBuffer(), null);
    return Buffer.from(await r.arrayBuffer());
  }

  async size(key: string): Promise<number | null> {
    const r = await this.request('HEAD', key);
    await r.arrayBuffer().catch(() => undefined);
    return r.status === 404 ? null : Number(r.headers.get('content-length'));
  }

  async list(prefix: string): Promise<string[]> {
    const out: string[] = [];
    const base = this.s.prefix ? `${this.s.prefix}/` : '';
    let token: string | undefined;
    do {
      const r = await this.request('GET', null, { 'list-type': '2', prefix: base + prefix, ...(token ? { 'continuation-token': token } : {}) });
      const xml = await r.text();
      for (const m of xml.matchAll(/<Key>([^<]*)<\/Key>/g)) out.push(unxml(m[1]!).slice(base.length));
      token = /<IsTruncated>true<\/IsTruncated>/.test(xml) ? unxml(/<NextContinuationToken>([^<]*)</.exec(xml)?.[1] ?? '') || undefined : undefined;
    } while (token);
    return out.sort();
  }
}

const unxml = (s: string) => s.replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, '&');
