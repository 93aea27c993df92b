// npm test: builds the bundle, runs the unit and integration tests, and type-checks src/ meanwhile.
//
// The test files are first bundled with esbuild (their src imports inlined,
// packages left to node_modules) into .test-build/, at the same depth as
// test/, so paths they derive from import.meta.url still name the repository.
// Plain node then runs them: under tsx, each test file's process paid ~0.4 s
// of CPU to start tsx's loader thread and look up its transform cache.
//
// The files run in a few processes, not one each: module loading is paid per
// process (~0.3 s of CPU for an integration file, which loads libp2p). Every
// file is an entry of one split bundle; each process imports its files one
// after the other, each inside a suite named after its file, so its hooks
// stay its own and a failure names its file. The unit files share two
// processes; the light integration files share two; the hostile and the long
// integration files keep one each, so their daemons run side by side.
//
// Three processes run at a time on two cores: the integration files spend much
// of their time waiting on daemons and clocks, and a third file fills the core
// a wait leaves idle (measured on this 2-core machine, same load: 54-56 s
// against 68 s with two at a time).
//
// The longest start first: a long file started last would run alone at the end
// while the other core idles. node --test sorts the files it is given, so the
// order is in their names (run/01-unit-1.test.js, run/03-faults.test.js, ...).
// tsc runs beside the tests (~5 s of CPU after a change to src/, ~0.3 s
// without one); a type error still fails the run.
// Extra arguments go to node --test (e.g. --test-name-pattern=...).
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { build } from 'esbuild'

/**
 * The unit files run in a few processes, not one each (module loading is paid
 * per process) and not all in one (that process alone would be the critical
 * path): UNIT_GROUPS processes. The files that load libp2p (~0.65 s of CPU
 * per process) go to the first; the rest fill the lightest group by the
 * seconds each file took in a run on the reference machine (files not
 * listed count half a second).
 */
const UNIT_GROUPS = 2
const UNIT_SECONDS = {
  'unit/reconcile.test.ts': 8, 'unit/api-flood.test.ts': 7.3, 'unit/admission.test.ts': 4.9, 'unit/cli-client.test.ts': 4.2,
  'unit/fuzz.test.ts': 3.4, 'unit/cert-cli.test.ts': 3.1, 'unit/cli-startup.test.ts': 2.9, 'unit/protocol-messages.test.ts': 2.2,
  'unit/push-flood.test.ts': 2.1, 'unit/crypto-ed25519.test.ts': 1.9, 'unit/store-files.test.ts': 1.3, 'unit/format-version.test.ts': 1.3,
  'unit/store.test.ts': 1.2, 'unit/sim.test.ts': 1.2
}
/** Packages whose loading is worth sharing: libp2p and its transports. */
const HEAVY = /^(libp2p|@libp2p\/|@chainsafe\/)/

/**
 * Integration files that share a process, one after the other: each process
 * costs ~0.3 s of CPU to load libp2p and the helpers, and these files mostly
 * wait on their daemons. The hostile files each keep a process, so their
 * stages run side by side; so do the long ones. A file in no group runs alone.
 */
const INTEGRATION_GROUPS = {
  'integration-mesh': ['mesh', 'consumers', 'policy-mesh'],
  'integration-trust': ['private-mesh', 'trust-admission', 'trust-revocation', 'health']
}

/**
 * The longest (in wall time, on a 2-core machine), longest first: the unit processes, then real daemons that
 * wait on clocks and floods. The rest follow by name.
 */
const FIRST = [
  'unit-1', 'unit-2',
  'faults',
  'hostile-order',
  'ops',
  'integration-trust',
  'hostile-members',
  'integration-mesh',
  'hostile-slow',
  'hostile-input',
  'packaging',
  'hostile-crash',
  'hostile-buffers'
]
const OUT = '.test-build'
const rank = (name) => FIRST.includes(name) ? FIRST.indexOf(name) : FIRST.length

const list = (dir) => fs.readdirSync(path.join('test', dir), { recursive: true }).filter(f => String(f).endsWith('.test.ts')).map(f => path.join(dir, String(f))).sort()
const units = list('unit')
const integration = list('integration')

// Every test file is an entry of one split bundle (the src code and packages' glue they share load once per
// process). run/ and the chunks are at test/'s depth, so paths derived from import.meta.url still name the repository.
fs.rmSync(OUT, { recursive: true, force: true })
const built = build({
  outbase: 'test', outdir: OUT, bundle: true, packages: 'external', format: 'esm', platform: 'node', target: 'node20', sourcemap: 'inline', logLevel: 'warning',
  entryPoints: [...units, ...integration].map(f => path.join('test', f)), splitting: true, chunkNames: 'chunks/[name]-[hash]', metafile: true
})

