import { AsyncLocalStorage } from 'node:async_hooks';
import type { Tags } from './protocol/mod.js';

const scope = new AsyncLocalStorage<Tags>();
const TAG_KEY = /^[a-z][a-z0-9_.-]{0,63}$/;
// The event schema's bounds: a tag set that breaks them would make every event of the scope refused.
const MAX_TAGS = 16;

/** Throws a RangeError naming the tag when `tags` would not pass the usage schema. */
export function checkTags(tags: Tags): Tags {
  const keys = Object.keys(tags);
  if (keys.length > MAX_TAGS) throw new RangeError(`at most ${MAX_TAGS} tags (got ${keys.length})`);
  for (const k of keys) {
    if (!TAG_KEY.test(k)) throw new RangeError(`tag key "${k}" must match ${TAG_KEY}`);
    const v = tags[k];
    if (typeof v !== 'string' || v.length < 1 || v.length > 256 || /[\u0000-\u001f\u007f]/.test(v)) {
      throw new RangeError(`tag "${k}" must be a string of 1..256 characters without control characters`);
    }
  }
  return tags;
}

/**
 * Runs `fn` with `tags` attached to every usage event recorded inside it, including from model-client
 * wrappers and across awaits (AsyncLocalStorage). Nested scopes add to (and override) the outer tags.
 *
 *   await withTags({ feature: 'search', team: 'ml' }, () => openai.chat.completions.create({...}));
 */
export function withTags<T>(tags: Tags, fn: () => T): T {
  const merged = { ...scope.getStore(), ...checkTags(tags) };
  checkTags(merged);
  return scope.run(merged, fn);
}

/** The tags of the current scope (undefined outside withTags). */
export function currentTags(): Tags | undefined {
  return scope.getStore();
}
