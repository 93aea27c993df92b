#!/usr/bin/env node
// Catch-up: a small mesh; daemon B is stopped; 1,000 new versions (names
// file-0000..file-0999, each in [files]) are signed here and posted straight
// to A's API; B is restarted. Timed from B's readiness (its API answers,
// which is the moment it logs "daemon ready") until all 1,000 files are in
// B's state/files/ with the published bytes. Each run publishes new versions
// of the same names (run 1: B holds none of them yet; later runs: updates).
//
//   node bench/catchup.mjs [--runs 3] [--files 1000] [--nodes 2] [--size 1024]
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {
  Cluster, apiRequest, foreignMeter, loadLine, waitQuiet, machineLine, max, median, min, ms, now, parseArgs, printTable, ratio, runTimed, sleep
} from './lib.mjs'

const opts = parseArgs({ runs: 3, files: 1000, nodes: 2, size: 1024, concurrency: 16, poll: 50, quiet: 0.15, quietWait: 120_000 })
if (opts.nodes < 2) throw new Error('--nodes must be at least 2')
const names = Array.from({ length: opts.files }, (_, i) => `file-${String(i).padStart(4, '0')}`)

// Signing and the publish body come from the project's sources (same code as dm publish), through tsx.
const { tsImport } = await import('tsx/esm/api')
const { newVersion, networkIdFrom } = await tsImport('../src/format/version.ts', import.meta.url)
const { encodePublishBody } = await tsImport('../src/api/wire.ts', import.meta.url)

console.log(`catch-up: ${opts.nodes} daemons, B = n1 restarts and catches up ${opts.files} versions of ${opts.size} B from A = n0, ${opts.runs} runs`)
console.log(machineLine())
console.log(await loadLine())

/** Posts every (name -> content) to the daemon's API, `concurrency` requests at a time. */
async function publishAll (node, contents, networkId) {
  const entries = [...contents]
  let next = 0
  const t0 = Date.now()
  const worker = async () => {
    while (next < entries.length) {
      const [name, content] = entries[next++]
      const v = newVersion({ name, content, networkId, privateKey: cluster.key.privateKey, signer: cluster.key.publicKey, timestampMs: Math.max(Date.now(), t0) })
      const r = await apiRequest(node.socket, 'POST', '/v1/versions', encodePublishBody(v, content))
      if (r.ok !== true) throw new Error(`${name}: not stored: ${JSON.stringify(r)}`)
    }
  }
  await Promise.all(Array.from({ length: opts.concurrency }, worker))
}

/**
 * Watches node's files/ for every expected name; records when each first reads
 * back identical. fs.watch events plus a fallback stat poll of missing names.
 */
function watchMany (node, expected) {
  const done = new Map()
  const seen = new Map()
  const via = { watch: 0, poll: 0 }
  let resolveAll
  const all = new Promise(resolve => { resolveAll = resolve })
  const check = (name, how) => {
    if (done.has(name) || !expected.has(name)) return
    const t = now()
    const file = path.join(node.filesDir, name)
    let st
    try { st = fs.statSync(file) } catch { return }
    const key = `${st.ino}:${st.size}:${st.mtimeMs}`
    if (seen.get(name) === key) return
    seen.set(name, key)
    let got
    try { got = fs.readFileSync(file) } catch { return }
    if (got.equals(expected.get(name))) {
      done.set(name, t)
      via[how]++
      if (done.size === expected.size) resolveAll()
    }
  }
  fs.mkdirSync(node.filesDir, { recursive: true })
  const watcher = fs.watch(node.filesDir, (_e, file) => { if (file !== null) check(file, 'watch') })
  const timer = setInterval(() => { for (const name of expected.keys()) check(name, 'poll') }, opts.poll)
  return { done, via, all, close () { clearInterval(timer); watcher.close() } }
}