/** Whether a test file's output loads a HEAVY package, itself or through the chunks it imports. */
function loadsHeavy (metafile, file) {
  const seen = new Set()
  const walk = (out) => {
    if (seen.has(out)) return false
    seen.add(out)
    return metafile.outputs[out].imports.some(i => i.external ? HEAVY.test(i.path) : walk(i.path))
  }
  return walk(path.join(OUT, file.replace(/\.ts$/, '.js')))
}

/** The test processes: a name and the files it runs. */
function testProcesses (metafile) {
  const processes = []
  const unitGroups = Array.from({ length: UNIT_GROUPS }, (_, i) => ({ name: `unit-${i + 1}`, files: [], seconds: 0 }))
  const seconds = (f) => UNIT_SECONDS[f] ?? 0.5
  for (const f of units.filter(f => loadsHeavy(metafile, f))) {
    unitGroups[0].files.push(f)
    unitGroups[0].seconds += seconds(f)
  }
  for (const f of units.filter(f => !unitGroups[0].files.includes(f)).sort((a, b) => seconds(b) - seconds(a))) {
    const lightest = unitGroups.reduce((min, g) => g.seconds < min.seconds ? g : min)
    lightest.files.push(f)
    lightest.seconds += seconds(f)
  }
  processes.push(...unitGroups)
  const grouped = new Set(Object.values(INTEGRATION_GROUPS).flat().map(f => `integration/${f}.test.ts`))
  for (const [name, files] of Object.entries(INTEGRATION_GROUPS)) {
    processes.push({ name, files: files.map(f => `integration/${f}.test.ts`).filter(f => integration.includes(f)) })
  }
  for (const f of integration) if (!grouped.has(f)) processes.push({ name: path.basename(f).replace(/\.test\.ts$/, ''), files: [f] })
  return processes.sort((a, b) => rank(a.name) - rank(b.name) || a.name.localeCompare(b.name))
}

/** Runs a node script to its end; resolves with its exit code and what it printed. */
const script = (args) => new Promise(resolve => {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', d => { out += d })
  child.stderr.on('data', d => { out += d })
  child.on('close', code => resolve({ code, out }))
})
// The type check runs beside everything (its verdict is awaited at the end); the daemon and CLI bundle,
// which the tests run as bin/dm, is built beside the test bundles and awaited before any test starts.
// tsc -b: with nothing changed since the last check (its build info, in node_modules/.cache) it is done in
// ~0.3 s, where tsc -p parses every file again (~5 s of CPU); after a change both check the same.
const typecheck = script(['node_modules/typescript/bin/tsc', '-b', 'tsconfig.json'])
const bundle = script(['scripts/bundle.mjs'])

// Each process's entry, run/NN-<name>.test.js, imports its files one after the other, each inside a suite
// named after its file, so its hooks stay its own and a failure names its file.
const processes = testProcesses((await built).metafile)
const entry = (i) => `run/${String(i + 1).padStart(2, '0')}-${processes[i].name}.test.js`
fs.mkdirSync(path.join(OUT, 'run'))
for (const [i, p] of processes.entries()) {
  fs.writeFileSync(path.join(OUT, entry(i)), [
    "import { describe } from 'node:test'",
    `for (const f of ${JSON.stringify(p.files.map(f => f.replace(/\.ts$/, '')))}) describe(\`\${f}.ts\`, async () => { await import(\`../\${f}.js\`) })`,
    ''
  ].join('\n'))
}
const bundled = await bundle
process.stderr.write(bundled.out)
if (bundled.code !== 0) {
  process.stderr.write('scripts/bundle.mjs failed\n')
  process.exit(1)
}

// NODE_EXTRA_CA_CERTS (set on some build machines) makes every node process parse a CA bundle,
// ~100 ms of CPU per daemon or CLI process the tests start; nothing here uses TLS.
const env = { ...process.env }
delete env.NODE_EXTRA_CA_CERTS
const files = processes.map((_, i) => path.join(OUT, entry(i)))
const tests = spawn(process.execPath, ['--enable-source-maps', '--test', '--test-concurrency=3', ...process.argv.slice(2), ...files], { stdio: 'inherit', env })
const status = await new Promise(resolve => tests.on('close', code => resolve(code ?? 1)))
const checked = await typecheck
if (checked.code !== 0) process.stderr.write(`tsc found type errors:\n${checked.out}`)
process.exit(status !== 0 ? status : checked.code === 0 ? 0 : 1)
