#!/usr/bin/env node
// A 10 MiB file to 3 machines: data-mesher against Syncthing, in one run.
//
// dm: 3 daemons (n1 and n2 bootstrap from n0); each run publishes a new
// random file with `dm publish` on n0, timed from just before its spawn until
// all 3 daemons' files/ hold it byte for byte.
// Syncthing (Debian's, 1.19): 3 devices sharing one folder, watcher off; each
// run moves a new random file (written and fsynced beforehand in a staging
// dir on the same file system) into device 0's folder and at once asks for a
// scan of it over REST (POST /rest/db/scan?folder=ID&sub=FILE): its best
// case. Timed from just before the rename until both other devices hold it
// byte for byte.
// Rounds alternate dm and Syncthing, each spaced --gap ms (default 7 s, past
// every idle time-out) after the previous round of the same system ended.
// Everything runs in a private network namespace with only its loopback
// (`unshare -n`), so Syncthing cannot reach out; the script re-runs itself
// there.
//
//   node bench/bigfile.mjs [--runs 5] [--size 10485760] [--gap 7000]
import { spawnSync } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import {
  foreignMeter, loadLine, waitQuiet, Cluster, DM, machineLine, max, median, mib, ms, now, parseArgs, printTable, ratio, runTimed, sleep, tempDir, watchArrivals
} from './lib.mjs'
import { startSyncthing } from './syncthing.mjs'

const opts = parseArgs({ runs: 5, size: 10 * 1024 * 1024, gap: 7000, quiet: 0.15, quietWait: 120_000, timeout: 120_000 })

if (process.env.BENCH_PRIVATE_NET !== '1') {
  // Re-run this script inside a new network namespace whose loopback is up.
  const r = spawnSync('unshare', ['-n', 'sh', '-c', 'ip link set lo up && exec "$@"', 'sh', process.execPath, fileURLToPath(import.meta.url), ...process.argv.slice(2)],
    { stdio: 'inherit', env: { ...process.env, BENCH_PRIVATE_NET: '1' } })
  if (r.error !== undefined) throw new Error(`unshare -n failed (needs root or user namespaces): ${r.error.message}`)
  process.exit(r.status ?? 1)
}

const NAME = 'big.bin'
console.log(`bigfile: ${mib(opts.size)} to 3 machines, dm (3 daemons) vs Syncthing (3 devices), ${opts.runs} runs each, alternating, rounds ${opts.gap} ms apart; private network namespace (unshare -n, loopback only)`)
console.log(machineLine())
console.log(await loadLine())

