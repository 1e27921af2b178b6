#!/usr/bin/env node
// TODO: placeholder until the CLI lands.
process.exitCode = 2;
