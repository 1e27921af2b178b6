import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

// tsup inlines every package that package.json does not declare, and marks each inlined module
// with a "// node_modules/NAME/..." comment. The Google client, google-gax and their own
// dependencies must stay external, so that the user's installed copies run.
const inlined = /^\/\/ node_modules\/((?:@[^/]+\/)?[^/]+)\//gm;

describe('built Cloud KMS adapter', () => {
  it('inlines no Google package', () => {
    const found = new Set<string>();
    for (const file of readdirSync('dist').filter((name) => /\.(c?js)$/.test(name))) {
      const text = readFileSync(join('dist', file), 'utf8');
      for (const match of text.matchAll(inlined)) found.add(match[1]!);
    }
    const google = [...found].filter((name) =>
      /^(@google-cloud\/|google-|@grpc\/|gcp-metadata|gaxios|@aws-crypto\/)/.test(name),
    );
    expect(google).toEqual([]);
  });

  it('imports google-gax at run time', () => {
    const text = readFileSync('dist/gcp-kms.js', 'utf8');
    expect(text).toMatch(/import\(["']google-gax["']\)/);
    expect(text).toMatch(/import\(["']@google-cloud\/kms["']\)/);
  });
});
