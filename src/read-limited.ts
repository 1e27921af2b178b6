/**
 * Bounded reads of small files, such as a cache record or a PIN file. A path that names
 * /dev/zero or a huge file by mistake must not be read into memory whole, and a pipe has no size
 * to check in advance, so the read stops one byte past the limit.
 */
import type { FileHandle } from 'node:fs/promises';

/**
 * Reads `handle` from its current position to the end, or returns undefined as soon as the file
 * has more than `maxBytes`. The scratch buffer is zeroed before it is dropped, because the
 * content may be a secret.
 *
 * @example
 * const bytes = await readAtMost(handle, 4096);
 * if (bytes === undefined) throw new Error('larger than 4096 bytes');
 */
export async function readAtMost(
  handle: FileHandle,
  maxBytes: number,
): Promise<Buffer | undefined> {
  const buffer = Buffer.alloc(maxBytes + 1);
  try {
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return length > maxBytes ? undefined : Buffer.from(buffer.subarray(0, length));
  } finally {
    buffer.fill(0);
  }
}
