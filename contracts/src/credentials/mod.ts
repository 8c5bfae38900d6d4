// Credentials of the ingest path (ingest tokens, agent signing keys): issued and revoked by the API and the
// CLIs, checked by ingest. Here so the API need not load the ingest service to manage them.
export { parseIngestToken, newIngestToken, hashIngestSecret, INGEST_SCOPES, type IngestScope, type ParsedToken } from './ingestToken.js';
export { issueIngestToken, type IssueIngestTokenInput, type IssuedIngestToken } from './issueIngestToken.js';
export { revokeIngestToken } from './revokeIngestToken.js';
export { REVOKE_REASONS, type RevokeReason } from './agentKey.js';
export { registerAgentKey, DEFAULT_IN_FLIGHT_MS, type RegisterAgentKeyInput, type RegisteredAgentKey } from './registerAgentKey.js';
export { revokeAgentKey, DEFAULT_REVOKE_REASON } from './revokeAgentKey.js';
export { bindCert, unbindCert, listCertBindings, type CertBindingRow } from './certBindings.js';
