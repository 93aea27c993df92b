#!/usr/bin/env node
// Throughput: a 10 MiB random file published with `dm publish` on daemon A,
// timed from the start of spawning dm publish until the identical bytes are
// in B's state/files/ (2-node mesh). Baseline, measured in the same run: the
// same bytes over a raw loopback TCP connection between two node processes
// (net module), timed from the start of spawning the sender until the
// receiver has written, fsynced and renamed the file into place, as the
// daemon does. Both arrivals are detected the same way (fs.watch + compare).
//
//   node bench/throughput.mjs [--runs 5] [--size 10485760]
import crypto from 'node:crypto'
import { spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import {
  foreignMeter, loadLine, missed, procStats, CLK_TCK, waitQuiet, CHILD_ENV, Cluster, DM, NODE, dm, machineLine, max, median, mib, ms, now, parseArgs, printTable, ratio, runTimed, sleep, track, watchArrivals
} from './lib.mjs'

const opts = parseArgs({ runs: 5, size: 10 * 1024 * 1024, gap: 1000, quiet: 0.15, quietWait: 120_000 })
const NAME = 'big.bin'

// The raw receiver: one long-lived process (like daemon B). For each connection
// it streams into a staging file, fsyncs it, renames it to out/big.bin and
// fsyncs the directory. It binds port 0 and prints the port it got.
const RECEIVER = `
import fs from 'node:fs'
import net from 'node:net'
import path from 'node:path'
const [dir, name] = process.argv.slice(-2)
const out = path.join(dir, 'out')
let n = 0
const server = net.createServer(sock => {
  const tmp = path.join(dir, 'staging.' + (n++))
  const fd = fs.openSync(tmp, 'wx', 0o640)
  sock.on('data', chunk => { fs.writeSync(fd, chunk) })
  sock.on('end', () => {
    fs.fsyncSync(fd); fs.closeSync(fd)
    fs.renameSync(tmp, path.join(out, name))
    const d = fs.openSync(out, 'r'); fs.fsyncSync(d); fs.closeSync(d)
    sock.end()
  })
})
server.listen(0, '127.0.0.1', () => { process.stdout.write('port ' + server.address().port + '\\n') })
process.on('SIGTERM', () => process.exit(0))
`
// The raw sender: reads the file and writes it to the socket, then exits.
const SENDER = `
import fs from 'node:fs'
import net from 'node:net'
const [port, file] = process.argv.slice(-2)
const data = fs.readFileSync(file)
const sock = net.connect(Number(port), '127.0.0.1', () => { sock.end(data) })
sock.on('error', err => { console.error(err); process.exit(1) })
sock.resume()
`

console.log(`throughput: ${mib(opts.size)} file, ${opts.runs} runs, 2 daemons (A publishes, B receives) vs raw loopback TCP`)
console.log(machineLine())
console.log(await loadLine())

const cluster = new Cluster({ names: [NAME], prefix: 'dm-bench-tput-' })
let receiver
try {
  await cluster.create(2)
  await cluster.startAll()
  await cluster.waitConnected()
  await sleep(1000)
  const [A, B] = cluster.nodes

  const rawDir = path.join(cluster.root, 'raw')
  fs.mkdirSync(path.join(rawDir, 'out'), { recursive: true })
  const receiverJs = path.join(cluster.root, 'receiver.mjs')
  const senderJs = path.join(cluster.root, 'sender.mjs')
  fs.writeFileSync(receiverJs, RECEIVER)
  fs.writeFileSync(senderJs, SENDER)
  receiver = track(spawn(NODE, [receiverJs, rawDir, NAME], { env: CHILD_ENV, stdio: ['ignore', 'pipe', 'inherit'] }))
  const port = await new Promise((resolve, reject) => {
    let out = ''
    receiver.stdout.on('data', d => { out += d; const m = out.match(/port (\d+)/); if (m) resolve(Number(m[1])) })
    receiver.once('exit', () => reject(new Error('raw receiver exited')))
  })
  const rawTarget = { filesDir: path.join(rawDir, 'out'), file: (n) => { try { return fs.readFileSync(path.join(rawDir, 'out', n)) } catch { return undefined } } }

  const file = path.join(cluster.root, NAME)
  /** The source file is fsynced so that its write-back does not land inside a timed transfer. */
  const writeSource = (content) => {
    const fd = fs.openSync(file, 'w')
    try { fs.writeSync(fd, content); fs.fsyncSync(fd) } finally { fs.closeSync(fd) }
  }
  const waitArrival = async (w, what) => {
    const timedOut = await missed(w.all, 120_000)
    w.close()
    if (timedOut) throw new Error(`${what}: not complete within 120 s`)
  }

  // One un-timed warm-up of each path.
  for (const warm of [true]) {
    const content = crypto.randomBytes(opts.size)
    writeSource(content)
    let w = watchArrivals([B], NAME, content)
    await dm(['publish', file, '--key', cluster.key.path, '--config', A.configPath])
    await waitArrival(w, 'warm-up dm')
    w = watchArrivals([rawTarget], NAME, content)
    await runTimed([senderJs, String(port), file])
    await waitArrival(w, 'warm-up raw')
    void warm
  }

  const runs = []
  for (let r = 0; r < opts.runs; r++) {
    const content = crypto.randomBytes(opts.size) // new content every run
    writeSource(content)
    await sleep(opts.gap)

    // Raw TCP first, then dm, each on a quiet machine.
    const pids = [...cluster.pids(), receiver.pid]
    await waitQuiet(pids, { maxShare: opts.quiet, timeoutMs: opts.quietWait })
    const others = foreignMeter(pids)
    let w = watchArrivals([rawTarget], NAME, content)
    const send = await runTimed([senderJs, String(port), file])
    if (send.code !== 0) throw new Error(`raw sender exited ${send.code}: ${send.stderr}`)
    await waitArrival(w, 'raw TCP')
    const raw = w.arrivals.get(rawTarget) - send.t0
    await sleep(opts.gap)

    await waitQuiet(pids, { maxShare: opts.quiet, timeoutMs: opts.quietWait })
    w = watchArrivals([A, B], NAME, content)
    // B's CPU over the publish: it has nothing to do before A's commit announces the version, so this is
    // about the transfer and B's commit. Close to the A -> B wall time means the receiver is CPU-bound.
    const bTicks = procStats(B.pid).ticks
    const pub = await runTimed([DM, 'publish', file, '--key', cluster.key.path, '--config', A.configPath])
    if (pub.code !== 0) throw new Error(`dm publish exited ${pub.code}: ${pub.stderr}`)
    await waitArrival(w, 'dm')
    const onA = w.arrivals.get(A) - pub.t0
    const onB = w.arrivals.get(B) - pub.t0
    const cpuB = (procStats(B.pid).ticks - bTicks) / CLK_TCK * 1000
    const foreign = others()
    runs.push({ raw, rawSender: send.ms, pub: pub.ms, onA, onB, aToB: onB - onA, cpuB, foreign })
    console.log(`run ${r + 1}: raw TCP ${ms(raw)}, dm to B ${ms(onB)} (${ratio(onB, raw)}; dm publish exited at ${ms(pub.ms)}, on A at ${ms(onA)}; other processes used ${(foreign * 100).toFixed(0)}% of the machine)`)
  }

  const nodeStart = []
  await waitQuiet([...cluster.pids(), receiver.pid], { maxShare: opts.quiet, timeoutMs: opts.quietWait })
  for (let i = 0; i < 10; i++) nodeStart.push((await runTimed(['-e', '0'])).ms)

  const col = (k) => runs.map(x => x[k])
  const rawMed = median(col('raw'))
  const mbps = (t) => `${(opts.size / 1024 / 1024 / (t / 1000)).toFixed(0)} MiB/s`
  const row = (label, xs, rate = true) => [label, ms(median(xs)), ms(max(xs)), rate ? mbps(median(xs)) : '', ratio(median(xs), rawMed)]
  printTable([
    ['measure', 'median', 'max', 'rate (median)', 'x raw TCP'],
    row('baseline: node -e 0 (n=10)', nodeStart, false),
    row('baseline: raw TCP, spawn sender -> fsynced on receiver', col('raw')),
    row('  raw sender process (spawn to exit)', col('rawSender')),
    row('dm publish process (spawn to exit)', col('pub')),
    row('dm: in A\'s files/ (from spawn of dm publish)', col('onA')),
    row('dm: in B\'s files/ (from spawn of dm publish)', col('onB')),
    row('  of which A files/ -> B files/', col('aToB')),
    row('  B\'s CPU time for it (transfer and commit; 10 ms ticks)', col('cpuB'), false)
  ], `results: ${mib(opts.size)}, ${opts.runs} runs (median and max); ratio of dm to B vs raw TCP: ${ratio(median(col('onB')), rawMed)}`)
  console.log(`other processes' share of the machine during runs: median ${(median(col('foreign')) * 100).toFixed(0)}%, max ${(max(col('foreign')) * 100).toFixed(0)}%`)
  console.log('\nmethod: arrival = first moment the target file reads back byte-identical, checked on every fs.watch event on')
  console.log('its directory plus a 2 ms fallback stat poll. Both paths start a fresh node process to send (dm publish / raw sender);')
  console.log('both receivers write a staging file, fsync, rename into place and fsync the directory. log_level = "warn".')
} finally {
  if (receiver !== undefined && receiver.exitCode === null) receiver.kill('SIGTERM')
  await cluster.stop()
}
