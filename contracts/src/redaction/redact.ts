/**
 * Redaction of ucxl addresses before append.
 *
 * Segment model: `ucxl://<agent>:<role>@<project>:<task>/<path…>`.
 * A deployment's `redact_segments` lists names; a name redacts
 *  - a named component: `agent`, `role`, `project`, `task`, or `path` (the whole path), or
 *  - a keyed path segment: in `/customer/acme/report`, the name `customer` redacts the segment
 *    that follows it (`/customer/[redacted]/report`).
 * The value is replaced by `[redacted]`; only the names that actually matched are reported, never values.
 */
export const REDACTED = '[redacted]';
const COMPONENTS = ['agent', 'role', 'project', 'task'] as const;
const AUTHORITY_RE = /^([^:@/]*):([^@/]*)@([^:/]*):([^/]*)$/;

export interface RedactionResult {
  addr: string;
  redacted: string[];
}

export function redactUcxl(addr: string, policy: readonly string[]): RedactionResult {
  if (!policy.length) return { addr, redacted: [] };
  const want = new Set(policy);
  const redacted = new Set<string>();
  const scheme = addr.startsWith('ucxl://') ? 'ucxl://' : '';
  const rest = addr.slice(scheme.length);
  const slash = rest.indexOf('/');
  let authority = slash < 0 ? rest : rest.slice(0, slash);
  let path = slash < 0 ? null : rest.slice(slash + 1);

  const m = scheme ? AUTHORITY_RE.exec(authority) : null;
  if (m) {
    const parts = m.slice(1, 5);
    COMPONENTS.forEach((name, i) => {
      if (want.has(name) && parts[i] !== '') {
        parts[i] = REDACTED;
        redacted.add(name);
      }
    });
    authority = `${parts[0]}:${parts[1]}@${parts[2]}:${parts[3]}`;
  }
  if (path !== null) {
    if (want.has('path') && path !== '') {
      path = REDACTED;
      redacted.add('path');
    } else {
      const segs = path.split('/');
      for (let i = 0; i < segs.length - 1; i++) {
        const name = segs[i]!;
        if (want.has(name) && !COMPONENTS.includes(name as never) && segs[i + 1] !== '') {
          segs[i + 1] = REDACTED;
          redacted.add(name);
          i++;
        }
      }
      path = segs.join('/');
    }
  }
  if (!redacted.size) return { addr, redacted: [] };
  return { addr: `${scheme}${authority}${path === null ? '' : `/${path}`}`, redacted: [...redacted].sort() };
}
