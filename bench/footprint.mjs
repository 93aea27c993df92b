#!/usr/bin/env node
// Footprint: one daemon (n0) connected to 2 peers (a 3-daemon mesh), left
// idle for 30 s once start-up has settled: resident memory (VmRSS from
// /proc/PID/status, sampled every second) and CPU (utime+stime from
// /proc/PID/stat over the window), and the node binary's pages n0 holds
// (ICU's data apart) beside a bare node's. Then the start-up time of CLI verbs
// against `node -e 0`, median of 10, interleaved so drift hits all alike,
// and `dm publish` of 1 KiB against `node -e 0` plus the daemon's commit:
// the same publish request (pre-signed with `dm sign`) posted from this
// already-running process, from just before the request to the answer.
//
//   node bench/footprint.mjs [--idle 30000] [--settle 5000] [--reps 10] [--node-args '--max-semi-space-size=1']
//
// --node-args: Node flags for the daemons (not the CLI runs), e.g. to try V8 heap settings.
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import {
  CLK_TCK, CHILD_ENV, apiRequest, binaryPages, icuDataRange, foreignMeter, waitQuiet, Cluster, DM, dm, loadLine, machineLine, max, median, mib, min, ms, NODE, now, parseArgs, printTable, procStats, ratio, runTimed, sleep, track, waitFor
} from './lib.mjs'

const opts = parseArgs({ idle: 30_000, settle: 5000, reps: 10, quiet: 0.15, quietWait: 120_000, nodeArgs: '' })
const nodeArgs = opts.nodeArgs.split(' ').filter(Boolean)
console.log(`footprint: 3 daemons, n0 connected to the other 2, idle ${opts.idle / 1000} s after ${opts.settle / 1000} s settling; CLI start-up, median of ${opts.reps}`)
console.log(machineLine())
if (nodeArgs.length > 0) console.log(`daemons run as: node ${nodeArgs.join(' ')} bin/dm daemon ...`)
console.log(await loadLine())

