// @kaching/api — read and admin HTTP API, OpenAPI document and dashboard.
export { loadConfig, type ApiConfig } from './config.js';
export { start, type ApiHandle } from './server.js';
export { commands } from './cli/commands.js';
export { issueApiKey, revokeApiKey, authenticateApiKey, API_SCOPES, type ApiScope, type IssuedApiKey, type Caller } from './routines/apikeys.js';
export { createOrg, createDeployment } from './routines/orgs.js';
