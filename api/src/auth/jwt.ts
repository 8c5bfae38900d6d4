import { createPrivateKey, createPublicKey, generateKeyPairSync, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import type pg from 'pg';
import { SignJWT, errors as joseErrors, exportJWK, jwtVerify, type JWK, type JWTPayload } from 'jose';
import { AuthError, installationIdentity, jwtIssuer } from '@kaching/contracts';
import { checkRole, type UserRole } from './users.js';

export const JWT_AUDIENCE = 'kaching-api';
const ALG = 'EdDSA';

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/**
 * The installation's JWT keys (Ed25519). They live in Postgres (`signing_key`, operator-only: no
 * org role may read it), so every API instance of the installation signs and verifies with the same
 * keys; the first instance to start generates one. Whoever can read that table can mint tokens —
 * the same people who can already read every org's rows and add users.
 */
export async function ensureSigningKey(pool: pg.Pool): Promise<void> {
  const existing = await pool.query('select 1 from signing_key where retired_at is null limit 1');
  if (existing.rowCount) return;
  await addSigningKey(pool);
}

/** Adds a new key, which signs from now on; older unretired keys keep verifying. */
export async function addSigningKey(pool: pg.Pool): Promise<{ kid: string }> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const kid = randomBytes(8).toString('hex');
  await pool.query('insert into signing_key (kid, private_key, public_key) values ($1, $2, $3)', [
    kid,
    privateKey.export({ format: 'der', type: 'pkcs8' }),
    publicKey.export({ format: 'der', type: 'spki' }),
  ]);
  return { kid };
}

/** Retires every key but the newest: tokens they signed stop verifying (at most the JWT lifetime after a rotation). */
export async function retireOlderSigningKeys(pool: pg.Pool, now = new Date()): Promise<number> {
  const r = await pool.query(
    `update signing_key set retired_at = $1 where retired_at is null
       and kid <> (select kid from signing_key where retired_at is null order by created_at desc, kid limit 1)`,
    [now],
  );
  return r.rowCount ?? 0;
}

export interface JwtClaims {
  sub: string;
  org: string;
  role: UserRole;
  sid: string;
}

export interface IssuedJwt {
  token: string;
  expiresAt: Date;
}

export interface JwtVerified extends JwtClaims {
  exp: number;
}

/** Signs and verifies the API's bearer JWTs; keys are re-read from Postgres at most every keyCacheMs. */
export class JwtAuthority {
  private keys: SigningKey[] = [];
  private loadedAt = -Infinity;
  private issuer: string | undefined;

  constructor(
    private readonly pool: pg.Pool,
    private readonly opts: { ttlS: number; keyCacheMs?: number },
  ) {}

  private async load(now: number, force = false): Promise<void> {
    if (this.issuer && now - this.loadedAt < (force ? 5_000 : (this.opts.keyCacheMs ?? 60_000))) return;
    this.issuer ??= jwtIssuer((await installationIdentity(this.pool)).installationId);
    await ensureSigningKey(this.pool);
    const r = await this.pool.query<{ kid: string; private_key: Buffer; public_key: Buffer }>(
      'select kid, private_key, public_key from signing_key where retired_at is null order by created_at desc, kid',
    );
    this.keys = r.rows.map((k) => ({
      kid: k.kid,
      privateKey: createPrivateKey({ key: k.private_key, format: 'der', type: 'pkcs8' }),
      publicKey: createPublicKey({ key: k.public_key, format: 'der', type: 'spki' }),
    }));
    this.loadedAt = now;
  }

  /** A JWT for the session's user, expiring after ttlS but never after the session itself. */
  async issue(claims: JwtClaims, now: Date, sessionExpiresAt: Date): Promise<IssuedJwt> {
    await this.load(now.getTime());
    const key = this.keys[0]!;
    const iat = Math.floor(now.getTime() / 1000);
    const exp = Math.min(iat + this.opts.ttlS, Math.floor(sessionExpiresAt.getTime() / 1000));
    const token = await new SignJWT({ org: claims.org, role: claims.role, sid: claims.sid })
      .setProtectedHeader({ alg: ALG, kid: key.kid, typ: 'JWT' })
      .setIssuer(this.issuer!)
      .setAudience(JWT_AUDIENCE)
      .setSubject(claims.sub)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .setJti(randomUUID())
      .sign(key.privateKey);
    return { token, expiresAt: new Date(exp * 1000) };
  }

  /** Signature, issuer, audience, expiry (against the injected clock) and claim shapes. */
  async verify(token: string, now: Date): Promise<JwtVerified> {
    await this.load(now.getTime());
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(
        token,
        async (header) => {
          // a key added by another process since the last load: look again (at most every 5 s)
          if (!this.keys.some((x) => x.kid === header.kid)) await this.load(now.getTime(), true);
          const k = this.keys.find((x) => x.kid === header.kid);
          if (!k) throw new AuthError('JWT_INVALID', { message: 'The JWT names a signing key this installation does not have (or retired)' });
          return k.publicKey;
        },
        { algorithms: [ALG], issuer: this.issuer!, audience: JWT_AUDIENCE, currentDate: now, requiredClaims: ['exp', 'iat', 'sub'] },
      ));
    } catch (e) {
      if (e instanceof AuthError) throw e;
      if (e instanceof joseErrors.JWTExpired) throw new AuthError('JWT_EXPIRED');
      throw new AuthError('JWT_INVALID', { message: `The bearer JWT was refused: ${(e as Error).message}` });
    }
    const { sub, org, role, sid, exp } = payload as JWTPayload & Partial<JwtClaims>;
    if (typeof org !== 'string' || typeof sid !== 'string' || typeof role !== 'string' || typeof sub !== 'string') {
      throw new AuthError('JWT_INVALID', { message: 'The JWT lacks the org, role, sid or sub claim' });
    }
    try {
      checkRole(role);
    } catch {
      throw new AuthError('JWT_INVALID', { message: 'The JWT carries an unknown role' });
    }
    return { sub, org, role: role as UserRole, sid, exp: exp! };
  }

  /** The public keys as a JWK set (GET /.well-known/jwks.json), so other services can verify tokens. */
  async jwks(now: Date): Promise<{ keys: JWK[] }> {
    await this.load(now.getTime());
    return { keys: await Promise.all(this.keys.map(async (k) => ({ ...(await exportJWK(k.publicKey)), kid: k.kid, alg: ALG, use: 'sig' }))) };
  }
}