const cluster = new Cluster({ names: ['motd.txt', 'commit.txt'], prefix: 'dm-bench-footprint-' })
try {
  await cluster.create(3)
  await cluster.startAll({ nodeArgs })
  const [n0] = cluster.nodes
  await waitFor('n0 to have 2 connected peers', async () => (await n0.connectedPeers()) >= 2, { timeoutMs: 60_000, pollMs: 100 })
  await cluster.waitConnected()
  // One publish, so the daemons have done real work and `dm list` lists something.
  const file = path.join(cluster.root, 'motd.txt')
  fs.writeFileSync(file, 'hello\n')
  await dm(['publish', file, '--key', cluster.key.path, '--config', n0.configPath])
  await sleep(opts.settle)
  const peersBefore = await n0.connectedPeers()

  // The idle window: nothing here talks to the daemons, only /proc is read.
  await waitQuiet(cluster.pids(), { maxShare: opts.quiet, timeoutMs: opts.quietWait })
  const others = foreignMeter(cluster.pids())
  const nodes = cluster.nodes
  const start = nodes.map(n => procStats(n.pid))
  const t0 = now()
  const rss = nodes.map(() => [])
  while (now() - t0 < opts.idle) {
    await sleep(1000)
    nodes.forEach((n, i) => rss[i].push(procStats(n.pid).rss))
  }
  const wall = (now() - t0) / 1000
  const foreignIdle = others()
  const end = nodes.map(n => procStats(n.pid))
  const peersAfter = await n0.connectedPeers()

  const rows = [['daemon', 'peers', 'RSS end', 'RSS median', 'RSS max', 'VmHWM (peak)', 'CPU ms in window', 'CPU %']]
  nodes.forEach((n, i) => {
    const cpuMs = (end[i].ticks - start[i].ticks) * 1000 / CLK_TCK
    rows.push([
      `${n.name}${i === 0 ? ' (measured)' : ''}`,
      i === 0 ? `${peersBefore} -> ${peersAfter}` : '',
      mib(end[i].rss), mib(median(rss[i])), mib(max(rss[i])), mib(end[i].hwm),
      cpuMs.toFixed(0), `${(cpuMs / 10 / wall).toFixed(2)}%`
    ])
  })
  printTable(rows, `idle window: ${wall.toFixed(1)} s, RSS sampled every 1 s (${rss[0].length} samples); CPU = (utime+stime) delta / ${CLK_TCK} Hz / wall`)
  console.log(`other processes used ${(foreignIdle * 100).toFixed(0)}% of the machine during the idle window`)

  // The node binary's pages n0 has resident, and how many are ICU's data, against a bare node process.
  const exe = fs.realpathSync(NODE)
  const icu = icuDataRange(exe)
  const bare = track(spawn(NODE, ['-e', 'setTimeout(() => {}, 30000)'], { env: CHILD_ENV, stdio: 'ignore' }))
  await sleep(1000)
  const pagesOf = (pid) => { const p = binaryPages(pid, exe, icu); return `${mib(p.resident)}${icu === undefined ? '' : `, ICU's data ${mib(p.inRange)}`}` }
  console.log(`node binary pages resident: n0 ${pagesOf(n0.pid)}; a bare node process ${pagesOf(bare.pid)}${icu === undefined ? ' (no readelf or no icudt symbol: ICU not counted)' : ` (ICU's data: ${mib(icu.size)} of the binary)`}`)
  bare.kill()

  // CLI start-up, interleaved: node -e 0, dm --help, dm pubkey, dm list, dm status, dm publish, repeated.
  const key = cluster.key.path
  fs.writeFileSync(file, 'x'.repeat(1024))
  const verbs = [
    ['baseline: node -e 0', ['-e', '0']],
    ['dm --help', [DM, '--help']],
    ['dm pubkey KEY', [DM, 'pubkey', key]],
    ['dm list (1 file, daemon running)', [DM, 'list', '--config', n0.configPath]],
    ['dm status (daemon running)', [DM, 'status', '--config', n0.configPath]],
    ['dm publish 1 KiB (daemon running)', [DM, 'publish', file, '--key', key, '--config', n0.configPath]]
  ]
  // The daemon's commit: a publish body (u32 envelope length, envelope, content) of
  // another name, signed in advance in order, posted by this warm process.
  const sigs = []
  for (let r = 0; r <= opts.reps; r++) {
    const sig = path.join(cluster.root, `commit-${r}.sig`)
    await dm(['sign', file, '--key', key, '--name', 'commit.txt', '--out', sig, '--config', n0.configPath])
    const envelope = fs.readFileSync(sig)
    const length = Buffer.alloc(4)
    length.writeUInt32BE(envelope.length)
    sigs.push(Buffer.concat([length, envelope, fs.readFileSync(file)]))
  }
  const commit = async (body) => {
    const t0 = now()
    await apiRequest(n0.socket, 'POST', '/v1/versions', body)
    return now() - t0
  }
  await commit(sigs.shift()) // warm this process's client
  const commits = []
  const times = verbs.map(() => [])
  for (const [, args] of verbs) await runTimed(args) // warm the page cache
  await waitQuiet(cluster.pids(), { maxShare: opts.quiet, timeoutMs: opts.quietWait })
  const othersCli = foreignMeter(cluster.pids())
  for (let r = 0; r < opts.reps; r++) {
    for (const [i, [label, args]] of verbs.entries()) {
      const res = await runTimed(args)
      if (res.code !== 0) throw new Error(`${label} exited ${res.code}: ${res.stderr}`)
      times[i].push(res.ms)
    }
    commits.push(await commit(sigs[r]))
  }
  const base = median(times[0])
  printTable([
    ['command (spawn to exit)', 'median', 'min', 'max', 'x node -e 0', 'minus node -e 0'],
    ...verbs.map(([label], i) => [label, ms(median(times[i])), ms(min(times[i])), ms(max(times[i])), ratio(median(times[i]), base), ms(median(times[i]) - base)])
  ], `CLI start-up, ${opts.reps} interleaved runs each`)
  const publish = median(times[verbs.length - 1])
  const commitMs = median(commits)
  console.log(`the daemon's commit of 1 KiB, posted by a warm client: median ${ms(commitMs)} (min ${ms(min(commits))}, max ${ms(max(commits))})`)
  console.log(`dm publish ${ms(publish)} = ${ratio(publish - commitMs, base)} node -e 0 + the commit (target <= 1.50x)`)
  console.log(`other processes used ${(othersCli() * 100).toFixed(0)}% of the machine during the CLI runs`)
} finally {
  await cluster.stop()
}
