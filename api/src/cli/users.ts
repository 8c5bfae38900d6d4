import { requireString, UsageError, withCommandPool as withPool, type Command, type CommandContext } from '@kaching/contracts';
import { addUser, listUsers, removeUser, setPassword, setRole } from '../auth/users.js';
import { listSessions, revokeSession } from '../auth/sessions.js';
import { addSigningKey, retireOlderSigningKeys } from '../auth/jwt.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A password piped in (`--password-stdin`): the first line of stdin. Never a flag: flags end up in shell history and `ps`. */
async function passwordFromStdin(ctx: CommandContext): Promise<string | undefined> {
  if (!ctx.args['password-stdin']) return undefined;
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  const line = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  if (!line) throw new UsageError('--password-stdin: stdin held no password');
  return line;
}

const passwordOption = { 'password-stdin': { type: 'boolean', description: 'read the password from stdin (default: generate one and print it once)' } } as const;

export const userCommands: Command[] = [
  {
    name: 'user add',
    summary: 'Add a user who signs in to the dashboard; prints the password once (only its scrypt hash is stored)',
    options: {
      org: { type: 'string', description: 'Organisation id', required: true },
      login: { type: 'string', description: 'Login (e.g. an e-mail address), unique in the installation', required: true },
      role: { type: 'string', description: 'viewer (reads) or admin (also configures)', default: 'viewer' },
      ...passwordOption,
    },
    async run(ctx) {
      const org = requireString(ctx, 'org');
      if (!UUID.test(org)) throw new UsageError('--org must be a uuid');
      const password = await passwordFromStdin(ctx);
      const r = await withPool(ctx, (p) =>
        addUser(p, { orgId: org, login: requireString(ctx, 'login'), role: (ctx.args.role as string | undefined) ?? 'viewer', ...(password ? { password } : {}) }),
      );
      return {
        data: { ...r.user, ...(password ? {} : { password: r.password }) },
        text: password ? `added ${r.user.login} (${r.user.role})` : `added ${r.user.login} (${r.user.role}); password (shown once): ${r.password}`,
      };
    },
  },
  {
    name: 'user list',
    summary: 'List users (no password hashes)',
    options: { org: { type: 'string', description: 'Only this organisation' } },
    async run(ctx) {
      const users = await withPool(ctx, (p) => listUsers(p, typeof ctx.args.org === 'string' ? ctx.args.org : undefined));
      return { data: users, text: users.map((u) => `${u.login}\t${u.role}\t${u.org_id}\t${u.user_id}`).join('\n') || '(no users)' };
    },
  },
  {
    name: 'user remove',
    summary: 'Remove a user; their sessions and JWTs stop working',
    options: { login: { type: 'string', description: 'Login', required: true } },
    async run(ctx) {
      const u = await withPool(ctx, (p) => removeUser(p, requireString(ctx, 'login')));
      return { data: { ...u, removed: true }, text: `removed ${u.login}` };
    },
  },
  {
    name: 'user passwd',
    summary: 'Set a new password (generated unless piped in) and sign the user out everywhere',
    options: { login: { type: 'string', description: 'Login', required: true }, ...passwordOption },
    async run(ctx) {
      const password = await passwordFromStdin(ctx);
      const r = await withPool(ctx, (p) => setPassword(p, requireString(ctx, 'login'), password));
      return {
        data: { login: r.user.login, sessions_revoked: r.sessionsRevoked, ...(password ? {} : { password: r.password }) },
        text: `${password ? 'password set' : `new password (shown once): ${r.password}`}; ${r.sessionsRevoked} session(s) revoked`,
      };
    },
  },
  {
    name: 'user role',
    summary: "Change a user's role (viewer|admin); their sessions are revoked",
    options: { login: { type: 'string', description: 'Login', required: true }, role: { type: 'string', description: 'viewer or admin', required: true } },
    async run(ctx) {
      const u = await withPool(ctx, (p) => setRole(p, requireString(ctx, 'login'), requireString(ctx, 'role')));
      return { data: u, text: `${u.login} is now ${u.role}` };
    },
  },
  {
    name: 'session list',
    summary: 'Sessions of the installation (or of one user); --all includes ended ones',
    options: { login: { type: 'string', description: 'Only this user' }, all: { type: 'boolean', description: 'include revoked and expired sessions' } },
    async run(ctx) {
      const items = await withPool(ctx, (p) =>
        listSessions(p, { ...(typeof ctx.args.login === 'string' ? { login: ctx.args.login } : {}), ...(ctx.args.all ? {} : { activeAt: new Date() }) }),
      );
      return {
        data: items,
        text: items.map((s) => `${s.session_id}\t${s.login}\t${s.kind}\tlast seen ${new Date(s.last_seen_at).toISOString()}\t${s.revoked_at ? 'revoked' : `expires ${new Date(s.expires_at).toISOString()}`}`).join('\n') || '(no sessions)',
      };
    },
  },
  {
    name: 'session revoke',
    summary: 'Revoke a session (and the JWTs issued from it); API instances notice within API_SESSION_CACHE_TTL_MS',
    options: { id: { type: 'string', description: 'Session id', required: true } },
    async run(ctx) {
      const id = requireString(ctx, 'id');
      const revoked = await withPool(ctx, (p) => revokeSession(p, id, new Date()));
      return { data: { session_id: id, revoked: true, already_ended: !revoked }, text: revoked ? `revoked ${id}` : `${id} was not active` };
    },
  },
  {
    name: 'jwt rotate-key',
    summary: 'Add a new JWT signing key; --retire-old makes tokens signed by older keys invalid',
    options: { 'retire-old': { type: 'boolean', description: 'retire every key but the new one (do it a JWT lifetime after the rotation)' } },
    async run(ctx) {
      const r = await withPool(ctx, async (p) => {
        const k = await addSigningKey(p);
        const retired = ctx.args['retire-old'] ? await retireOlderSigningKeys(p) : 0;
        return { kid: k.kid, retired };
      });
      return { data: r, text: `new signing key ${r.kid}${r.retired ? `; ${r.retired} older key(s) retired` : ''} (API instances pick it up within a minute)` };
    },
  },
];
