#!/usr/bin/env node
// Propagation latency: from just before spawning `dm publish FILE` (a 1 KiB
// file) on one daemon until the identical bytes are in state/files/ of all N
// daemons. Baselines measured in the same run: `node -e 0` start-up, the
// `dm publish` process's own wall time, and with --baseline serf, N Serf
// agents joined the same way, an event timed from just before `serf event`
// until every agent's handler has written its payload. Also: the idle CPU of
// each fleet, the CPU one publish costs it, and the memory per process.
//
//   node bench/propagation.mjs [--nodes 10] [--baseline serf] [--warm] [--lossy] [--topology star|random]
//     [--cpu-prof DIR [--prof-node 1] [--script PATH]]
//
// --cpu-prof: daemon --prof-node is restarted under `node --cpu-prof` (from
// --script, e.g. an unminified bundle, for readable names) once the fleet is
// up; DIR gets its profile when the daemons stop, and the windows to read it
// in (idle.json, publishes.json), for `cpuprofile.mjs --windows`.
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import {
  CLK_TCK, foreignMeter, loadLine, memoryBreakdown, procStats, waitQuiet, Cluster, DM, NODE, machineLine, max, median, mib, min, ms, now, parseArgs, percentile, printTable, ratio, runTimed, sleep, tempDir, watchArrivals
} from './lib.mjs'
import { LossyNet } from './netns.mjs'
import { EVENT_FILE, SERF_PAYLOAD_BYTES, SerfFleet, serfVersion } from './serf.mjs'

const opts = parseArgs({
  nodes: 10, runs: 7, size: 1024, from: -1, settle: 5000, concurrency: 4, gap: 7000, warm: false, poll: 25, baselines: 10,
  connectTimeout: 600_000, quiet: 0.15, quietWait: 120_000, idle: 10_000, idleSample: 2000, tail: 1000, timeout: 60_000,
  topology: 'star', stall: 180_000, baseline: 'none', lossy: false, delayMs: 10, jitterMs: 3, loss: 0.01,
  cpuProf: '', profNode: 1, script: ''
})
if (!['star', 'random'].includes(opts.topology)) throw new Error('--topology is star or random')
if (!['none', 'serf'].includes(opts.baseline)) throw new Error('--baseline is none or serf')
if (opts.warm) opts.gap = 1000
const N = opts.nodes
const NAME = 'prop.bin'
if (N < 2) throw new Error('--nodes must be at least 2')
const from = opts.from < 0 ? N - 1 : opts.from
const mode = opts.warm ? `WARM: rounds ${opts.gap} ms apart (push streams still open; not what real, minutes-apart publishes see)` : `cold: rounds ${opts.gap} ms apart (past every idle time-out, as real publishes are)`

console.log(`propagation: ${N} daemons (${opts.topology === 'star' ? 'all bootstrap from n0' : 'each bootstraps from n0 and 2 random earlier daemons'}), ${opts.runs} runs, ${opts.size} B file, published on n${from}${from === 0 ? ' (the bootstrap node)' : ' (not the bootstrap node)'}${opts.baseline === 'serf' ? `; baseline: ${N} Serf agents joined the same way, ${SERF_PAYLOAD_BYTES} B event` : ''}`)
console.log(`mode: ${mode}`)
console.log(machineLine())
console.log(await loadLine())
if (opts.baseline === 'serf') console.log(`serf: ${serfVersion()}`) // and fail now if it is missing, not after the daemons' runs

const net = opts.lossy ? new LossyNet({ n: N, delayMs: opts.delayMs, jitterMs: opts.jitterMs, loss: opts.loss }) : undefined
if (net !== undefined) {
  await net.up()
  console.log(`network: ${net.description}`)
} else console.log('network: 127.0.0.1 (loopback), no added latency or loss')
const placement = net === undefined ? {} : { hostOf: (i) => net.hostOf(i), prefixOf: (i) => net.prefixOf(i) }

// star: every node joins through n0 (as test/helpers/cluster.ts).
// random: through n0 and up to 2 random earlier nodes, so joining does not depend on n0 accepting everyone.
const pick = (xs, k) => [...xs].sort(() => Math.random() - 0.5).slice(0, k)
const joinOf = (i, earlier) => opts.topology === 'star' ? [earlier[0]] : [earlier[0], ...pick(earlier.slice(1, i), 2)]

