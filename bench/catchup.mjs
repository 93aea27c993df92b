#!/usr/bin/env node
// Catch-up: a small mesh; daemon B is stopped; 1,000 new versions (names
// file-0000..file-0999, each in [files]) are signed here and posted straight
// to A's API; B is restarted. Timed from B's readiness (its API answers,
// which is the moment it logs "daemon ready") until all 1,000 files are in
// B's state/files/ with the published bytes. Each run publishes new versions
// of the same names (run 1: B holds none of them yet; later runs: updates).
// With --names N (> --files), N names are published and held by every node
// first, and each run updates --files of them, spread evenly over the index.
//
// --nodes 100 --files 10: a daemon restarted into a 100-node mesh (all bootstrapping
// from A), after missing 10 updates.
//
//   node bench/catchup.mjs [--runs 3] [--files 1000] [--names 0] [--nodes 2] [--size 1024]
//     [--cpu-prof DIR] [--script PATH]
// --cpu-prof: B runs under node --cpu-prof, one profile per start in DIR (read it with
// bench/cpuprofile.mjs); --script: another build of the CLI for every daemon (an unminified
// bundle, for readable profiles, or an older commit's bundle, for a same-run baseline).
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {
  CLK_TCK, Cluster, apiRequest, foreignMeter, procStats, loadLine, waitQuiet, machineLine, max, median, min, ms, now, parseArgs, printTable, ratio, runTimed, sleep, missed
} from './lib.mjs'

const opts = parseArgs({ runs: 3, files: 1000, names: 0, nodes: 2, size: 1024, concurrency: 16, poll: 50, quiet: 0.15, quietWait: 120_000, cpuProf: '', script: '' })
if (opts.nodes < 2) throw new Error('--nodes must be at least 2')
const total = Math.max(opts.names, opts.files)
const names = Array.from({ length: total }, (_, i) => `file-${String(i).padStart(Math.max(4, String(total - 1).length), '0')}`)
/** The names each run updates: all of them, or every (total / files)-th, spread over the index. */
const updated = Array.from({ length: opts.files }, (_, i) => names[Math.floor(i * total / opts.files)])
const script = opts.script === '' ? {} : { script: path.resolve(opts.script) }
const bArgs = { nodeArgs: opts.cpuProf === '' ? [] : ['--cpu-prof', `--cpu-prof-dir=${path.resolve(opts.cpuProf)}`], ...script }

// Signing and the publish body come from the project's sources (same code as dm publish), through tsx.
const { tsImport } = await import('tsx/esm/api')
const { newVersion, networkIdFrom } = await tsImport('../src/format/version.ts', import.meta.url)
const { encodePublishBody } = await tsImport('../src/api/wire.ts', import.meta.url)

console.log(`catch-up: ${opts.nodes} daemons, B = n1 restarts and catches up ${opts.files} versions of ${opts.size} B` +
  `${total > opts.files ? ` (in an index of ${total} names held by all)` : ''} from A = n0${opts.nodes > 2 ? ` and ${opts.nodes - 2} other(s)` : ''}, ${opts.runs} runs`)
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

/** Waits until every running node holds `n` files. */
async function waitHeld (n, timeoutMs = 300_000) {
  const end = Date.now() + timeoutMs
  for (;;) {
    const held = await Promise.all(cluster.nodes.filter(x => x.running).map(async x => (await x.status()).files))
    if (held.every(h => h === n)) return
    if (Date.now() > end) throw new Error(`nodes hold ${held.join(', ')} files, expected ${n} each`)
    await sleep(500)
  }
}

/**
 * Waits until the running daemons' CPU, over a second, is below `cores` of a
 * core: the updates have spread and the fleet is idle again, as it is when a
 * laptop that missed them comes back. With many daemons on 2 cores their
 * spreading otherwise runs into B's catch-up.
 */
