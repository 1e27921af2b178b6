// `npm run demo`: the main job end to end, with nothing but a fresh clone and `npm ci`.
// It creates a throwaway P-256 key as an Apple-style AuthKey_<KEYID>.p8 (mode 0600) in a
// temporary folder, mints a Sign in with Apple client secret with the built CLI, verifies the
// token with jose (which this package did not write), prints it decoded, and removes the folder.
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeProtectedHeader, importSPKI, jwtVerify } from 'jose';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cli = join(root, 'dist', 'cli.cjs');
const teamId = 'DEMOTEAM01';
const keyId = 'DEMOKEY001';
const clientId = 'com.example.demo.web';

function createThrowawayKey(folder) {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const path = join(folder, `AuthKey_${keyId}.p8`);
  writeFileSync(path, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
  return { path, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

function mintWithCli(keyPath) {
  const args = ['client-secret', '--team-id', teamId, '--client-id', clientId, '--key', keyPath];
  console.log(`$ kms-jwt ${args.join(' ').replace(keyPath, `.../AuthKey_${keyId}.p8`)}`);
  const result = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  if (result.status !== 0) {
    process.stderr.write(result.stderr);
    throw new Error(`kms-jwt client-secret exited with ${result.status}`);
  }
  if (result.stderr !== '') process.stderr.write(result.stderr);
  return result.stdout.trim();
}

function printTimes(claims) {
  for (const name of ['iat', 'exp']) {
    console.log(`  ${name} = ${new Date(claims[name] * 1000).toISOString()}`);
  }
  const days = (claims.exp - claims.iat) / 86_400;
  console.log(`  lifetime = ${days.toFixed(2)} days`);
}

async function main() {
  const folder = mkdtempSync(join(tmpdir(), 'kms-jwt-demo-'));
  try {
    const key = createThrowawayKey(folder);
    const token = mintWithCli(key.path);
    console.log(`\nclient secret (${token.length} characters):\n${token}\n`);

    // jose checks the ES256 signature, and that iss, sub and aud are what Apple expects.
    const { payload } = await jwtVerify(token, await importSPKI(key.publicPem, 'ES256'), {
      algorithms: ['ES256'],
      issuer: teamId,
      subject: clientId,
      audience: 'https://appleid.apple.com',
    });
    console.log('verified with jose: signature, iss, sub, aud and exp are valid');
    console.log(`header: ${JSON.stringify(decodeProtectedHeader(token))}`);
    console.log(`claims: ${JSON.stringify(payload)}`);
    printTimes(payload);
  } finally {
    rmSync(folder, { recursive: true, force: true });
  }
  console.log('\nremoved the throwaway key. With a real key: kms-jwt client-secret --help');
}

main().catch((error) => {
  console.error(`demo failed: ${error.message}`);
  process.exitCode = 1;
});
