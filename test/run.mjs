// Runs the unit and integration tests (npm test), and type-checks src/ meanwhile.
//
// The test files are first bundled with esbuild (their src imports inlined,
// packages left to node_modules) into .test-build/, at the same depth as
// test/, so paths they derive from import.meta.url still name the repository.
// Plain node then runs them: under tsx, each test file's process paid ~0.4 s
// of CPU to start tsx's loader thread and look up its transform cache.
//
// The unit files run in ONE process: they are entries of one split bundle (the
// src code they share is loaded and compiled once), imported one after the
// other by unit/all.test.js, each inside a suite named after its file, so its
// hooks stay its own and a failure names its file. A process per unit file
// cost ~9 s of CPU over the suite in start-up and module loading alone.
// The integration files keep a process each: they run side by side.
//
// Files start in the order given, so the longest go first: a long file
// started last would run alone at the end while the other core idles.
// tsc runs beside the tests (it is ~5 s of CPU the tests' waits can absorb);
// a type error still fails the run.
// Extra arguments go to node --test (e.g. --test-name-pattern=...).
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { build } from 'esbuild'

/** The longest, longest first (the unit process, CPU-heavy floods, real daemons that wait on clocks); the rest follow by name. */
const FIRST = [
  'unit/all.test.js',
  'integration/faults.test.ts',
  'integration/ops.test.ts',
  'integration/hostile-members.test.ts',
  'integration/hostile-order.test.ts',
  'integration/trust-admission.test.ts',
  'integration/trust-revocation.test.ts',
  'integration/packaging.test.ts',
  'integration/mesh.test.ts'
]
const OUT = '.test-build'
const UNIT_ENTRY = 'unit/all.test.js'

const list = (dir) => fs.readdirSync(path.join('test', dir), { recursive: true }).filter(f => String(f).endsWith('.test.ts')).map(f => path.join(dir, String(f))).sort()
const units = list('unit')
const integration = list('integration')

// The type check, started before anything else; its verdict is awaited at the end.
const typecheck = new Promise(resolve => {
  const tsc = spawn(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  tsc.stdout.on('data', d => { out += d })
  tsc.stderr.on('data', d => { out += d })
  tsc.on('close', code => resolve({ code, out }))
})

const common = { outbase: 'test', outdir: OUT, bundle: true, packages: 'external', format: 'esm', platform: 'node', target: 'node20', sourcemap: 'inline', logLevel: 'warning' }
fs.rmSync(OUT, { recursive: true, force: true })
await Promise.all([
  build({ ...common, entryPoints: integration.map(f => path.join('test', f)) }),
  // Shared chunks sit in unit/, at test/'s depth like the entries (a helper's import.meta.url must still lead to the repository).
  build({ ...common, entryPoints: units.map(f => path.join('test', f)), splitting: true, chunkNames: 'unit/chunks-[hash]' })
])
fs.writeFileSync(path.join(OUT, UNIT_ENTRY), [
  "import { describe } from 'node:test'",
  `for (const f of ${JSON.stringify(units.map(f => path.relative('unit', f).replace(/\.ts$/, '')))}) describe(\`unit/\${f}.ts\`, async () => { await import(\`./\${f}.js\`) })`,
  ''
].join('\n'))

// NODE_EXTRA_CA_CERTS (set on some build machines) makes every node process parse a CA bundle,
// ~100 ms of CPU per daemon or CLI process the tests start; nothing here uses TLS.
const env = { ...process.env }
delete env.NODE_EXTRA_CA_CERTS
const all = [UNIT_ENTRY, ...integration]
const ordered = [...FIRST.filter(f => all.includes(f)), ...all.filter(f => !FIRST.includes(f))]
const files = ordered.map(f => path.join(OUT, f.replace(/\.ts$/, '.js')))
const tests = spawn(process.execPath, ['--enable-source-maps', '--test', '--test-concurrency=2', ...process.argv.slice(2), ...files], { stdio: 'inherit', env })
const status = await new Promise(resolve => tests.on('close', code => resolve(code ?? 1)))
const checked = await typecheck
if (checked.code !== 0) process.stderr.write(`tsc found type errors:\n${checked.out}`)
process.exit(status !== 0 ? status : checked.code === 0 ? 0 : 1)
