import { describe, expect, it } from 'vitest';
import { checkChain, GENESIS, loadConfig, signV4, type ManifestEntry } from '@kaching/archiver';
import { entryHash, isSegmentOf, segmentKey } from '@kaching/archiver';

describe('S3 request signing', () => {
  it('matches the AWS Signature V4 example "GET Bucket (List Objects)"', () => {
    // docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html
    const empty = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
    const auth = signV4({
      method: 'GET', canonicalUri: '/', canonicalQuery: 'max-keys=2&prefix=J',
      headers: { host: 'examplebucket.s3.amazonaws.com', 'x-amz-content-sha256': empty, 'x-amz-date': '20130524T000000Z' },
      payloadHash: empty, region: 'us-east-1', accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
    });
    expect(auth).toBe('AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;x-amz-content-sha256;x-amz-date,Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7');
  });
});

describe('configuration', () => {
  it('reads the archive settings', () => {
    const c = loadConfig({ KACHING_HOME: '/srv/k', KACHING_HOT_RETENTION: '12h', KACHING_ARCHIVE_URL: 's3://bucket-1/a/b/', KACHING_ARCHIVE_S3_ENDPOINT: 'http://minio:9000/' });
    expect(c).toMatchObject({ archiveDir: '/srv/k/archive', hotRetentionMs: 12 * 3_600_000, segmentEvents: 100_000, segmentSeconds: 300 });
    expect(c.s3).toMatchObject({ bucket: 'bucket-1', prefix: 'a/b', endpoint: 'http://minio:9000', region: 'us-east-1' });
    expect(() => loadConfig({ KACHING_HOT_RETENTION: 'a month' })).toThrow(/KACHING_HOT_RETENTION/);
    expect(() => loadConfig({ KACHING_ARCHIVE_URL: 'http://x' })).toThrow(/s3:\/\/bucket/);
  });
});

describe('manifest chain', () => {
  const entry = (index: number, first: number, last: number, prev: string): ManifestEntry => {
    const body = { v: 1 as const, lane: '1.0', index, file: segmentKey('1.0', first, 1), first_seq: first, last_seq: last, count: last - first + 1, bytes: 10, sha256: 'ab'.repeat(32), oldest_received_at: null, newest_received_at: null, archived_at: '2026-01-01T00:00:00.000Z', prev };
    return { ...body, hash: entryHash(body) };
  };
  const a = entry(0, 1, 10, GENESIS);
  const b = entry(1, 11, 20, a.hash);
  const c = entry(2, 21, 30, b.hash);

  it('names a segment by lane, first sequence and fence', () => {
    expect(segmentKey('4.3', 17, 2)).toBe('4.3/00000000000000000017-2.parquet');
    expect(isSegmentOf('4.3', 17, '4.3/00000000000000000017-2.parquet')).toBe(true);
    expect(isSegmentOf('4.3', 17, '4x3/00000000000000000017-2.parquet')).toBe(false);
    expect(isSegmentOf('4.3', 18, '4.3/00000000000000000017-2.parquet')).toBe(false);
  });

  it('accepts an intact chain and names the first break otherwise', () => {
    expect(checkChain('1.0', [a, b, c])).toBeNull();
    expect(checkChain('1.0', [a, c, b])?.problem).toMatch(/entry 1 says it is entry 2/);
    expect(checkChain('1.0', [a, { ...b, count: 9 }, c])?.problem).toMatch(/entry 1 was altered/);
    expect(checkChain('1.0', [a, c])?.index).toBe(1);
    const overlapping = entry(1, 5, 20, a.hash);
    expect(checkChain('1.0', [a, overlapping])?.problem).toMatch(/starts at 5, not after entry 0's last sequence 10/);
  });
});