const cluster = new Cluster({ names, prefix: 'dm-bench-catchup-' })
try {
  await cluster.create(opts.nodes)
  await cluster.startAll()
  await cluster.waitConnected()
  await sleep(1000)
  const [A, B] = cluster.nodes
  const networkId = networkIdFrom(cluster.opts.networkId)

  const runs = []
  for (let r = 0; r < opts.runs; r++) {
    await B.stop()
    const contents = new Map(names.map(n => [n, crypto.randomBytes(opts.size)]))
    const tp = now()
    await publishAll(A, contents, networkId)
    const publishMs = now() - tp
    const status = await A.status()
    if (status.files !== opts.files) throw new Error(`A holds ${status.files} files, expected ${opts.files}`)
    await sleep(500)

    await waitQuiet(cluster.pids(), { maxShare: opts.quiet, timeoutMs: opts.quietWait })
    const w = watchMany(B, contents)
    const others = foreignMeter(() => cluster.pids()) // B starts inside the window
    const tSpawn = now()
    await B.start({ wait: false })
    const tReady = await B.waitReady({ pollMs: 2, timeoutMs: 60_000 })
    const timedOut = await Promise.race([w.all.then(() => false), sleep(120_000).then(() => true)])
    w.close()
    const foreign = others()
    if (timedOut) throw new Error(`run ${r + 1}: B has only ${w.done.size}/${opts.files} files 120 s after ready`)
    const arrivals = [...w.done.values()]
    const early = arrivals.filter(t => t < tReady).length
    runs.push({
      publishMs,
      spawnToReady: tReady - tSpawn,
      firstFile: min(arrivals) - tReady,
      catchup: max(arrivals) - tReady,
      early,
      foreign,
      via: { ...w.via }
    })
    console.log(`run ${r + 1}: published ${opts.files} to A in ${ms(publishMs)}; B spawn -> ready ${ms(tReady - tSpawn)}; ready -> all ${opts.files} files ${ms(max(arrivals) - tReady)}` +
      ` (other processes used ${(foreign * 100).toFixed(0)}% of the machine; seen by watch ${w.via.watch}, by fallback poll ${w.via.poll}${early > 0 ? `, ${early} before ready` : ''})`)
    await sleep(1000)
  }

  const nodeStart = []
  await waitQuiet(cluster.pids(), { maxShare: opts.quiet, timeoutMs: opts.quietWait })
  for (let i = 0; i < 10; i++) nodeStart.push((await runTimed(['-e', '0'])).ms)

  const col = (k) => runs.map(x => x[k])
  printTable([
    ['measure', 'median', 'max'],
    ['baseline: node -e 0 (n=10)', ms(median(nodeStart)), ms(max(nodeStart))],
    [`publish ${opts.files} versions to A's API (${opts.concurrency} at once)`, ms(median(col('publishMs'))), ms(max(col('publishMs')))],
    ['B: spawn -> ready (API answers)', ms(median(col('spawnToReady'))), ms(max(col('spawnToReady')))],
    ['B: ready -> first file present', ms(median(col('firstFile'))), ms(max(col('firstFile')))],
    [`B: ready -> all ${opts.files} files present and identical`, ms(median(col('catchup'))), ms(max(col('catchup')))]
  ], `results: ${opts.nodes} daemons, ${opts.files} versions, ${opts.runs} runs (median and max)`)
  const per = median(col('catchup')) / opts.files
  console.log(`\nother processes' share of the machine during runs: median ${(median(col('foreign')) * 100).toFixed(0)}%, max ${(max(col('foreign')) * 100).toFixed(0)}%`)
  console.log(`catch-up rate: ${(1000 / per).toFixed(0)} versions/s (${ratio(median(col('catchup')), 2000)} of the 2 s target)`)
  console.log('\nmethod: B is stopped with SIGTERM; versions are signed in this process with src/format/version.ts newVersion and')
  console.log('posted as POST /v1/versions (src/api/wire.ts encodePublishBody) to A; B is restarted with log_level = "warn", so')
  console.log('its readiness is the first successful connect to its API socket (polled every 2 ms), which the daemon opens')
  console.log(`right before logging "daemon ready". Arrivals: fs.watch on B's files/ plus a ${opts.poll} ms fallback stat poll;`)
  console.log('a file counts once it reads back byte-identical to what was published.')
} finally {
  await cluster.stop()
}