const tSetup0 = now()
let lastNote = now()
/** Progress lines for big fleets, at most one every 10 s. */
const note = (what) => (done, total, pending = []) => {
  if (N >= 30 && (now() - lastNote > 10_000 || done === total)) {
    lastNote = now()
    const short = pending.length > 0 ? ` (not yet: ${pending.slice(0, 8).map(n => n.name).join(' ')}${pending.length > 8 ? ' ...' : ''})` : ''
    console.log(`  ${((now() - tSetup0) / 1000).toFixed(0)} s: ${done}/${total} ${what}, load average ${os.loadavg()[0].toFixed(1)}${short}`)
  }
}

/** The monotonic clock V8 stamps a .cpuprofile with (µs), so the windows line up with the profile. */
const monoUs = () => Number(process.hrtime.bigint() / 1000n)
const profWindows = { idle: [], publishes: [] }
function saveProfWindows () {
  if (opts.cpuProf === '') return
  for (const [k, w] of Object.entries(profWindows)) fs.writeFileSync(path.join(opts.cpuProf, `${k}.json`), JSON.stringify(w))
}

const ticksOf = (pids) => pids.reduce((sum, pid) => { try { return sum + procStats(pid).ticks } catch { return sum } }, 0)
const cpuMsPerS = (pids, t0, ticks0) => (ticksOf(pids) - ticks0) * (1000 / CLK_TCK) / ((now() - t0) / 1000)

/**
 * The measurements both systems get alike, once their fleet is up and
 * connected: CPU over an idle window, memory per process, one un-timed
 * warm-up, then timed rounds. `publish(payload)` returns runTimed's result;
 * `newPayload()` returns [the bytes every member must end up with, what to
 * publish]; `targets` have filesDir and file() for watchArrivals.
 */
async function measure ({ label, pids, exe, targets, fileName, newPayload, publish, windows = { idle: [], publishes: [] } }) {
  await sleep(opts.settle)
  const idleT0 = now()
  const idleTicks0 = ticksOf(pids())
  const idleUs0 = monoUs()
  await sleep(opts.idle)
  windows.idle.push([idleUs0, monoUs()])
  const idleMsPerS = cpuMsPerS(pids(), idleT0, idleTicks0)
  const mem = pids().map(pid => memoryBreakdown(pid, exe))

  const publisher = targets[from]
  const round = async () => {
    const [expected, payload] = newPayload()
    const w = watchArrivals(targets, fileName, expected, { pollMs: opts.poll })
    const cpu0 = { ticks: ticksOf(pids()), t: now() }
    const foreign = foreignMeter(pids())
    const us0 = monoUs()
    const pub = await publish(payload)
    const timedOut = await Promise.race([w.all.then(() => false), sleep(opts.timeout).then(() => true)])
    const tEnd = now()
    w.close()
    await sleep(opts.tail) // duplicate pushes or gossip may still be in flight after the last arrival
    windows.publishes.push([us0, monoUs()])
    return { pub, w, cpu0, foreign: foreign(), tEnd, timedOut }
  }
  {
    const warm = await round()
    if (warm.w.arrivals.size !== targets.length) console.log(`${label} warm-up: only ${warm.w.arrivals.size}/${targets.length} got it within ${opts.timeout} ms`)
  }
  let lastEnd = now()
  const runs = []
  for (let r = 0; r < opts.runs; r++) {
    // The next publish starts --gap ms after the last arrival of this one; the
    // last --idle-sample ms of that gap give the fleet's idle rate to subtract.
    const sample = Math.min(opts.idleSample, opts.gap / 2)
    await sleep(Math.max(0, lastEnd + opts.gap - sample - now()))
    const q = await waitQuiet(pids(), { maxShare: opts.quiet, timeoutMs: opts.quietWait, sampleMs: Math.min(500, sample) })
    const s0 = { ticks: ticksOf(pids()), t: now() }
    await sleep(sample)
    const idleRate = (ticksOf(pids()) - s0.ticks) * (1000 / CLK_TCK) / ((now() - s0.t) / 1000)
    const { pub, w, cpu0, foreign, tEnd } = await round()
    if (pub.code !== 0) throw new Error(`${label} publish exited ${pub.code}: ${pub.stderr}`)
    lastEnd = tEnd
    const cpuMs = (ticksOf(pids()) - cpu0.ticks) * (1000 / CLK_TCK) - idleRate * (now() - cpu0.t) / 1000
    const at = (n) => w.arrivals.has(n) ? w.arrivals.get(n) - pub.t0 : Infinity
    const all = targets.map(at)
    const got = w.arrivals.size
    runs.push({
      publishExit: pub.ms,
      onPublisher: at(publisher),
      firstPeer: min(targets.filter(n => n !== publisher).map(at)),
      p50: percentile(all, 50),
      p90: percentile(all, 90),
      all: max(all),
      afterExit: max(all) - pub.ms,
      got,
      cpuMs,
      foreign,
      via: { ...w.via }
    })
    console.log(`${label} run ${r + 1}: ${got === targets.length ? `all ${targets.length} in ${ms(max(all))}` : `ONLY ${got}/${targets.length} within ${opts.timeout} ms`} (publish command exited at ${ms(pub.ms)}; fleet CPU for this publish ~${cpuMs.toFixed(0)} ms; other processes used ${(foreign * 100).toFixed(0)}% of the machine${q.waitedMs > 1000 ? `, waited ${(q.waitedMs / 1000).toFixed(0)} s for quiet` : ''}; seen by watch ${w.via.watch}, by fallback poll ${w.via.poll})`)
  }
  return { label, runs, idleMsPerS, mem }
}

