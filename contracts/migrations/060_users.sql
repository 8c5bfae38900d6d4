-- People who sign in (per org, role viewer|admin), their sessions, the sign-in throttle, and the
-- installation's identity and JWT signing keys. Secrets are stored only as hashes: passwords as
-- scrypt strings, session secrets as SHA-256.

-- One row: who this installation is. installation_id is the JWT issuer and the sender HQ sees;
-- hq_salt keys the HMAC that pseudonymises ids before rollups leave for HQ (it never leaves).
create table installation (
  singleton boolean primary key default true check (singleton),
  installation_id uuid not null,
  hq_salt bytea not null check (length(hq_salt) = 32),
  created_at timestamptz not null default now()
);

-- Ed25519 keys the API signs bearer JWTs with (kid in the JWT header). The newest unretired key
-- signs; every unretired key verifies, so a rotation does not cut off tokens already issued.
create table signing_key (
  kid text primary key,
  private_key bytea not null, -- PKCS#8 DER
  public_key bytea not null,  -- SPKI DER
  created_at timestamptz not null default now(),
  retired_at timestamptz
);

create table org_user (
  user_id uuid primary key,
  org_id uuid not null references org(org_id),
  -- stored lower-case; unique in the installation so signing in needs only login and password
  login text not null check (login = lower(login) and length(login) between 1 and 200),
  role text not null check (role in ('viewer', 'admin')),
  -- $scrypt$ln=17,r=8,p=1$<salt b64>$<key b64>: the parameters travel with the hash
  password_hash text not null,
  created_at timestamptz not null default now(),
  password_changed_at timestamptz not null default now()
);
create unique index org_user_login_idx on org_user (login);
create index org_user_org_idx on org_user (org_id);

-- A signed-in browser (cookie) or a password exchange for JWTs (kind token). Token format
-- ks_<session_id>_<secret>; only sha256(secret) is stored. Revoking a session revokes the JWTs
-- issued from it (they carry its id as the sid claim).
create table user_session (
  session_id text primary key,
  org_id uuid not null references org(org_id),
  user_id uuid not null references org_user(user_id) on delete cascade,
  secret_hash bytea not null check (length(secret_hash) = 32),
  kind text not null check (kind in ('browser', 'token')),
  created_at timestamptz not null,
  expires_at timestamptz not null,
  last_seen_at timestamptz not null,
  revoked_at timestamptz,
  user_agent text,
  source text
);
create index user_session_user_idx on user_session (user_id);
create index user_session_org_idx on user_session (org_id);
create index user_session_expires_idx on user_session (expires_at);

-- Sign-in attempts per account (sha256 of the login, known or not) and per source address in a
-- fixed window; an attempt is counted before the password is checked, so bursts cannot slip past.
create table signin_throttle (
  key text primary key,
  window_start timestamptz not null,
  attempts integer not null
);

do $$
declare t text;
begin
  foreach t in array array['org_user', 'user_session'] loop
    execute format('alter table %I enable row level security', t);
    execute format('create policy org_isolation on %I to kaching_org_reader using (org_id = current_org()) with check (org_id = current_org())', t);
    execute format('grant select, insert, update, delete on %I to kaching_org_reader', t);
  end loop;
end $$;
