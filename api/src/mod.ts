// @kaching/api — read and admin HTTP API, OpenAPI document and dashboard.
export { loadConfig, type ApiConfig } from './config.js';
export { start, type ApiHandle } from './server.js';
export { commands } from './cli/commands.js';
export { issueApiKey, revokeApiKey, authenticateApiKey, API_SCOPES, type ApiScope, type IssuedApiKey, type Caller } from './routines/apikeys.js';
export { createOrg, createDeployment } from './routines/orgs.js';
export { addUser, listUsers, removeUser, setPassword, setRole, USER_ROLES, type UserRole, type UserRow } from './auth/users.js';
export { hashPassword, verifyPassword, generatePassword, SCRYPT_PARAMS } from './auth/passwords.js';
export { revokeSession, listSessions } from './auth/sessions.js';
