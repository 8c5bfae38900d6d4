import { accessSync, constants } from 'node:fs';
import path from 'node:path';

/**
 * The path of a program a test runs (promtool, chromium, docker-compose, …). Tests never install anything:
 * `node deploy/services.mjs ensure` (run by `npm test`) installs the missing ones from Debian when it can.
 */
export function requireTool(bin: string, debianPackage: string): string {
  const found = findTool(bin);
  if (!found) {
    throw new Error(`${bin} is missing: run \`node deploy/services.mjs ensure\` (installs it as root on Debian), or \`apt-get install -y ${debianPackage}\``);
  }
  return found;
}

export function findTool(bin: string): string | undefined {
  for (const dir of [...(process.env.PATH ?? '').split(path.delimiter), '/usr/bin', '/usr/sbin', '/bin']) {
    if (!dir) continue;
    try {
      accessSync(path.join(dir, bin), constants.X_OK);
      return path.join(dir, bin);
    } catch {
      // not here
    }
  }
  return undefined;
}