async function fleetIdle (cores = Math.max(0.5, opts.nodes * 0.006), timeoutMs = 120_000) {
  const end = Date.now() + timeoutMs
  for (;;) {
    const ticks = () => cluster.pids().reduce((a, pid) => a + procStats(pid).ticks, 0)
    const t0 = ticks()
    await sleep(1000)
    if ((ticks() - t0) / CLK_TCK < cores) return
    if (Date.now() > end) throw new Error(`the fleet still used over ${cores} of a core ${timeoutMs} ms after publishing`)
  }
}

const cluster = new Cluster({ names, prefix: 'dm-bench-catchup-' })
try {
  await cluster.create(opts.nodes)
  for (const node of cluster.nodes) await node.start({ pollMs: 20, timeoutMs: 120_000, ...script })
  // Fully connected up to targetPeers + 1 nodes; in a larger mesh each node keeps about targetPeers (8) peers.
  await cluster.waitConnected({ min: Math.min(opts.nodes - 1, 8) })
  await sleep(1000)
  const [A, B] = cluster.nodes
  const networkId = networkIdFrom(cluster.opts.networkId)
  if (total > opts.files) {
    const tp = now()
    await publishAll(A, new Map(names.map(n => [n, crypto.randomBytes(opts.size)])), networkId)
    await waitHeld(total)
    console.log(`setup: ${total} names published to A and held by all ${opts.nodes} daemons in ${ms(now() - tp)}`)
  }

  const runs = []
  for (let r = 0; r < opts.runs; r++) {
    await B.stop()
    const contents = new Map(updated.map(n => [n, crypto.randomBytes(opts.size)]))
    const tp = now()
    await publishAll(A, contents, networkId)
    const publishMs = now() - tp
    const status = await A.status()
    if (status.files !== total) throw new Error(`A holds ${status.files} files, expected ${total}`)
    await sleep(500)
    await fleetIdle()

    await waitQuiet(cluster.pids(), { maxShare: opts.quiet, timeoutMs: opts.quietWait })
    const w = watchMany(B, contents)
    const others = foreignMeter(() => cluster.pids()) // B starts inside the window
    const tSpawn = now()
    await B.start({ wait: false, ...bArgs })
    const tReady = await B.waitReady({ pollMs: 2, timeoutMs: 60_000 })
    // CPU-seconds of B and of the other daemons from readiness to the last file (less sensitive to a busy machine than wall time).
    const cpu = () => cluster.nodes.map(x => procStats(x.pid).ticks / CLK_TCK * 1000)
    const sysB = () => procStats(B.pid).stime / CLK_TCK * 1000
    const cpu0 = cpu()
    const sys0 = sysB()
    const timedOut = await missed(w.all, 120_000)
    const cpu1 = cpu()
    const sys1 = sysB()
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
      cpuB: cpu1[1] - cpu0[1],
      sysB: sys1 - sys0,
      cpuOthers: cpu1.reduce((a, x, i) => i === 1 ? a : a + x - cpu0[i], 0),
      via: { ...w.via }
    })
    console.log(`run ${r + 1}: published ${opts.files} to A in ${ms(publishMs)}; B spawn -> ready ${ms(tReady - tSpawn)}; ready -> all ${opts.files} files ${ms(max(arrivals) - tReady)}` +
      ` (B used ${ms(cpu1[1] - cpu0[1])} CPU, ${ms(sys1 - sys0)} of it in the kernel; other processes used ${(foreign * 100).toFixed(0)}% of the machine; seen by watch ${w.via.watch}, by fallback poll ${w.via.poll}${early > 0 ? `, ${early} before ready` : ''})`)
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
    [`B: ready -> all ${opts.files} files present and identical`, ms(median(col('catchup'))), ms(max(col('catchup')))],
    ['B: CPU time, ready -> all files', ms(median(col('cpuB'))), ms(max(col('cpuB')))],
    ['  of which in the kernel (system time)', ms(median(col('sysB'))), ms(max(col('sysB')))],
    [`the other ${opts.nodes - 1} daemon(s): CPU time, same window`, ms(median(col('cpuOthers'))), ms(max(col('cpuOthers')))]
  ], `results: ${opts.nodes} daemons, ${opts.files} versions${total > opts.files ? ` of ${total} names` : ''}, ${opts.runs} runs (median and max)`)
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