function memLine (label, exeName, mem) {
  const m = (k) => median(mem.map(x => x[k]))
  return `${label} memory per process (median of ${mem.length}, /proc/PID/smaps): RSS ${mib(m('rss'))} = shared ${mib(m('shared'))} + private ${mib(m('private'))}; ` +
    `${mib(m('binary'))} of RSS is pages of the ${exeName} binary (${mib(m('binaryShared'))} of them shared with other processes); PSS ${mib(m('pss'))}`
}

// ---------------------------------------------------------------- data-mesher

async function measureDm () {
  const cluster = new Cluster({ names: [NAME], prefix: 'dm-bench-prop-', ...placement })
  try {
    const t0 = now()
    await cluster.create(N, { bootstrap: joinOf })
    await cluster.startAll({ concurrency: opts.concurrency, progress: note('daemons ready') })
    const tStarted = now()
    if (opts.cpuProf !== '') {
      const profiled = cluster.nodes[opts.profNode]
      fs.mkdirSync(opts.cpuProf, { recursive: true })
      await profiled.stop()
      await profiled.start({ nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${path.resolve(opts.cpuProf)}`], ...(opts.script === '' ? {} : { script: path.resolve(opts.script) }) })
      console.log(`profiling ${profiled.name} (pid ${profiled.pid}) into ${opts.cpuProf}`)
    }
    await cluster.waitConnected({ min: 1, timeoutMs: opts.connectTimeout, pollMs: N >= 30 ? 1000 : 250, progress: note('daemons with a peer'), stallMs: opts.stall })
    console.log(`dm setup: ${N} daemons ready in ${ms(tStarted - t0)} (<= ${opts.concurrency} starting at once), all with >= 1 peer after ${ms(now() - tStarted)} more; settling ${opts.settle} ms, then ${opts.idle} ms idle window`)
    const file = path.join(cluster.root, NAME)
    const publisher = cluster.nodes[from]
    const res = await measure({
      label: 'dm',
      pids: () => cluster.pids(),
      exe: fs.realpathSync(NODE),
      targets: cluster.nodes,
      fileName: NAME,
      newPayload: () => { const c = crypto.randomBytes(opts.size); fs.writeFileSync(file, c); return [c, file] },
      publish: (f) => runTimed([DM, 'publish', f, '--key', cluster.key.path, '--config', publisher.configPath], { prefix: publisher.prefix }),
      windows: profWindows
    })
    const counts = await cluster.peerCounts()
    const shape = await cluster.meshShape()
    res.degree = `connected peers per daemon at the end: min ${min(counts)}, median ${median(counts)}, max ${max(counts)}\n` +
      `degree distribution (peers: daemons): ${shape.histogram.map(([d, k]) => `${d}: ${k}`).join(', ')}; mesh diameter ${shape.diameter} hops`
    return res
  } finally {
    await cluster.stop()
    saveProfWindows()
  }
}

// ---------------------------------------------------------------- Serf

async function measureSerf () {
  const root = tempDir('dm-bench-serf-')
  const fleet = new SerfFleet({ root, ...placement, fixedPorts: net !== undefined })
  try {
    const t0 = now()
    await fleet.create(N, { joinOf })
    await fleet.startAll({ concurrency: opts.concurrency, progress: note('serf agents ready') })
    const tStarted = now()
    await fleet.waitMembers({ timeoutMs: opts.connectTimeout, pollMs: N >= 30 ? 1000 : 250, progress: note('serf agents seeing all members') })
    console.log(`serf setup: ${N} agents ready in ${ms(tStarted - t0)}, every agent sees all ${N} alive after ${ms(now() - tStarted)} more; settling ${opts.settle} ms, then ${opts.idle} ms idle window`)
    return await measure({
      label: 'serf',
      pids: () => fleet.pids(),
      exe: fleet.serf,
      targets: fleet.agents,
      fileName: EVENT_FILE,
      newPayload: () => { const p = crypto.randomBytes(SERF_PAYLOAD_BYTES / 2).toString('hex'); return [Buffer.from(p), p] },
      publish: (p) => fleet.event(from, p)
    })
  } finally {
    await fleet.stop()
  }
}

// ---------------------------------------------------------------- run and report

try {
  const dmRes = await measureDm()
  const serfRes = opts.baseline === 'serf' ? await measureSerf() : undefined

  const nodeStart = []
  for (let i = 0; i < opts.baselines; i++) nodeStart.push((await runTimed(['-e', '0'])).ms)
  const nodeMed = median(nodeStart)

  const col = (res, k) => res.runs.map(x => x[k])
  const t = (x) => x === Infinity ? `>${opts.timeout} ms` : ms(x)
  const pubMed = median(col(dmRes, 'publishExit'))
  const row = (label, xs) => [label, t(median(xs)), t(max(xs)), ratio(median(xs), nodeMed), ratio(median(xs), pubMed)]
  printTable([
    ['dm: measure (from start of spawning dm publish)', 'median', 'max', 'x node -e 0', 'x dm publish'],
    row(`baseline: node -e 0 (start to exit, n=${opts.baselines})`, nodeStart),
    row('baseline: dm publish process (spawn to exit)', col(dmRes, 'publishExit')),
    row('file in publisher\'s files/', col(dmRes, 'onPublisher')),
    row('file on first other daemon', col(dmRes, 'firstPeer')),
    row('file on 50% of daemons', col(dmRes, 'p50')),
    row('file on 90% of daemons', col(dmRes, 'p90')),
    row(`file on all ${N} daemons`, col(dmRes, 'all')),
    row('  of which after dm publish exited', col(dmRes, 'afterExit'))
  ], `results: ${N} daemons, ${opts.runs} runs, ${opts.warm ? 'WARM' : 'cold'} (median and max over runs)`)
  console.log(dmRes.degree)

  const cpuRow = (res) => `median ${median(col(res, 'cpuMs')).toFixed(0)} ms, max ${max(col(res, 'cpuMs')).toFixed(0)} ms`
  const idle = (res) => `${(res.idleMsPerS / 10).toFixed(1)}% of one core (${(res.idleMsPerS / 10 / N).toFixed(2)}% per process)`
  if (serfRes !== undefined) {
    const both = (label, k, f = t) => [label, f(median(col(dmRes, k))), f(median(col(serfRes, k))), ratio(median(col(dmRes, k)), median(col(serfRes, k))), `${f(max(col(dmRes, k)))} / ${f(max(col(serfRes, k)))}`]
    const memMed = (res, k) => median(res.mem.map(x => x[k]))
    const memRow = (label, k) => [label, mib(memMed(dmRes, k)), mib(memMed(serfRes, k)), ratio(memMed(dmRes, k), memMed(serfRes, k)), '']
    const cpuMed = (res) => median(col(res, 'cpuMs'))
    printTable([
      ['median over runs (from just before the publishing command)', 'dm', 'serf', 'dm / serf', 'max dm / serf'],
      both('publishing command (dm publish / serf event), spawn to exit', 'publishExit'),
      both('on the first other member', 'firstPeer'),
      both('on 50% of members', 'p50'),
      both('on 90% of members', 'p90'),
      both(`on all ${N} members`, 'all'),
      ['fleet CPU per publish, ms', cpuMed(dmRes).toFixed(0), cpuMed(serfRes).toFixed(0), ratio(cpuMed(dmRes), cpuMed(serfRes)), `${max(col(dmRes, 'cpuMs')).toFixed(0)} / ${max(col(serfRes, 'cpuMs')).toFixed(0)}`],
      ['idle fleet CPU, % of one core', (dmRes.idleMsPerS / 10).toFixed(1), (serfRes.idleMsPerS / 10).toFixed(1), ratio(dmRes.idleMsPerS, serfRes.idleMsPerS), ''],
      memRow('RSS per process (median)', 'rss'),
      memRow('  of which the node / serf binary\'s pages', 'binary'),
      memRow('  private', 'private'),
      memRow('PSS per process (median)', 'pss')
    ], `dm against Serf, ${N} members each, same run, ${opts.warm ? 'WARM' : 'cold'}${net !== undefined ? `, with latency and loss (${opts.delayMs} ± ${opts.jitterMs} ms each way, ${opts.loss * 100} % loss)` : ''}: dm / serf to all = ${ratio(median(col(dmRes, 'all')), median(col(serfRes, 'all')))}`)
  }

  for (const res of [dmRes, serfRes].filter(Boolean)) {
    const incomplete = res.runs.filter(r => r.got < N)
    if (incomplete.length > 0) console.log(`\n${res.label}: ${incomplete.length} run(s) did not reach every member within ${opts.timeout} ms (counted as >${opts.timeout} ms): ${incomplete.map(r => `${r.got}/${N}`).join(', ')}`)
    console.log(`\n${res.label}: idle fleet CPU over ${opts.idle} ms: ${idle(res)}`)
    console.log(`${res.label}: fleet CPU per publish (/proc utime+stime of all ${N}, 10 ms ticks, from the publish to ${opts.tail} ms after the last arrival, minus the idle rate just before; noisy): ${cpuRow(res)}`)
    console.log(memLine(res.label, res.label === 'dm' ? 'node' : 'serf', res.mem))
    const foreign = col(res, 'foreign')
    const noisy = foreign.filter(x => x >= opts.quiet).length
    console.log(`${res.label}: other processes' share of the machine during runs: median ${(median(foreign) * 100).toFixed(0)}%, max ${(max(foreign) * 100).toFixed(0)}%` +
      (noisy > 0 ? ` (${noisy} run(s) at or above ${(opts.quiet * 100).toFixed(0)}%: figures are inflated)` : ''))
  }
  if (net !== undefined) console.log(`\nnetwork relay: ${await net.down()}`)

  const via = [dmRes, serfRes].filter(Boolean).flatMap(r => r.runs).reduce((a, r) => ({ watch: a.watch + r.via.watch, poll: a.poll + r.via.poll }), { watch: 0, poll: 0 })
  console.log(`\nmethod: t0 = performance.now() just before spawning 'node bin/dm publish' (or 'serf event -coalesce=false');`)
  console.log(`a member's arrival = first moment its file (dm: state/files/${NAME}; serf: the file its user-event handler writes`)
  console.log(`the payload to, with shell built-ins) reads back byte-identical, checked on every fs.watch (inotify) event plus a`)
  console.log(`fallback poll every ${opts.poll} ms (arrivals seen by watch: ${via.watch}, by fallback poll: ${via.poll}). One un-timed warm-up`)
  console.log(`publish per system. dm: log_level = "warn". Each round starts ${opts.gap} ms after the previous one's last arrival.`)
  if (net !== undefined) console.log('Lossy mode: both publishing commands run in the publisher\'s namespace through nsenter.')
} finally {
  if (net !== undefined) net.downSync()
}
