// Runs the build when dist/ is missing or older than any source file, so that `npm test`,
// `npm run demo` and `npm run bench` always exercise the current code.
import { execFileSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const sourceRoots = ['src', 'adapters', 'package.json', 'tsup.config.ts'];
const builtMarker = 'dist/index.js';

function newestModification(path) {
  const stats = statSync(path);
  if (!stats.isDirectory()) return stats.mtimeMs;
  let newest = stats.mtimeMs;
  for (const entry of readdirSync(path))
    newest = Math.max(newest, newestModification(join(path, entry)));
  return newest;
}

function builtAt() {
  try {
    return statSync(builtMarker).mtimeMs;
  } catch {
    return -1;
  }
}

const sourceTime = Math.max(...sourceRoots.map(newestModification));
if (builtAt() < sourceTime) {
  execFileSync('npx', ['tsup', '--silent'], { stdio: 'inherit' });
}
