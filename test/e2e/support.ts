import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { jetstream, jetstreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import { decodeStreamRecord, type Names } from '@kaching/contracts';

export const PROJECT = fileURLToPath(new URL('../..', import.meta.url));
const VITE_NODE = path.join(PROJECT, 'node_modules', 'vite-node', 'vite-node.mjs');
const CHILD_CONFIG = path.join(PROJECT, 'test', 'e2e', 'vite.children.config.ts');

/** A TypeScript entry point run as its own process, with the @kaching/* sources (no dist/ needed). */
export function spawnTs(script: string, args: string[], env: NodeJS.ProcessEnv): ChildProcess & { output(): string; waitFor(re: RegExp, ms: number): Promise<string> } {
  const child = spawn(process.execPath, [VITE_NODE, '-c', CHILD_CONFIG, script, '--', ...args], {
    cwd: PROJECT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const listeners = new Set<() => void>();
  const onData = (c: Buffer) => {
    out += c.toString();
    for (const l of listeners) l();
  };
  child.stdout!.on('data', onData);
  child.stderr!.on('data', onData);
  return Object.assign(child, {
    output: () => out,
    waitFor(re: RegExp, ms: number): Promise<string> {
      return new Promise<string>((resolve, reject) => {
        const check = () => {
          const m = re.exec(out);
          if (m) {
            cleanup();
            resolve(m[0]);
          }
        };
        const onExit = () => (cleanup(), reject(new Error(`process exited before ${re}; output:\n${out.slice(-4000)}`)));
        const t = setTimeout(() => (cleanup(), reject(new Error(`timed out waiting for ${re}; output:\n${out.slice(-4000)}`))), ms);
        const cleanup = () => {
          clearTimeout(t);
          listeners.delete(check);
          child.off('exit', onExit);
        };
        listeners.add(check);
        child.once('exit', onExit);
        check();
      });
    },
  });
}

export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

/** Every message of the namespace's events stream: usage correlation ids ("status:<id>" for job status) and Nats-Msg-Ids. */
export async function streamEvents(nc: NatsConnection, n: Names): Promise<{ correlationIds: string[]; msgIds: string[] }> {
  const jsm = await jetstreamManager(nc);
  const total = (await jsm.streams.info(n.eventsStream)).state.messages;
  const correlationIds: string[] = [];
  const msgIds: string[] = [];
  if (total === 0) return { correlationIds, msgIds };
  const consumer = await jetstream(nc).consumers.get(n.eventsStream);
  while (correlationIds.length < total) {
    const batch = await consumer.fetch({ max_messages: total - correlationIds.length, expires: 2000 });
    for await (const m of batch) {
      const rec = decodeStreamRecord(m.data);
      correlationIds.push(rec.kind === 'usage' ? rec.usage.job.correlation_id : `status:${rec.job_status.job.correlation_id}`);
      msgIds.push(m.headers?.get('Nats-Msg-Id') ?? '');
    }
  }
  return { correlationIds, msgIds };
}
