import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';

/**
 * Where segments and manifests live. Every put is atomic: a reader sees the whole object or none
 * (local: temp file, fsync, rename, fsync of the directory; S3: one PUT).
 */
export interface ArchiveStore {
  readonly location: string;
  /** A local scratch file path for a segment being written (same file system as the archive when local). */
  scratchPath(name: string): Promise<string>;
  /** Publishes a finished local file under key and removes the scratch file. */
  putFile(key: string, path: string): Promise<void>;
  putBytes(key: string, bytes: Uint8Array): Promise<void>;
  get(key: string): Promise<Buffer | null>;
  /** Size in bytes, null when absent. */
  size(key: string): Promise<number | null>;
  /** Keys under prefix (recursive), sorted. */
  list(prefix: string): Promise<string[]>;
  remove(key: string): Promise<void>;
  /** A path DuckDB can read (local file), or null (then read through get()). */
  localPath(key: string): string | null;
}

async function fsyncPath(path: string, flags = 'r'): Promise<void> {
  const fh = await open(path, flags);
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export class LocalStore implements ArchiveStore {
  constructor(readonly root: string) {}

  get location(): string {
    return this.root;
  }

  localPath(key: string): string {
    return join(this.root, ...key.split('/'));
  }

  async scratchPath(name: string): Promise<string> {
    const dir = join(this.root, '.scratch');
    await mkdir(dir, { recursive: true });
    return join(dir, `${randomBytes(6).toString('hex')}-${name}`);
  }

  async putFile(key: string, path: string): Promise<void> {
    const dest = this.localPath(key);
    await mkdir(dirname(dest), { recursive: true });
    await fsyncPath(path);
    await rename(path, dest);
    await fsyncPath(dirname(dest));
  }

  async putBytes(key: string, bytes: Uint8Array): Promise<void> {
    const tmp = await this.scratchPath(key.replace(/\//g, '_'));
    const fh = await open(tmp, 'w');
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await this.putFile(key, tmp);
  }

  async remove(key: string): Promise<void> {
    await rm(this.localPath(key), { force: true });
  }

  async get(key: string): Promise<Buffer | null> {
    return readFile(this.localPath(key)).catch((e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return null;
      throw e;
    });
  }

  async size(key: string): Promise<number | null> {
    return stat(this.localPath(key)).then((s) => s.size, () => null);
  }

  async list(prefix: string): Promise<string[]> {
    const out: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      const entries = await readdir(dir, { withFileTypes: true }).catch(() => []);
      for (const e of entries) {
        if (e.name === '.scratch') continue;
        const p = join(dir, e.name);
        if (e.isDirectory()) await walk(p);
        else out.push(relative(this.root, p).split(sep).join('/'));
      }
    };
    await walk(this.root);
    return out.filter((k) => k.startsWith(prefix)).sort();
  }

}
