#!/usr/bin/env node
// Propagation latency: from the start of spawning `dm publish FILE` (a 1 KiB
// file) on one daemon until the identical bytes are in state/files/ of all N
// daemons. Baselines measured in the same run: `node -e 0` start-up and the
// `dm publish` process's own wall time (spawn to exit).
//
//   node bench/propagation.mjs [--nodes 10] [--runs 7] [--from N-1] [--settle 5000]
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {
  loadLine, Cluster, DM, dm, machineLine, max, median, min, ms, now, parseArgs, percentile, printTable, ratio, runTimed, sleep, watchArrivals
} from './lib.mjs'

const opts = parseArgs({ nodes: 10, runs: 7, size: 1024, from: -1, settle: 5000, concurrency: 4, gap: 1000, poll: 25, baselines: 10 })
const N = opts.nodes
const NAME = 'prop.bin'
if (N < 2) throw new Error('--nodes must be at least 2')
const from = opts.from < 0 ? N - 1 : opts.from

console.log(`propagation: ${N} daemons, ${opts.runs} runs, ${opts.size} B file, published on n${from}${from === 0 ? ' (the bootstrap node)' : ' (not the bootstrap node)'}`)
console.log(machineLine())
console.log(await loadLine())

const cluster = new Cluster({ names: [NAME], prefix: 'dm-bench-prop-' })
try {
  const tSetup = now()
  await cluster.create(N)
  await cluster.startAll({ concurrency: opts.concurrency })
  const tStarted = now()
  await cluster.waitConnected({ min: 1, timeoutMs: 180_000 })
  const tConnected = now()
  await sleep(opts.settle)
  const counts = await cluster.peerCounts()
  console.log(`setup: ${N} daemons ready in ${ms(tStarted - tSetup)} (<= ${opts.concurrency} starting at once), all with >= 1 peer after ${ms(tConnected - tStarted)} more, then settled ${opts.settle} ms`)
  console.log(`connected peers per daemon after settling: min ${min(counts)}, median ${median(counts)}, max ${max(counts)}`)

  const publisher = cluster.nodes[from]
  const file = path.join(cluster.root, NAME)

  // Warm-up: one publish that is not counted (page cache, first libp2p streams).
  {
    const content = crypto.randomBytes(opts.size)
    fs.writeFileSync(file, content)
    const w = watchArrivals(cluster.nodes, NAME, content, { pollMs: opts.poll })
    await dm(['publish', file, '--key', cluster.key.path, '--config', publisher.configPath])
    await Promise.race([w.all, sleep(30_000)])
    w.close()
    if (w.arrivals.size !== N) throw new Error(`warm-up: only ${w.arrivals.size}/${N} daemons got the file within 30 s`)
    await sleep(opts.gap)
  }

  const runs = []
  for (let r = 0; r < opts.runs; r++) {
    const content = crypto.randomBytes(opts.size) // different content (and a newer version) every run
    fs.writeFileSync(file, content)
    const w = watchArrivals(cluster.nodes, NAME, content, { pollMs: opts.poll })
    const pub = await runTimed([DM, 'publish', file, '--key', cluster.key.path, '--config', publisher.configPath])
    if (pub.code !== 0) throw new Error(`dm publish exited ${pub.code}: ${pub.stderr}`)
    const timedOut = await Promise.race([w.all.then(() => false), sleep(30_000).then(() => true)])
    w.close()
    if (timedOut) throw new Error(`run ${r + 1}: only ${w.arrivals.size}/${N} daemons got the file within 30 s`)
    const t0 = pub.t0
    const others = cluster.nodes.filter(n => n !== publisher).map(n => w.arrivals.get(n) - t0)
    const all = [...w.arrivals.values()].map(t => t - t0)
    runs.push({
      publishExit: pub.ms,
      onPublisher: w.arrivals.get(publisher) - t0,
      firstPeer: min(others),
      p50: percentile(all, 50),
      p90: percentile(all, 90),
      all: max(all),
      afterExit: max(all) - pub.ms,
      via: { ...w.via }
    })
    console.log(`run ${r + 1}: all ${N} in ${ms(max(all))} (dm publish exited at ${ms(pub.ms)}; seen by watch ${w.via.watch}, by fallback poll ${w.via.poll})`)
    await sleep(opts.gap)
  }

  // Baseline: bare node start-up, measured now, on the same loaded machine.
  const nodeStart = []
  for (let i = 0; i < opts.baselines; i++) nodeStart.push((await runTimed(['-e', '0'])).ms)

  const col = (k) => runs.map(x => x[k])
  const nodeMed = median(nodeStart)
  const pubMed = median(col('publishExit'))
  const row = (label, xs) => [label, ms(median(xs)), ms(max(xs)), ratio(median(xs), nodeMed), ratio(median(xs), pubMed)]
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
  const via = runs.reduce((a, r) => ({ watch: a.watch + r.via.watch, poll: a.poll + r.via.poll }), { watch: 0, poll: 0 })
  console.log(`\nmethod: t0 = performance.now() just before spawn('node bin/dm publish'); each daemon's arrival = first moment`)
  console.log(`its state/files/${NAME} reads back byte-identical to the published content, checked on every fs.watch (inotify)`)
  console.log(`event on the files/ dir plus a fallback poll every ${opts.poll} ms of daemons still missing it`)
  console.log(`(arrivals seen by watch: ${via.watch}, by fallback poll: ${via.poll}). log_level = "warn"; one un-timed warm-up publish first.`)
} finally {
  await cluster.stop()
}
