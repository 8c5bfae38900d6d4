import { expect } from 'vitest';

/** The parts of Slack's incoming-webhook payload (text + Block Kit blocks) that Slack rejects when wrong. */
export function expectSlackShape(body: { text?: unknown; blocks?: unknown }): void {
  expect(typeof body.text).toBe('string');
  expect((body.text as string).length).toBeGreaterThan(0);
  expect(Array.isArray(body.blocks)).toBe(true);
  const blocks = body.blocks as Record<string, unknown>[];
  expect(blocks.length).toBeGreaterThan(0);
  expect(blocks.length).toBeLessThanOrEqual(50);
  const textObj = (t: unknown, types: string[], max: number) => {
    const o = t as { type: string; text: string };
    expect(types).toContain(o.type);
    expect(typeof o.text).toBe('string');
    expect(o.text.length).toBeGreaterThan(0);
    expect(o.text.length).toBeLessThanOrEqual(max);
  };
  for (const b of blocks) {
    expect(['header', 'section', 'context', 'divider']).toContain(b.type);
    if (b.type === 'header') textObj(b.text, ['plain_text'], 150);
    if (b.type === 'section') {
      expect(b.text ?? b.fields).toBeDefined();
      if (b.text) textObj(b.text, ['mrkdwn', 'plain_text'], 3000);
      const fields = (b.fields ?? []) as unknown[];
      expect(fields.length).toBeLessThanOrEqual(10);
      for (const f of fields) textObj(f, ['mrkdwn', 'plain_text'], 2000);
    }
    if (b.type === 'context') for (const e of b.elements as unknown[]) textObj(e, ['mrkdwn', 'plain_text'], 3000);
  }
}
