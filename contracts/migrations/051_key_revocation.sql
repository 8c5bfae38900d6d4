-- Why an agent key was revoked, which decides what ingest and `audit verify` still accept from it:
--   compromise: the key may be in other hands; nothing it signed is trusted, whenever it says it was signed.
--   superseded: a planned rotation; reports the agent made before revoked_at stay acceptable (an agent's
--               disk queue may still hold them), later ones are refused.
-- Keys revoked before this migration were refused outright, as for a compromise: keep that.
alter table agent_key add column revoke_reason text;
update agent_key set revoke_reason = 'compromise' where revoked_at is not null;
alter table agent_key add constraint agent_key_revoke_reason_check
  check (revoke_reason in ('compromise', 'superseded') and revoked_at is not null or revoke_reason is null and revoked_at is null);