const cluster = new Cluster({ names: [NAME], prefix: 'dm-bench-bigfile-' })
const stRoot = tempDir('dm-bench-syncthing-')
let st
try {
  await cluster.create(3)
  await cluster.startAll()
  await cluster.waitConnected()
  st = await startSyncthing(stRoot, 3)
  console.log(`${st.version.split('\n')[0]}`)
  const [A] = cluster.nodes
  const [S0, ...sOthers] = st.devices
  const pids = () => [...cluster.pids(), ...st.devices.map(d => d.pid)]

  const dmSource = path.join(cluster.root, NAME)
  const staging = path.join(stRoot, 'staging')
  fs.mkdirSync(staging)
  const stSource = path.join(staging, NAME)
  /** Written and fsynced before the clock starts, so its write-back is not inside a timed transfer. */
  const writeSynced = (file, content) => {
    const fd = fs.openSync(file, 'w')
    try { fs.writeSync(fd, content); fs.fsyncSync(fd) } finally { fs.closeSync(fd) }
  }
  const arrive = async (w, what) => {
    const timedOut = await Promise.race([w.all.then(() => false), sleep(opts.timeout).then(() => true)])
    w.close()
    if (timedOut) throw new Error(`${what}: not on all targets within ${opts.timeout} ms`)
  }

  const dmRound = async () => {
    const content = crypto.randomBytes(opts.size)
    writeSynced(dmSource, content)
    const w = watchArrivals(cluster.nodes, NAME, content)
    const pub = await runTimed([DM, 'publish', dmSource, '--key', cluster.key.path, '--config', A.configPath])
    if (pub.code !== 0) throw new Error(`dm publish exited ${pub.code}: ${pub.stderr}`)
    await arrive(w, 'dm')
    const at = cluster.nodes.map(n => w.arrivals.get(n) - pub.t0)
    return { all: max(at), onPublisher: at[0], publishExit: pub.ms }
  }
  const stRound = async () => {
    const content = crypto.randomBytes(opts.size)
    writeSynced(stSource, content)
    const w = watchArrivals(sOthers, NAME, content)
    const t0 = now()
    fs.renameSync(stSource, path.join(S0.filesDir, NAME))
    await S0.scan(NAME)
    const scanned = now() - t0
    await arrive(w, 'syncthing')
    return { all: max(sOthers.map(d => w.arrivals.get(d) - t0)), scanned }
  }

  // One un-timed warm-up round of each.
  await dmRound()
  await stRound()

  const dmRuns = []
  const stRuns = []
  for (let r = 0; r < opts.runs; r++) {
    for (const [label, round, runs] of [['dm', dmRound, dmRuns], ['syncthing', stRound, stRuns]]) {
      await sleep(opts.gap)
      const q = await waitQuiet(pids(), { maxShare: opts.quiet, timeoutMs: opts.quietWait })
      const others = foreignMeter(pids())
      const x = await round()
      x.foreign = others()
      runs.push(x)
      console.log(`run ${r + 1} ${label}: on all 3 in ${ms(x.all)}${x.publishExit !== undefined ? ` (dm publish exited at ${ms(x.publishExit)}, on n0 at ${ms(x.onPublisher)})` : ` (scan request answered at ${ms(x.scanned)})`}; other processes used ${(x.foreign * 100).toFixed(0)}% of the machine${q.waitedMs > 1000 ? `, waited ${(q.waitedMs / 1000).toFixed(0)} s for quiet` : ''}`)
    }
  }

  const col = (runs, k) => runs.map(x => x[k])
  const stMed = median(col(stRuns, 'all'))
  const row = (label, xs) => [label, ms(median(xs)), ms(max(xs)), ratio(median(xs), stMed)]
  printTable([
    ['measure', 'median', 'max', 'x Syncthing'],
    row('Syncthing: rename into folder + scan -> on both other devices', col(stRuns, 'all')),
    row('  scan request answered', col(stRuns, 'scanned')),
    row('dm publish process (spawn to exit)', col(dmRuns, 'publishExit')),
    row('dm: in n0\'s files/ (from spawn of dm publish)', col(dmRuns, 'onPublisher')),
    row('dm: on all 3 daemons (from spawn of dm publish)', col(dmRuns, 'all'))
  ], `results: ${mib(opts.size)} to 3 machines, ${opts.runs} runs each (median and max); dm / Syncthing: ${ratio(median(col(dmRuns, 'all')), stMed)}`)
  const foreign = [...col(dmRuns, 'foreign'), ...col(stRuns, 'foreign')]
  console.log(`other processes' share of the machine during runs: median ${(median(foreign) * 100).toFixed(0)}%, max ${(max(foreign) * 100).toFixed(0)}%`)
  console.log('\nmethod: arrival = first moment the file reads back byte-identical, checked on every fs.watch event on its')
  console.log('directory plus a 2 ms fallback stat poll. Sources are written and fsynced before the clock starts.')
  console.log('dm: log_level = "warn"; Syncthing: fsWatcherEnabled=false, rescanIntervalS=3600, discovery/relays/NAT off.')
} finally {
  if (st !== undefined) await Promise.all(st.devices.map(d => d.stop().catch(() => {})))
  await cluster.stop()
}
