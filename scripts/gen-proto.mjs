// Generates src/gen/adclick.js (+ .d.ts) from proto/ with protobufjs-cli. The output is
// build output (git-ignored); `npm run build`, `npm test` and the launcher run this first.
// Skipped when the generated files are newer than every .proto file.
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, statSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const protoDir = join(root, 'proto');
const outDir = join(root, 'src', 'gen');
const outJs = join(outDir, 'adclick.js');
const outDts = join(outDir, 'adclick.d.ts');

function protoFiles(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? protoFiles(join(dir, e.name)) : e.name.endsWith('.proto') ? [join(dir, e.name)] : [],
  );
}

const files = protoFiles(protoDir).sort();
const newest = Math.max(...files.map((f) => statSync(f).mtimeMs), statSync(fileURLToPath(import.meta.url)).mtimeMs);
if (existsSync(outJs) && existsSync(outDts) && statSync(outJs).mtimeMs > newest && statSync(outDts).mtimeMs > newest && !process.argv.includes('--force')) {
  process.exit(0);
}
mkdirSync(outDir, { recursive: true });
const bin = (name) => join(root, 'node_modules', '.bin', name);
execFileSync(bin('pbjs'), ['-t', 'static-module', '-w', 'es6', '--force-number', '--no-verify', '--no-delimited', '--no-beautify', '-p', protoDir, '-o', outJs, ...files], { stdio: 'inherit' });
// pbjs emits `import * as $protobuf from "protobufjs/minimal"`, whose namespace is
// empty under Node's ESM loader (protobufjs is CommonJS): import the default instead.
writeFileSync(outJs, readFileSync(outJs, 'utf8').replace('import * as $protobuf from "protobufjs/minimal";', 'import $protobuf from "protobufjs/minimal.js";'));
execFileSync(bin('pbts'), ['-o', outDts, outJs], { stdio: 'inherit' });
console.log(`generated ${outJs}`);
