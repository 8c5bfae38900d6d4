/** Size of the chunks COPY data goes out in: pg-copy-streams sends every chunk as its own socket write. */
export const COPY_CHUNK_BYTES = 256 * 1024;

/**
 * Collects COPY text lines as UTF-8 straight into a buffer and hands it over when full. Appending to a
 * string and encoding it at the end built a rope that cost ~2 µs per line to flatten and encode; this
 * costs ~0.4 µs (measured over 60k staged stream rows).
 */
export class CopyChunks {
  private buf = Buffer.allocUnsafe(COPY_CHUNK_BYTES);
  private used = 0;

  /** Adds one line; returns the full chunk to send when this line did not fit, else null. */
  add(line: string): Buffer | null {
    // a UTF-16 code unit takes at most 3 UTF-8 bytes
    const most = line.length * 3;
    let full: Buffer | null = null;
    if (this.used + most > this.buf.length) {
      full = this.take();
      if (most > this.buf.length) this.buf = Buffer.allocUnsafe(most);
    }
    this.used += this.buf.write(line, this.used);
    return full;
  }

  /** What is collected so far (the buffer is handed over, never reused), or null when empty. */
  take(): Buffer | null {
    if (this.used === 0) return null;
    const out = this.buf.subarray(0, this.used);
    this.buf = Buffer.allocUnsafe(COPY_CHUNK_BYTES);
    this.used = 0;
    return out;
  }
}
