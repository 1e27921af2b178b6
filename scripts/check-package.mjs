// Packs the package and runs publint and attw (node16 profile) on the tarball, as CI does.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const folder = mkdtempSync(join(tmpdir(), 'kms-jwt-pack-'));
try {
  const output = execFileSync('npm', ['pack', '--json', '--pack-destination', folder], {
    encoding: 'utf8',
  });
  const tarball = join(folder, JSON.parse(output)[0].filename);
  execFileSync('npx', ['publint', '--strict', tarball], { stdio: 'inherit' });
  execFileSync('npx', ['attw', '--profile', 'node16', tarball], { stdio: 'inherit' });
} finally {
  rmSync(folder, { recursive: true, force: true });
}
