import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// Every coded error raised in the source must be documented in docs/errors.md, and every code
// there must still be raised somewhere, so that the list stays the contract callers read.
const sourceRoots = ['src', 'adapters'];
const codePattern = /['"`](ERR_[A-Z0-9_]+)['"`]/g;

function listSourceFiles(folder: string): string[] {
  return readdirSync(folder).flatMap((entry) => {
    const path = join(folder, entry);
    if (statSync(path).isDirectory()) return listSourceFiles(path);
    return path.endsWith('.ts') ? [path] : [];
  });
}

function codesIn(text: string): Set<string> {
  return new Set([...text.matchAll(codePattern)].map((match) => match[1]!));
}

const sourceCodes = new Set(
  sourceRoots.flatMap(listSourceFiles).flatMap((file) => [...codesIn(readFileSync(file, 'utf8'))]),
);
const documentedCodes = new Set(
  [...readFileSync('docs/errors.md', 'utf8').matchAll(/`(ERR_[A-Z0-9_]+)`/g)].map((m) => m[1]!),
);

describe('docs/errors.md', () => {
  it('documents every code in the source', () => {
    const missing = [...sourceCodes].filter((code) => !documentedCodes.has(code)).sort();
    expect(missing).toEqual([]);
  });

  it('lists no code that the source never raises', () => {
    const stale = [...documentedCodes].filter((code) => !sourceCodes.has(code)).sort();
    expect(stale).toEqual([]);
  });
});
