#!/usr/bin/env node
/**
 * `kms-jwt`: mints, verifies and inspects Apple ES256 tokens with keys in a file, AWS KMS,
 * Google Cloud KMS or a PKCS#11 HSM. Each command is its own module, loaded only when it runs,
 * so that start-up pays for the command in use and not for the others or their SDKs.
 *
 * stdout carries the result alone, so that it pipes. Warnings and errors go to stderr, each on
 * one line, and the exit code says what happened (docs/cli.md lists them).
 */
import {
  exitCodeFor,
  formatDebugTrace,
  formatErrorLine,
  quotedWord,
  usageError,
} from './errors.js';
import { processIo, type CliIo } from './io.js';
import { shortenForMessage } from '../message-text.js';

/** What every command module exports. */
export interface CommandModule {
  run(args: string[], io: CliIo): Promise<number>;
}

const commands: Record<string, () => Promise<CommandModule>> = {
  'client-secret': () => import('./commands/client-secret.js'),
  mint: () => import('./commands/mint.js'),
  verify: () => import('./commands/verify.js'),
  inspect: () => import('./commands/inspect.js'),
  'public-key': () => import('./commands/public-key.js'),
  import: () => import('./commands/import.js'),
};

async function main(argv: string[], io: CliIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') return printHelp(io);
  if (name === 'help' && rest[0] !== undefined) return runCommand(rest[0], ['--help'], io);
  if (name === 'help') return printHelp(io);
  if (name === '--version' || name === '-V') return printVersion(io);
  return runCommand(name, rest, io);
}

async function runCommand(name: string, args: string[], io: CliIo): Promise<number> {
  const load = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (load === undefined) {
    if (name.startsWith('-')) throw missingCommandError(name);
    throw usageError('', unknownCommandProblem(name), 'commands');
  }
  const command = await load();
  return command.run(args, io);
}

/**
 * Builds the usage error for an option given before any command, as in `kms-jwt --team-id X`.
 * Only a flag name of an option's shape is shown, because `--name=value` or a stray argument
 * may carry a passphrase, a PIN or a token.
 */
function missingCommandError(argument: string): Error {
  const flag = argument.split('=', 1)[0]!;
  const shown = optionShape.test(flag) ? ` before ${shortenForMessage(flag)}` : '';
  return usageError(
    '',
    `Missing command${shown}: options follow a command, such as client-secret`,
    'commands',
  );
}

// An option before the command is quoted up to its "=" and only when it has an option's shape,
// for the reason quotedWord gives.
const optionShape = /^--?[A-Za-z0-9][A-Za-z0-9_-]*$/;

function unknownCommandProblem(name: string): string {
  const quoted = quotedWord(name);
  if (quoted !== undefined) return `Unknown command ${quoted}`;
  return (
    'Unknown command: the first argument is not a command name. It is not shown, because it ' +
    'may be a key, a PIN or a token given before the command'
  );
}

async function printHelp(io: CliIo): Promise<number> {
  const { toolHelp } = await import('./help.js');
  io.out(toolHelp);
  return 0;
}

async function printVersion(io: CliIo): Promise<number> {
  const { readFileSync, realpathSync } = await import('node:fs');
  const { dirname, join } = await import('node:path');
  // The running script is dist/cli.cjs, one folder below package.json, also when run through the
  // node_modules/.bin symbolic link.
  const manifestPath = join(dirname(realpathSync(process.argv[1] ?? '.')), '..', 'package.json');
  const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as { version?: unknown };
  io.out(`${String(manifest.version)}\n`);
  return 0;
}

/** Waits for stdout and stderr to drain, then exits with `code`. */
async function finish(code: number): Promise<void> {
  await drain(process.stdout);
  await drain(process.stderr);
  // An SDK's keep-alive socket or a native module must not hold the process open after the result.
  process.exit(code);
}

function drain(stream: NodeJS.WriteStream): Promise<void> {
  // A stream destroyed by a closed pipe never calls a write back, so there is nothing to wait for.
  if (stream.destroyed) return Promise.resolve();
  return new Promise<void>((done) => stream.write('', () => done()));
}

/**
 * Handles a write error on stdout or stderr. A reader that stops early, as `| head -1` does,
 * closes the pipe (EPIPE). The rest of the output is then dropped, and the command still ends
 * with its own exit code, because reporting the failure would write again and fail again. Any
 * stderr error is dropped for the same reason.
 */
function onOutputError(error: NodeJS.ErrnoException, stream: NodeJS.WriteStream): void {
  if (error.code === 'EPIPE' || stream === process.stderr) return;
  void reportFailure(error, io);
}

/** The exit code of the failure being reported, once one is. */
let reportedExitCode: number | undefined;

function reportFailure(error: unknown, io: CliIo): Promise<void> {
  // A failure while the first one is reported, such as EPIPE from a stderr whose reader has gone
  // (`kms-jwt ... 2>&1 | head -1`), cannot be written either. Reporting it would fail again, in
  // a loop, so the process exits with the first failure's code.
  if (reportedExitCode !== undefined) process.exit(reportedExitCode);
  reportedExitCode = exitCodeFor(error);

  process.stderr.write(`${formatErrorLine(error)}\n`);
  if (io.env.KMS_JWT_DEBUG === '1') process.stderr.write(formatDebugTrace(error));
  return finish(reportedExitCode);
}

// No top-level await, because the CLI is built as CommonJS.
const io = processIo();
process.stdout.on('error', (error) => onOutputError(error, process.stdout));
process.stderr.on('error', (error) => onOutputError(error, process.stderr));
// An SDK can fail outside the command's promise chain, for example from a credentials lookup it
// started on its own. That failure is reported like any other: one line, and no stack trace.
process.on('uncaughtException', (error) => void reportFailure(error, io));
process.on('unhandledRejection', (reason) => void reportFailure(reason, io));
main(process.argv.slice(2), io).then(finish, (error: unknown) => reportFailure(error, io));
