/**
 * The CLI's view of its process: stdout for the result alone, stderr for warnings and errors,
 * the environment, stdin and the clock. Commands receive it as an argument, so that each one
 * writes through the same channels and nothing prints from a library module.
 */
import { escapeControlCharacters } from '../apple/identifiers.js';
import { redact } from './errors.js';

/** Streams, environment and clock handed to each command. */
export interface CliIo {
  /** Writes the command's result to stdout. */
  out(text: string): void;
  /** Writes one `kms-jwt: warning: ...` line to stderr, with control characters escaped. */
  warn(message: string): void;
  /** Writes one diagnostic line to stderr, with control characters escaped. */
  note(line: string): void;
  env: NodeJS.ProcessEnv;
  /** Reads all of stdin as UTF-8 text, or stops and returns undefined past `maxBytes`. */
  readStdin(maxBytes: number): Promise<string | undefined>;
  /** Milliseconds since the epoch. */
  now(): number;
}

/**
 * Creates the I/O object for the running process.
 *
 * @example
 * const io = processIo();
 * io.out('done\n');
 */
export function processIo(): CliIo {
  return {
    out: (text) => void process.stdout.write(text),
    // Warnings and notes quote flags, file names and server text, so a terminal escape in any of
    // them is shown as text instead of acting on the terminal or starting a forged line.
    warn: (message) => void process.stderr.write(`kms-jwt: warning: ${stderrLine(message)}\n`),
    note: (line) => void process.stderr.write(`${stderrLine(line)}\n`),
    env: process.env,
    readStdin,
    now: () => Date.now(),
  };
}

function stderrLine(text: string): string {
  return escapeControlCharacters(redact(text));
}

async function readStdin(maxBytes: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of process.stdin) {
    const bytes = Buffer.from(chunk as Uint8Array);
    length += bytes.length;
    // Leaving the loop ends the iterator, which destroys stdin, so nothing more is read.
    if (length > maxBytes) return undefined;
    chunks.push(bytes);
  }
  return Buffer.concat(chunks).toString('utf8');
}
