// Preload (`node --import`) that makes packages look uninstalled to the built package in dist/,
// for the tests of the missing-peer errors. KMS_JWT_HIDDEN_PACKAGES lists the package names,
// comma-separated. Only imports and requires made from files under dist/ fail, so a hidden
// google-gax is still found by @google-cloud/kms itself, as with a strict node_modules layout.
import Module, { register } from 'node:module';

const hidden = new Set((process.env.KMS_JWT_HIDDEN_PACKAGES ?? '').split(',').filter(Boolean));

function isHidden(specifier, parent) {
  return hidden.has(specifier) && /\/dist\/[^/]+$/.test(parent ?? '');
}

const originalResolve = Module._resolveFilename;
Module._resolveFilename = function hiddenResolve(request, parent, ...rest) {
  if (isHidden(request, parent?.filename)) {
    throw Object.assign(new Error(`Cannot find module '${request}'`), { code: 'MODULE_NOT_FOUND' });
  }
  return originalResolve.call(this, request, parent, ...rest);
};

register('./hide-packages-hooks.mjs', import.meta.url, { data: { hidden: [...hidden] } });
