#!/usr/bin/env node
// Propagation latency: from the start of spawning `dm publish FILE` (a 1 KiB
// file) on one daemon until the identical bytes are in state/files/ of all N
// daemons. Baselines measured in the same run: `node -e 0` start-up and the
// `dm publish` process's own wall time (spawn to exit).
//
//   node bench/propagation.mjs [--nodes 10] [--runs 7] [--from N-1] [--settle 5000]
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {
  CLK_TCK, foreignMeter, loadLine, procStats, waitQuiet, Cluster, DM, dm, machineLine, max, median, min, ms, now, parseArgs, percentile, printTable, ratio, runTimed, sleep, watchArrivals
} from './lib.mjs'

const opts = parseArgs({ nodes: 10, runs: 7, size: 1024, from: -1, settle: 5000, concurrency: 4, gap: 1000, poll: 25, baselines: 10, connectTimeout: 600_000, quiet: 0.15, quietWait: 120_000, idleSample: 2000, timeout: 60_000, topology: 'star', stall: 180_000 })
if (!['star', 'random'].includes(opts.topology)) throw new Error('--topology is star or random')
const N = opts.nodes
const NAME = 'prop.bin'
if (N < 2) throw new Error('--nodes must be at least 2')
const from = opts.from < 0 ? N - 1 : opts.from

console.log(`propagation: ${N} daemons (${opts.topology === 'star' ? 'all bootstrap from n0' : 'each bootstraps from n0 and 2 random earlier daemons'}), ${opts.runs} runs, ${opts.size} B file, published on n${from}${from === 0 ? ' (the bootstrap node)' : ' (not the bootstrap node)'}`)
console.log(machineLine())
console.log(await loadLine())

