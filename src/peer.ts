/**
 * Loads an optional peer dependency on first use, with a coded error naming the package when it
 * is missing.
 */
import { KmsJwtError } from './errors.js';

/**
 * Runs `load` (a dynamic `import()` of `packageName`) and maps "module not found" to
 * `ERR_PEER_MISSING`, which names the package, the install command and `usedBy`, the part of
 * this package that needs it.
 */
export async function loadPeer<T>(
  packageName: string,
  load: () => Promise<T>,
  usedBy = 'this backend',
): Promise<T> {
  try {
    return await load();
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') throw error;
    throw new KmsJwtError(
      'ERR_PEER_MISSING',
      `The optional dependency ${packageName} is not installed. Install it with ` +
        `"npm install ${packageName}" to use ${usedBy}.`,
      { cause: error, details: { package: packageName } },
    );
  }
}
