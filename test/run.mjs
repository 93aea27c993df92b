// Runs the unit and integration tests (npm test, after the build): node's test
// runner under tsx, a few files at a time. Files start in the order given, so
// the longest ones go first: a long file started last would run alone at the
// end while the other cores idle. Extra arguments go to node --test.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'

/** The longest files, longest first (CPU-heavy floods and real daemons that wait on clocks); the rest follow by name. */
const FIRST = [
  'test/integration/hostile-flood.test.ts',
  'test/integration/faults.test.ts',
  'test/integration/ops.test.ts',
  'test/integration/hostile-members.test.ts',
  'test/integration/hostile-order.test.ts',
  'test/integration/hostile-crash.test.ts',
  'test/integration/packaging.test.ts',
  'test/integration/mesh.test.ts'
]

const list = (dir) => fs.readdirSync(dir, { recursive: true }).filter(f => String(f).endsWith('.test.ts')).map(f => path.join(dir, String(f)))
const all = [...list('test/unit'), ...list('test/integration')].sort()
const files = [...FIRST.filter(f => all.includes(f)), ...all.filter(f => !FIRST.includes(f))]

// NODE_EXTRA_CA_CERTS (set on some build machines) makes every node process parse a CA bundle,
// ~100 ms of CPU per daemon or CLI process the tests start; nothing here uses TLS.
const env = { ...process.env }
delete env.NODE_EXTRA_CA_CERTS
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', ...process.argv.slice(2), ...files], { stdio: 'inherit', env })
process.exit(r.status ?? 1)
