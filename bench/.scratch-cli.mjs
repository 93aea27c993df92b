import fs from 'node:fs'
import path from 'node:path'
import { Cluster, runTimed, sleep, DM, median, now } from './lib.mjs'
const c = new Cluster({ names: ['small.txt'] })
await c.create(1)
await c.startAll()
const n0 = c.nodes[0]
const small = path.join(c.root, 'small.txt'); fs.writeFileSync(small, 'x'.repeat(1024))
const prof = '/work/scratch/profcli'; fs.rmSync(prof, { recursive: true, force: true })
const mode = process.argv[2] ?? 'time'
const ts = []
for (let i = 0; i < 15; i++) {
  const args = mode === 'prof' ? ['--cpu-prof', '--cpu-prof-interval', '100', '--cpu-prof-dir', prof, DM] : mode === 'mods' ? ['-r', '/work/scratch/mods.cjs', DM] : [DM]
  const t0 = now()
  const r = await runTimed([...args, 'publish', small, '--name', 'small.txt', '--key', c.key.path, '--config', n0.configPath])
  ts.push(now() - t0)
  if (mode === 'mods' && i === 0) console.log(r.stdout, r.stderr)
  await sleep(100)
}
console.log('median', median(ts).toFixed(1))
await c.stop()
process.exit(0)
