-- mTLS for agents: which client certificates may carry a deployment's ingest tokens.
-- When ingest runs with INGEST_TLS_CLIENT_CA, a request is accepted only if its client certificate
-- matches an active binding of the token's deployment: by SHA-256 fingerprint (pins one certificate)
-- or by subject (the CN or any subjectAltName value equals `subject`; survives re-issuing the
-- certificate under the same name). A token stolen without the certificate's private key is useless.
create table ingest_cert_binding (
  binding_id uuid primary key,
  deployment_id uuid not null references deployment(deployment_id),
  org_id uuid not null references org(org_id),
  cert_sha256 bytea check (length(cert_sha256) = 32),
  subject text check (length(subject) between 1 and 255),
  label text,
  created_at timestamptz not null default now(),
  revoked_at timestamptz,
  constraint ingest_cert_binding_one_pin check (num_nonnulls(cert_sha256, subject) = 1)
);
create index ingest_cert_binding_deployment_idx on ingest_cert_binding (deployment_id) where revoked_at is null;
create unique index ingest_cert_binding_sha_uq on ingest_cert_binding (deployment_id, cert_sha256) where revoked_at is null and cert_sha256 is not null;
create unique index ingest_cert_binding_subject_uq on ingest_cert_binding (deployment_id, subject) where revoked_at is null and subject is not null;

alter table ingest_cert_binding enable row level security;
create policy org_isolation on ingest_cert_binding to kaching_org_reader
  using (org_id = current_org()) with check (org_id = current_org());
grant select, insert, update, delete on ingest_cert_binding to kaching_org_reader;