const cluster = new Cluster({ names: [NAME], prefix: 'dm-bench-prop-' })
try {
  const tSetup = now()
  // star: every node bootstraps from n0 (as test/helpers/cluster.ts).
  // random: from n0 and up to 2 random earlier nodes, so joining does not depend on n0 accepting everyone.
  const pick = (nodes, k) => [...nodes].sort(() => Math.random() - 0.5).slice(0, k)
  await cluster.create(N, opts.topology === 'star' ? {} : { bootstrap: (i, nodes) => [nodes[0], ...pick(nodes.slice(1, i), 2)] })
  // Progress lines for big clusters, at most one every 10 s.
  let lastNote = now()
  const note = (what) => (done, total, pending = []) => {
    if (N >= 30 && (now() - lastNote > 10_000 || done === total)) {
      lastNote = now()
      const short = pending.length > 0 ? ` (not yet: ${pending.slice(0, 8).map(n => n.name).join(' ')}${pending.length > 8 ? ' ...' : ''})` : ''
      console.log(`  ${((now() - tSetup) / 1000).toFixed(0)} s: ${done}/${total} ${what}, load average ${os.loadavg()[0].toFixed(1)}${short}`)
    }
  }
  await cluster.startAll({ concurrency: opts.concurrency, progress: note('daemons ready') })
  const tStarted = now()
  await cluster.waitConnected({ min: 1, timeoutMs: opts.connectTimeout, pollMs: N >= 30 ? 1000 : 250, progress: note('daemons with a peer'), stallMs: opts.stall })
  const tConnected = now()
  // CPU of all daemons together (utime+stime from /proc) while the mesh is idle, then per publish.
  const meshTicks = () => cluster.nodes.reduce((sum, n) => sum + procStats(n.pid).ticks, 0)
  const idle0 = { ticks: meshTicks(), t: now() }
  await sleep(opts.settle)
  const idleCpuMsPerS = (meshTicks() - idle0.ticks) * (1000 / CLK_TCK) / ((now() - idle0.t) / 1000)
  const counts = await cluster.peerCounts()
  console.log(`setup: ${N} daemons ready in ${ms(tStarted - tSetup)} (<= ${opts.concurrency} starting at once), all with >= 1 peer after ${ms(tConnected - tStarted)} more, then settled ${opts.settle} ms`)
  console.log(`connected peers per daemon after settling: min ${min(counts)}, median ${median(counts)}, max ${max(counts)}`)
  console.log(`idle mesh: all ${N} daemons together use ${(idleCpuMsPerS / 10).toFixed(1)}% of one core (${(idleCpuMsPerS / 10 / N).toFixed(2)}% each) while settling`)

  const publisher = cluster.nodes[from]
  const file = path.join(cluster.root, NAME)

  // Warm-up: one publish that is not counted (page cache, first libp2p streams).
  {
    const content = crypto.randomBytes(opts.size)
    fs.writeFileSync(file, content)
    const w = watchArrivals(cluster.nodes, NAME, content, { pollMs: opts.poll })
    await dm(['publish', file, '--key', cluster.key.path, '--config', publisher.configPath])
    await Promise.race([w.all, sleep(opts.timeout)])
    w.close()
    if (w.arrivals.size !== N) console.log(`warm-up: only ${w.arrivals.size}/${N} daemons got the file within ${opts.timeout} ms`)
    await sleep(opts.gap)
  }

  const runs = []
  for (let r = 0; r < opts.runs; r++) {
    const content = crypto.randomBytes(opts.size) // different content (and a newer version) every run
    fs.writeFileSync(file, content)
    const q = await waitQuiet(cluster.pids(), { maxShare: opts.quiet, timeoutMs: opts.quietWait })
    // The mesh's idle CPU rate just before this publish, subtracted from what the publish costs.
    const idleStart = { ticks: meshTicks(), t: now() }
    await sleep(opts.idleSample)
    const idleRate = (meshTicks() - idleStart.ticks) * (1000 / CLK_TCK) / ((now() - idleStart.t) / 1000)
    const w = watchArrivals(cluster.nodes, NAME, content, { pollMs: opts.poll })
    const foreignShare = foreignMeter(cluster.pids())
    const cpu0 = { ticks: meshTicks(), t: now() }
    const pub = await runTimed([DM, 'publish', file, '--key', cluster.key.path, '--config', publisher.configPath])
    if (pub.code !== 0) throw new Error(`dm publish exited ${pub.code}: ${pub.stderr}`)
    // A run where some daemon never gets the file within --timeout counts as Infinity for it
    // (push missed it and anti-entropy did not repair it in time); the benchmark goes on.
    await Promise.race([w.all, sleep(opts.timeout)])
    w.close()
    const got = w.arrivals.size
    await sleep(opts.gap) // duplicate pushes may still be in flight after the last arrival
    const cpuMs = (meshTicks() - cpu0.ticks) * (1000 / CLK_TCK) - idleRate * (now() - cpu0.t) / 1000
    const foreign = foreignShare()
    const t0 = pub.t0
    const at = (n) => w.arrivals.has(n) ? w.arrivals.get(n) - t0 : Infinity
    const others = cluster.nodes.filter(n => n !== publisher).map(at)
    const all = cluster.nodes.map(at)
    runs.push({
      publishExit: pub.ms,
      onPublisher: at(publisher),
      got,
      firstPeer: min(others),
      p50: percentile(all, 50),
      p90: percentile(all, 90),
      all: max(all),
      afterExit: max(all) - pub.ms,
      cpuMs,
      foreign,
      via: { ...w.via }
    })
    console.log(`run ${r + 1}: ${got === N ? `all ${N} in ${ms(max(all))}` : `ONLY ${got}/${N} within ${opts.timeout} ms`} (dm publish exited at ${ms(pub.ms)}; daemons' CPU for this publish ~${cpuMs.toFixed(0)} ms; other processes used ${(foreign * 100).toFixed(0)}% of the machine${q.waitedMs > 1000 ? `, waited ${(q.waitedMs / 1000).toFixed(0)} s for quiet` : ''}; seen by watch ${w.via.watch}, by fallback poll ${w.via.poll})`)
  }

  // Baseline: bare node start-up, measured now, on the same loaded machine.
  const nodeStart = []
  await waitQuiet(cluster.pids(), { maxShare: opts.quiet, timeoutMs: opts.quietWait })
  for (let i = 0; i < opts.baselines; i++) nodeStart.push((await runTimed(['-e', '0'])).ms)

  const col = (k) => runs.map(x => x[k])
  const nodeMed = median(nodeStart)
  const pubMed = median(col('publishExit'))
  const t = (x) => x === Infinity ? `>${opts.timeout} ms` : ms(x)
  const row = (label, xs) => [label, t(median(xs)), t(max(xs)), ratio(median(xs), nodeMed), ratio(median(xs), pubMed)]
  printTable([
    ['measure (from start of spawning dm publish)', 'median', 'max', 'x node -e 0', 'x dm publish'],
    row(`baseline: node -e 0 (start to exit, n=${opts.baselines})`, nodeStart),
    row('baseline: dm publish process (spawn to exit)', col('publishExit')),
    row('file in publisher\'s files/', col('onPublisher')),
    row('file on first other daemon', col('firstPeer')),
    row(`file on 50% of daemons`, col('p50')),
    row(`file on 90% of daemons`, col('p90')),
    row(`file on all ${N} daemons`, col('all')),
    row('  of which after dm publish exited', col('afterExit'))
  ], `results: ${N} daemons, ${opts.runs} runs (median and max over runs)`)
  const incomplete = runs.filter(r => r.got < N)
  if (incomplete.length > 0) console.log(`\n${incomplete.length} run(s) did not reach every daemon within ${opts.timeout} ms (counted as >${opts.timeout} ms): ${incomplete.map(r => `${r.got}/${N}`).join(', ')}`)
  console.log(`\nCPU used by all ${N} daemons per publish (/proc utime+stime, 10 ms ticks, over the publish and the ${opts.gap} ms after it, minus their idle rate in the ${opts.idleSample} ms before; noisy): median ${median(col('cpuMs')).toFixed(0)} ms, max ${max(col('cpuMs')).toFixed(0)} ms`)
  const noisy = runs.filter(r => r.foreign >= opts.quiet).length
  console.log(`other processes' share of the machine during runs: median ${(median(col('foreign')) * 100).toFixed(0)}%, max ${(max(col('foreign')) * 100).toFixed(0)}%` +
    (noisy > 0 ? ` (${noisy} run(s) at or above ${(opts.quiet * 100).toFixed(0)}%: figures are inflated)` : ''))
  const via = runs.reduce((a, r) => ({ watch: a.watch + r.via.watch, poll: a.poll + r.via.poll }), { watch: 0, poll: 0 })
  console.log(`\nmethod: t0 = performance.now() just before spawn('node bin/dm publish'); each daemon's arrival = first moment`)
  console.log(`its state/files/${NAME} reads back byte-identical to the published content, checked on every fs.watch (inotify)`)
  console.log(`event on the files/ dir plus a fallback poll every ${opts.poll} ms of daemons still missing it`)
  console.log(`(arrivals seen by watch: ${via.watch}, by fallback poll: ${via.poll}). log_level = "warn"; one un-timed warm-up publish first.`)
} finally {
  await cluster.stop()
}
