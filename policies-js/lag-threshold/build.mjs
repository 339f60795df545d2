// Builds policy.js into a WebAssembly component with the componentize-js API.
// (jco 1.35's `jco componentize` CLI cannot read WIT from disk on our machines; the API can.)
//
//   node build.mjs [OUT]     default OUT: dist/lag-threshold-js.wasm
//   WIT_DIR=DIR node build.mjs   another WIT folder (e.g. a frozen older version, for an older host)
import { componentize } from '@bytecodealliance/componentize-js';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] ?? resolve(here, 'dist/lag-threshold-js.wasm'));
const started = performance.now();
const { component } = await componentize({
  sourcePath: resolve(here, 'policy.js'),
  witPath: resolve(here, process.env.WIT_DIR ?? '../../wit'),
  worldName: 'scaling-policy',
  // Only the policy world: no wasi:http (fetch), clocks, random or stdio. The host grants none
  // of clocks/filesystem/network, and a policy must be deterministic anyway.
  disableFeatures: ['stdio', 'random', 'clocks', 'http', 'fetch-event'],
});
await mkdir(dirname(out), { recursive: true });
await writeFile(out, component);
const secs = ((performance.now() - started) / 1000).toFixed(1);
console.log(`wrote ${out} (${component.length} bytes) in ${secs} s`);
