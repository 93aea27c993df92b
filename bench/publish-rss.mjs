#!/usr/bin/env node
// Memory while big files arrive: 4 `dm publish` of 10 MiB files (4 names) at
// once into daemon A, which passes them to daemon B (fetched). Samples VmRSS
// of both daemons every 5 ms from just before the publishes until B holds all
// four, and reports the peak against each daemon's RSS just before (idle,
// after one warm-up round). Also the peak RSS of one `dm publish` process.
//
//   node bench/publish-rss.mjs [--runs 3] [--size 10485760] [--files 4]
import crypto from 'node:crypto'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { CHILD_ENV, Cluster, DM, NODE, loadLine, machineLine, max, median, mib, ms, now, parseArgs, printTable, procStats, sleep, track, watchArrivals } from './lib.mjs'

const opts = parseArgs({ runs: 3, size: 10 * 1024 * 1024, files: 4 })
const names = Array.from({ length: opts.files }, (_, i) => `rss-${i}.bin`)

console.log(`publish-rss: ${opts.files} x ${mib(opts.size)} published at once on A, fetched by B; ${opts.runs} runs`)
console.log(machineLine())
console.log(await loadLine())

/** Runs dm publish and samples its own peak RSS (VmHWM) just before it exits. */
function publish (file, name, cluster, A) {
  return new Promise((resolve, reject) => {
    const p = track(spawn(NODE, [DM, 'publish', file, '--name', name, '--key', cluster.key.path, '--config', A.configPath], { env: CHILD_ENV, stdio: ['ignore', 'ignore', 'pipe'] }))
    let hwm = 0
    const t = setInterval(() => { try { const h = procStats(p.pid).hwm; if (Number.isFinite(h)) hwm = Math.max(hwm, h) } catch {} }, 5)
    let err = ''
    p.stderr.on('data', d => { err += d })
    p.once('exit', code => { clearInterval(t); code === 0 ? resolve(hwm) : reject(new Error(`dm publish exited ${code}: ${err}`)) })
  })
}

const cluster = new Cluster({ names, prefix: 'dm-bench-rss-' })
try {
  await cluster.create(2)
  await cluster.startAll()
  await cluster.waitConnected()
  await sleep(1000)
  const [A, B] = cluster.nodes
  const rows = []
  for (let r = -1; r < opts.runs; r++) { // run -1 warms up
    const contents = names.map(() => crypto.randomBytes(opts.size))
    const files = names.map((n, i) => { const f = path.join(cluster.root, n); fs.writeFileSync(f, contents[i]); return f })
    await sleep(1000)
    const before = { A: procStats(A.pid).rss, B: procStats(B.pid).rss }
    const peak = { ...before }
    const sampler = setInterval(() => {
      try { peak.A = Math.max(peak.A, procStats(A.pid).rss); peak.B = Math.max(peak.B, procStats(B.pid).rss) } catch {}
    }, 5)
    const watches = names.map((n, i) => watchArrivals([B], n, contents[i]))
    const t0 = now()
    const hwms = await Promise.all(names.map(async (n, i) => await publish(files[i], n, cluster, A)))
    await Promise.all(watches.map(async w => await w.all))
    const t = now() - t0
    watches.forEach(w => w.close())
    clearInterval(sampler)
    if (r < 0) console.log(`warm-up (daemons fresh): A ${mib(before.A)} -> peak ${mib(peak.A)}, B ${mib(before.B)} -> peak ${mib(peak.B)}`)
    if (r >= 0) {
      rows.push({ beforeA: before.A, peakA: peak.A, beforeB: before.B, peakB: peak.B, publisher: max(hwms), t })
      console.log(`run ${r + 1}: A ${mib(before.A)} -> peak ${mib(peak.A)}, B ${mib(before.B)} -> peak ${mib(peak.B)}, dm publish peak ${mib(max(hwms))}, all on B after ${ms(t)}`)
    }
  }
  const col = (k) => rows.map(x => x[k])
  printTable([
    ['measure', 'median', 'max'],
    ['A (receives the 4 publishes): RSS before', mib(median(col('beforeA'))), mib(max(col('beforeA')))],
    ['A: peak RSS while receiving', mib(median(col('peakA'))), mib(max(col('peakA')))],
    ['B (fetches the 4 from A): RSS before', mib(median(col('beforeB'))), mib(max(col('beforeB')))],
    ['B: peak RSS while fetching', mib(median(col('peakB'))), mib(max(col('peakB')))],
    ['one dm publish process: peak RSS', mib(median(col('publisher'))), mib(max(col('publisher')))],
    ['time until all are on B', ms(median(col('t'))), ms(max(col('t')))]
  ], `results: ${opts.files} x ${mib(opts.size)} at once, ${opts.runs} runs; target: daemon RSS <= 100 MiB`)
} finally {
  await cluster.stop()
}
