/**
 * A budget scoped to one tag value (chargeback): `tag:<key>=<value>`, e.g. `tag:team=ml`. It counts only the
 * usage of events carrying that tag. Keys and values follow the event schema's tag rules.
 */
export interface TagScope {
  key: string;
  value: string;
}

const TAG_SCOPE = /^tag:([a-z][a-z0-9_.-]{0,63})=(.{1,256})$/;

export function parseTagScope(scope: string): TagScope | null {
  const m = TAG_SCOPE.exec(scope);
  return m ? { key: m[1]!, value: m[2]! } : null;
}

export function isTagScope(scope: string): boolean {
  return scope.startsWith('tag:');
}
