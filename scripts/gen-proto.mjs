// Generates src/gen/adclick.js (+ .d.ts) from proto/ with protobufjs-cli. The output is
// build output (git-ignored). `bin/adclick` (so `npm start` and every CLI command),
// `npm run build` and `npm test` call this first; it is skipped when the generated files
// are newer than every .proto file (a few stat calls).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, existsSync, readFileSync, writeFileSync, renameSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const self = fileURLToPath(import.meta.url);
const root = join(dirname(self), '..');
const protoDir = join(root, 'proto');
const outDir = join(root, 'src', 'gen');
const outJs = join(outDir, 'adclick.js');
const outDts = join(outDir, 'adclick.d.ts');

function protoFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? protoFiles(join(dir, e.name)) : e.name.endsWith('.proto') ? [join(dir, e.name)] : [],
  );
}

/** Generates the Protobuf module unless it is up to date; returns true when it (re)generated. */
export function ensureProtoGenerated({ force = false, quiet = false } = {}) {
  const files = protoFiles(protoDir).sort();
  const newest = Math.max(...files.map((f) => statSync(f).mtimeMs), statSync(self).mtimeMs);
  const fresh = (f) => existsSync(f) && statSync(f).mtimeMs > newest;
  if (!force && fresh(outJs) && fresh(outDts)) return false;
  mkdirSync(outDir, { recursive: true });
  const bin = (name) => join(root, 'node_modules', '.bin', name);
  if (!existsSync(bin('pbjs'))) throw new Error(`${bin('pbjs')} is missing: run \`npm install\` first`);
  // Written under temporary names and renamed, so a process starting meanwhile never
  // imports a half-written module.
  const tmpJs = `${outJs}.${process.pid}.tmp.js`;
  const tmpDts = `${outDts}.${process.pid}.tmp`;
  const stdio = quiet ? ['ignore', 'ignore', 'inherit'] : 'inherit';
  execFileSync(bin('pbjs'), ['-t', 'static-module', '-w', 'es6', '--force-number', '--no-verify', '--no-delimited', '--no-beautify', '-p', protoDir, '-o', tmpJs, ...files], { stdio });
  // pbjs emits `import * as $protobuf from "protobufjs/minimal"`, whose namespace is
  // empty under Node's ESM loader (protobufjs is CommonJS): import the default instead.
  writeFileSync(tmpJs, readFileSync(tmpJs, 'utf8').replace('import * as $protobuf from "protobufjs/minimal";', 'import $protobuf from "protobufjs/minimal.js";'));
  execFileSync(bin('pbts'), ['-o', tmpDts, tmpJs], { stdio });
  renameSync(tmpDts, outDts);
  renameSync(tmpJs, outJs);
  if (!quiet) console.log(`generated ${outJs}`);
  return true;
}

if (process.argv[1] && fileURLToPath(new URL(`file://${process.argv[1]}`)) === self) {
  ensureProtoGenerated({ force: process.argv.includes('--force') });
}
