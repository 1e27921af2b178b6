// Preload for CLI child processes (node --import): wraps every write function of node:fs and
// node:fs/promises, and records each write whose data contains one of the secrets listed in
// FS_GUARD_SECRETS (comma-separated hex), as raw bytes, hex, base64 or base64url text. At exit
// it writes { active, writes, leaks } as JSON to FS_GUARD_REPORT, with the unwrapped functions.
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const secrets = (process.env.FS_GUARD_SECRETS ?? '')
  .split(',')
  .filter((hex) => hex !== '')
  .map((hex) => Buffer.from(hex, 'hex'));
const needles = secrets.flatMap((secret) => [
  secret,
  Buffer.from(secret.toString('hex')),
  Buffer.from(secret.toString('base64')),
  Buffer.from(secret.toString('base64url')),
]);
const original = { writeFileSync: fs.writeFileSync, writeSync: fs.writeSync };
const report = { active: true, writes: 0, leaks: [] };

function toBuffer(data) {
  if (typeof data === 'string') return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (Array.isArray(data)) return Buffer.concat(data.map(toBuffer));
  return Buffer.alloc(0);
}

function inspect(name, target, data) {
  report.writes += 1;
  const bytes = toBuffer(data);
  if (needles.some((needle) => bytes.includes(needle)))
    report.leaks.push({ name, target: String(target) });
}

function wrap(object, name, dataIndex) {
  const real = object[name];
  if (typeof real !== 'function') return;
  object[name] = function (...args) {
    inspect(name, args[0], args[dataIndex]);
    return real.apply(this, args);
  };
}

for (const name of ['writeFileSync', 'writeFile', 'appendFileSync', 'appendFile'])
  wrap(fs, name, 1);
for (const name of ['writeSync', 'write', 'writev', 'writevSync']) wrap(fs, name, 1);
for (const name of ['writeFile', 'appendFile']) wrap(fs.promises, name, 1);

const realCreateWriteStream = fs.createWriteStream;
fs.createWriteStream = function (path, ...rest) {
  const stream = realCreateWriteStream.call(this, path, ...rest);
  const realWrite = stream.write;
  stream.write = function (chunk, ...more) {
    inspect('createWriteStream', path, chunk);
    return realWrite.call(this, chunk, ...more);
  };
  return stream;
};

const realOpen = fs.promises.open;
fs.promises.open = async function (...args) {
  const handle = await realOpen.apply(this, args);
  for (const name of ['write', 'writeFile', 'appendFile', 'writev']) {
    const real = handle[name];
    handle[name] = function (data, ...more) {
      inspect(`FileHandle.${name}`, args[0], data);
      return real.call(this, data, ...more);
    };
  }
  return handle;
};
syncBuiltinESMExports();

process.on('exit', () => {
  if (process.env.FS_GUARD_REPORT) {
    original.writeFileSync(process.env.FS_GUARD_REPORT, JSON.stringify(report));
  }
});
