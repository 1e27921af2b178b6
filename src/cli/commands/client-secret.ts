/**
 * `kms-jwt client-secret`: the Sign in with Apple client secret, the short name for
 * `kms-jwt mint client-secret`.
 */
import type { CliIo } from '../io.js';
import { runMint } from '../mint-core.js';

/**
 * Runs `client-secret` with the arguments after the command name.
 *
 * @example
 * await run(
 *   ['--team-id', 'DEF123GHIJ', '--client-id', 'com.example.web', '--key', './AuthKey.p8'],
 *   io,
 * );
 */
export function run(args: string[], io: CliIo): Promise<number> {
  return runMint('client-secret', 'client-secret', args, io);
}
