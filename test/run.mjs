// Runs the unit and integration tests (npm test, after the build).
//
// The test files are first bundled with esbuild (their src imports inlined,
// packages left to node_modules) into .test-build/, at the same depth as
// test/, so paths they derive from import.meta.url still name the repository.
// Plain node then runs them: under tsx, each test file's process paid ~0.4 s
// of CPU to start tsx's loader thread and look up its transform cache; about
// 25 s over the suite, on a 2-core machine. tsc type-checks src/ in the build.
//
// Files start in the order given, so the longest go first: a long file
// started last would run alone at the end while the other core idles.
// Extra arguments go to node --test (e.g. --test-name-pattern=...).
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { build } from 'esbuild'

/** The longest files, longest first (CPU-heavy floods and real daemons that wait on clocks); the rest follow by name. */
const FIRST = [
  'integration/hostile-flood.test.ts',
  'integration/faults.test.ts',
  'integration/ops.test.ts',
  'integration/hostile-members.test.ts',
  'integration/hostile-order.test.ts',
  'integration/hostile-crash.test.ts',
  'integration/packaging.test.ts',
  'integration/mesh.test.ts'
]
const OUT = '.test-build'

const list = (dir) => fs.readdirSync(path.join('test', dir), { recursive: true }).filter(f => String(f).endsWith('.test.ts')).map(f => path.join(dir, String(f)))
const all = [...list('unit'), ...list('integration')].sort()
const ordered = [...FIRST.filter(f => all.includes(f)), ...all.filter(f => !FIRST.includes(f))]

fs.rmSync(OUT, { recursive: true, force: true })
await build({
  entryPoints: all.map(f => path.join('test', f)),
  outbase: 'test',
  outdir: OUT,
  bundle: true,
  packages: 'external',
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'inline',
  logLevel: 'warning'
})

// NODE_EXTRA_CA_CERTS (set on some build machines) makes every node process parse a CA bundle,
// ~100 ms of CPU per daemon or CLI process the tests start; nothing here uses TLS.
const env = { ...process.env }
delete env.NODE_EXTRA_CA_CERTS
const files = ordered.map(f => path.join(OUT, f.replace(/\.ts$/, '.js')))
const r = spawnSync(process.execPath, ['--enable-source-maps', '--test', '--test-concurrency=2', ...process.argv.slice(2), ...files], { stdio: 'inherit', env })
process.exit(r.status ?? 1)
