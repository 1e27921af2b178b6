// module.register() hook for hide-packages.mjs: ES module imports of the hidden packages made from
// files under dist/ fail as they would if the package were not installed.
let hidden = new Set();

export function initialize(data) {
  hidden = new Set(data.hidden);
}

export async function resolve(specifier, context, nextResolve) {
  if (hidden.has(specifier) && /\/dist\/[^/]+$/.test(context.parentURL ?? '')) {
    const error = new Error(`Cannot find package '${specifier}'`);
    error.code = 'ERR_MODULE_NOT_FOUND';
    throw error;
  }
  return nextResolve(specifier, context);
}
