// Shared helpers for the benchmarks: real `dm daemon` processes (the compiled
// bin/dm) on 127.0.0.1, ports picked at run time, in a temporary directory
// that is removed on exit, whatever happens.
import { execFileSync, spawn } from 'node:child_process'
import { generateKeyPairSync, createPublicKey } from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
export const DM = path.join(ROOT, 'bin', 'dm')
export const NODE = process.execPath
export const now = () => performance.now()
export const sleep = (ms) => new Promise(resolve => setTimeout(resolve, ms))

/** Whether `promise` missed a deadline of `ms`; the timer is cleared once it settles, so it keeps no process alive. */
export async function missed (promise, ms) {
  let timer
  const late = new Promise(resolve => { timer = setTimeout(resolve, ms, true) })
  try {
    return await Promise.race([promise.then(() => false), late])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * The environment of every child (daemons, CLIs, baselines alike). Without
 * BENCH_KEEP_ENV=1, NODE_EXTRA_CA_CERTS is dropped: Node 20 parses that CA
 * bundle at every start-up (~70 ms here), dm uses no TLS, and production
 * hosts do not normally set it. BENCH_KEEP_ENV=1 keeps the environment as is.
 */
export const KEEP_ENV = process.env.BENCH_KEEP_ENV === '1'
export const CHILD_ENV = (() => {
  const env = { ...process.env }
  if (!KEEP_ENV) delete env.NODE_EXTRA_CA_CERTS
  return env
})()

// ---------------------------------------------------------------- clean-up

const children = new Set()
const tempDirs = new Set()
const cleanups = []

/** Registers a synchronous clean-up step (e.g. deleting network namespaces), run after the children are killed. */
export function onCleanup (fn) { cleanups.push(fn) }

function cleanupSync () {
  for (const p of children) {
    if (p.exitCode === null && p.signalCode === null) { try { p.kill('SIGKILL') } catch {} }
  }
  children.clear()
  for (const fn of cleanups.splice(0).reverse()) { try { fn() } catch {} }
  for (const d of tempDirs) { try { fs.rmSync(d, { recursive: true, force: true }) } catch {} }
  tempDirs.clear()
}
process.on('exit', cleanupSync)
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(sig, () => {
    console.error(`\nbenchmark: got ${sig}; stopping its daemons and removing its temporary directories`)
    cleanupSync()
    process.exit(130)
  })
}
process.on('uncaughtException', err => { console.error(err); cleanupSync(); process.exit(1) })
process.on('unhandledRejection', err => { console.error(err); cleanupSync(); process.exit(1) })

/** Spawns a child that is killed when the benchmark exits. */
export function track (proc) {
  children.add(proc)
  proc.once('exit', () => children.delete(proc))
  return proc
}

export function tempDir (prefix) {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix))
  tempDirs.add(d)
  return d
}

export function removeTempDir (d) {
  fs.rmSync(d, { recursive: true, force: true })
  tempDirs.delete(d)
}

// ---------------------------------------------------------------- arguments, statistics, tables

/** --name value / --name=value / --flag parsing with defaults (kebab-case flags); numbers stay numbers. */
export function parseArgs (defaults, argv = process.argv.slice(2)) {
  const out = { ...defaults }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`)
    const eq = a.indexOf('=')
    const flag = eq < 0 ? a.slice(2) : a.slice(2, eq)
    const inline = eq < 0 ? undefined : a.slice(eq + 1)
    const k = flag.replace(/-([a-z])/g, (_, c) => c.toUpperCase()) // --quiet-wait -> quietWait
    const kebab = (x) => x.replace(/[A-Z]/g, c => '-' + c.toLowerCase())
    if (!(k in defaults)) throw new Error(`unknown option --${flag} (known: ${Object.keys(defaults).map(x => '--' + kebab(x)).join(' ')})`)
    let v = inline
    if (v === undefined) {
      if (typeof defaults[k] === 'boolean') v = 'true'
      else v = argv[++i]
    }
    if (v === undefined) throw new Error(`--${k} needs a value`)
    out[k] = typeof defaults[k] === 'number' ? Number(v) : typeof defaults[k] === 'boolean' ? v !== 'false' : v
    if (typeof defaults[k] === 'number' && !Number.isFinite(out[k])) throw new Error(`--${k}: not a number: ${v}`)
  }
  return out
}

export function median (xs) {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return NaN
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}
export const max = (xs) => xs.length === 0 ? NaN : Math.max(...xs)
export const min = (xs) => xs.length === 0 ? NaN : Math.min(...xs)
/** Nearest-rank percentile. */
export function percentile (xs, p) {
  const s = [...xs].sort((a, b) => a - b)
  if (s.length === 0) return NaN
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(p / 100 * s.length) - 1))]
}

export const ms = (x) => Number.isFinite(x) ? `${x.toFixed(1)} ms` : 'n/a'
export const ratio = (a, b) => Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : 'n/a'
export const mib = (bytes) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`

/** Prints rows as an aligned plain-text table; the first row is the header. */
export function printTable (rows, title) {
  if (title !== undefined) console.log(`\n${title}`)
  const widths = rows[0].map((_, c) => Math.max(...rows.map(r => String(r[c] ?? '').length)))
  const line = (r) => r.map((cell, c) => {
    const s = String(cell ?? '')
    return c === 0 ? s.padEnd(widths[c]) : s.padStart(widths[c])
  }).join('  ').trimEnd()
  console.log(line(rows[0]))
  console.log(widths.map(w => '-'.repeat(w)).join('  '))
  for (const r of rows.slice(1)) console.log(line(r))
}

/** Which code is being measured: the commit, whether src/ has uncommitted changes, when bin/dm's bundle was built. */
export function codeLine () {
  let commit = '?'
  let dirty = ''
  try {
    commit = execFileSync('git', ['-C', ROOT, 'log', '-1', '--format=%h %s'], { encoding: 'utf8' }).trim()
    dirty = execFileSync('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8' }).trim() !== '' ? ' + uncommitted changes in src/' : ''
  } catch {}
  let built = '?'
  for (const f of ['dist/full/dm.js', 'dist/bundle/dm.js']) {
    try { built = `${f} built ${fs.statSync(path.join(ROOT, f)).mtime.toISOString()}`; break } catch {}
  }
  return `code: ${commit}${dirty}; ${built}`
}

export function machineLine () {
  const cpus = os.cpus()
  const env = process.env.NODE_EXTRA_CA_CERTS === undefined
    ? ''
    : KEEP_ENV ? ', children keep NODE_EXTRA_CA_CERTS (BENCH_KEEP_ENV=1)' : ', NODE_EXTRA_CA_CERTS removed from children (BENCH_KEEP_ENV=1 keeps it)'
  return `${codeLine()}\nnode ${process.version}, ${cpus.length} x ${cpus[0]?.model ?? '?'}, ${Math.round(os.totalmem() / 1024 / 1024 / 1024)} GiB RAM, ${os.platform()} ${os.release()}, tmp ${os.tmpdir()}${env}`
}

/** CPU busy share of the whole machine over `ms` (from /proc/stat), e.g. other people's test runs. */
export async function machineBusy (ms = 1000) {
  const read = () => {
    const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
    const idle = f[3] + (f[4] ?? 0)
    return { idle, total: f.reduce((a, b) => a + b, 0) }
  }
  const a = read()
  await sleep(ms)
  const b = read()
  return b.total === a.total ? 0 : 1 - (b.idle - a.idle) / (b.total - a.total)
}

function machineTicks () {
  const f = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number)
  const idle = f[3] + (f[4] ?? 0)
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0) // user..steal; guest is already in user
  return { busy: total - idle, total }
}

/**
 * CPU ticks of this process, of its exited children (dm publish, a daemon
 * that was stopped: they count in its cutime/cstime once reaped) and of the
 * running `pids` (an array, or a function so daemons started later count).
 */
function ownTicks (pids) {
  let t = procStats(process.pid).ticksWithChildren
  for (const pid of typeof pids === 'function' ? pids() : pids) { try { t += procStats(pid).ticks } catch {} }
  return t
}

/**
 * Starts measuring; the returned function gives the share of the machine
 * (0..1) that processes other than ours used since. `pids`: our running
 * daemons, as an array or a function returning them (re-read at both ends).
 */
export function foreignMeter (pids) {
  const m0 = machineTicks()
  const o0 = ownTicks(pids)
  return () => {
    const m1 = machineTicks()
    const o1 = ownTicks(pids)
    const total = m1.total - m0.total
    return total <= 0 ? 0 : Math.max(0, (m1.busy - m0.busy) - (o1 - o0)) / total
  }
}

/**
 * Share of the machine's CPU capacity (0..1) used over `ms` by processes
 * other than this benchmark and `pids` (its daemons): other people's work.
 */
export async function foreignBusy (pids, ms = 500) {
  const share = foreignMeter(pids)
  await sleep(ms)
  return share()
}

/**
 * Waits (up to timeoutMs) until processes other than ours use less than
 * `maxShare` of the machine, so a timed run does not share it with, say, a
 * test suite. Returns the last measured share and how long it waited.
 */
export async function waitQuiet (pids, { maxShare = 0.15, timeoutMs = 120_000, sampleMs = 500 } = {}) {
  const t0 = Date.now()
  for (;;) {
    const share = await foreignBusy(pids, sampleMs)
    if (share < maxShare || Date.now() - t0 > timeoutMs) return { share, waitedMs: Date.now() - t0, quiet: share < maxShare }
  }
}

/** One line on how loaded the machine is before the benchmark starts anything. */
export async function loadLine () {
  const busy = await machineBusy(1000)
  const others = fs.readdirSync('/proc').filter(p => /^\d+$/.test(p) && Number(p) !== process.pid).filter(p => {
    try { return /^node\b|\/node\b/.test(fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0')[0]) } catch { return false }
  }).length
  return `machine before start: ${(busy * 100).toFixed(0)}% CPU busy over 1 s, load average ${os.loadavg().map(x => x.toFixed(2)).join(' ')}, ${others} other node process(es) running`
}

// ---------------------------------------------------------------- ports, processes, the local API

const handedOut = new Set()
/** A port the kernel picked (bind 0, read, close); never the same one twice in one run. */
export async function freePort () {
  for (;;) {
    const port = await new Promise((resolve, reject) => {
      const s = net.createServer()
      s.once('error', reject)
      s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)) })
    })
    if (!handedOut.has(port)) { handedOut.add(port); return port }
  }
}

/**
 * Runs `node args...` (or `command args...`, optionally behind a `prefix`
 * such as nsenter) to completion and times it from just before spawn() to
 * the child's exit. Output is collected; a timeout kills it.
 */
export async function runTimed (args, { cwd, timeoutMs = 60_000, env = CHILD_ENV, command = NODE, prefix = [] } = {}) {
  return await new Promise((resolve, reject) => {
    const t0 = now()
    const argv = [...prefix, command, ...args]
    const p = track(spawn(argv[0], argv.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] }))
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', d => { stdout += d })
    p.stderr.on('data', d => { stderr += d })
    const timer = setTimeout(() => { p.kill('SIGKILL'); reject(new Error(`timed out: ${argv.join(' ')}`)) }, timeoutMs)
    p.once('error', err => { clearTimeout(timer); reject(err) })
    p.once('exit', (code, signal) => {
      const t1 = now()
      clearTimeout(timer)
      p.once('close', () => resolve({ ms: t1 - t0, t0, t1, code: code ?? (signal !== null ? 128 : 1), stdout, stderr }))
    })
  })
}

/** Runs `node bin/dm ...` and fails on a non-zero exit. */
export async function dm (args, opts = {}) {
  const r = await runTimed([DM, ...args], opts)
  if (r.code !== 0) throw new Error(`dm ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`)
  return r
}

/** One HTTP request to the daemon's API over its Unix socket. */
export async function apiRequest (socketPath, method, route, body, timeoutMs = 30_000) {
  return await new Promise((resolve, reject) => {
    const headers = body !== undefined ? { 'content-type': 'application/octet-stream', 'content-length': body.length } : {}
    const req = http.request({ socketPath, method, path: route, headers, agent: false }, res => {
      const parts = []
      res.on('data', c => parts.push(c))
      res.on('end', () => {
        const text = Buffer.concat(parts).toString('utf8')
        let json
        try { json = JSON.parse(text) } catch { reject(new Error(`bad answer from ${route}: ${text.slice(0, 200)}`)); return }
        if (res.statusCode >= 400) reject(new Error(`${method} ${route}: HTTP ${res.statusCode}: ${json.code ?? ''} ${json.reason ?? text.slice(0, 200)}`))
        else resolve(json)
      })
      res.on('error', reject)
    })
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${route}: no answer within ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end(body)
  })
}

/** True when something accepts a connection on the Unix socket. */
export async function socketAnswers (socketPath) {
  return await new Promise(resolve => {
    const s = net.connect(socketPath)
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => { s.destroy(); resolve(false) })
  })
}

/** Polls until check() is truthy; check may be async. */
export async function waitFor (what, check, { timeoutMs = 30_000, pollMs = 20 } = {}) {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await check()
    if (v) return v
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(pollMs)
  }
}

/** /proc/PID/status VmRSS and VmHWM in bytes, and utime+stime in clock ticks. */
export function procStats (pid) {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (k) => Number((status.match(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm')) ?? [])[1] ?? NaN) * 1024
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8')
  // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
  const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const utime = Number(rest[11])
  const stime = Number(rest[12])
  const children = Number(rest[13]) + Number(rest[14]) // cutime + cstime: exited, waited-for children
  return { rss: kb('VmRSS'), hwm: kb('VmHWM'), utime, stime, ticks: utime + stime, ticksWithChildren: utime + stime + children }
}

/**
 * Where a process's resident memory is, in bytes, from /proc/PID/smaps:
 * rss, pss (its proportional share of pages shared with others), shared and
 * private pages, and `binary`: the resident pages mapped from the executable
 * `exe` (e.g. the node binary), `binaryShared` of them shared with another
 * process (e.g. the other daemons running the same binary).
 */
export function memoryBreakdown (pid, exe) {
  const text = fs.readFileSync(`/proc/${pid}/smaps`, 'utf8')
  const out = { rss: 0, pss: 0, shared: 0, private: 0, binary: 0, binaryShared: 0 }
  let inBinary = false
  for (const line of text.split('\n')) {
    const m = line.match(/^(\w+):\s+(\d+) kB$/)
    if (m === null) {
      // A mapping header: "start-end perms offset dev inode   pathname".
      if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inBinary = line.trim().split(/\s+/).slice(5).join(' ') === exe
      continue
    }
    const bytes = Number(m[2]) * 1024
    switch (m[1]) {
      case 'Rss': out.rss += bytes; if (inBinary) out.binary += bytes; break
      case 'Pss': out.pss += bytes; break
      case 'Shared_Clean': case 'Shared_Dirty': out.shared += bytes; if (inBinary) out.binaryShared += bytes; break
      case 'Private_Clean': case 'Private_Dirty': out.private += bytes; break
    }
  }
  return out
}
/**
 * Where ICU's data sits in the executable `exe` (file offset and size), from
 * its `icudt*_dat` symbol and the LOAD segment holding it (binutils' readelf);
 * undefined when readelf or the symbol is missing.
 */
export function icuDataRange (exe) {
  try {
    const sym = execFileSync('readelf', ['-sW', exe], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 }).split('\n').map(l => l.trim().split(/\s+/)).find(f => /^icudt\d+_dat$/.test(f[7] ?? ''))
    if (sym === undefined) return undefined
    const vaddr = Number(`0x${sym[1]}`)
    const size = Number(sym[2])
    for (const l of execFileSync('readelf', ['-lW', exe], { encoding: 'utf8' }).split('\n')) {
      const f = l.trim().split(/\s+/)
      if (f[0] !== 'LOAD') continue
      const [offset, segVaddr, , fileSize] = f.slice(1, 5).map(Number)
      if (vaddr >= segVaddr && vaddr < segVaddr + fileSize) return { offset: offset + vaddr - segVaddr, size }
    }
  } catch {}
  return undefined
}

/**
 * Pages of the executable `exe` that process `pid` has resident (bytes), and
 * how many of them lie in `range` (a file offset and size, e.g. ICU's data),
 * from the present bit of /proc/PID/pagemap.
 */
export function binaryPages (pid, exe, range) {
  const page = 4096
  const out = { resident: 0, inRange: 0 }
  const pagemap = fs.openSync(`/proc/${pid}/pagemap`, 'r')
  try {
    for (const line of fs.readFileSync(`/proc/${pid}/maps`, 'utf8').split('\n')) {
      const f = line.trim().split(/\s+/)
      if (f.slice(5).join(' ') !== exe) continue
      const [start, end] = f[0].split('-').map(h => Number(`0x${h}`))
      const fileOffset = Number(`0x${f[2]}`)
      const entries = Buffer.alloc((end - start) / page * 8)
      fs.readSync(pagemap, entries, 0, entries.length, start / page * 8)
      for (let i = 0; i < entries.length / 8; i++) {
        if ((entries[i * 8 + 7] & 0x80) === 0) continue
        out.resident += page
        const at = fileOffset + i * page
        if (range !== undefined && at >= range.offset && at < range.offset + range.size) out.inRange += page
      }
    }
  } finally {
    fs.closeSync(pagemap)
  }
  return out
}

export const CLK_TCK = 100 // getconf CLK_TCK on Linux (USER_HZ is 100 on every mainstream kernel)

// ---------------------------------------------------------------- signing keys

/** A fresh Ed25519 key: PEM file for `dm publish --key`, KeyObject and raw public key for direct API use. */
export function newSigningKey (dir, name = 'publisher') {
  const { privateKey } = generateKeyPairSync('ed25519')
  const file = path.join(dir, `${name}.pem`)
  fs.writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 })
  const jwk = createPublicKey(privateKey).export({ format: 'jwk' })
  const publicKey = new Uint8Array(Buffer.from(jwk.x, 'base64url'))
  return { privateKey, publicKey, path: file, base64: Buffer.from(publicKey).toString('base64') }
}

// ---------------------------------------------------------------- daemons

/**
 * Peer id of a state dir, its identity.key created as src/net/identity.ts
 * does (protobuf-encoded Ed25519 key, mode 0600); dist/ is one bundle now,
 * so the libp2p packages are used directly.
 */
async function peerIdOf (stateDir) {
  const [{ generateKeyPair, privateKeyToProtobuf }, { peerIdFromPrivateKey }] = await Promise.all([import('@libp2p/crypto/keys'), import('@libp2p/peer-id')])
  const privateKey = await generateKeyPair('Ed25519')
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o750 })
  fs.writeFileSync(path.join(stateDir, 'identity.key'), privateKeyToProtobuf(privateKey), { mode: 0o600 })
  return peerIdFromPrivateKey(privateKey).toString()
}

export class DaemonNode {
  constructor (cluster, index, port) {
    this.cluster = cluster
    this.index = index
    this.name = `n${index}`
    this.port = port
    this.dir = path.join(cluster.root, this.name)
    fs.mkdirSync(this.dir, { recursive: true })
    this.configPath = path.join(this.dir, 'dm.toml')
    this.socket = path.join(this.dir, 'api.sock')
    this.stateDir = path.join(this.dir, 'state')
    this.filesDir = path.join(this.stateDir, 'files')
    this.peerId = ''
    this.bootstrap = []
    this.proc = undefined
    this.output = ''
    this.readyAt = undefined
    this.startedAt = undefined
  }

  get host () { return this.cluster.opts.hostOf(this.index) }
  /** Command prefix that runs a process in this node's network (nsenter into its namespace); [] on the host. */
  get prefix () { return this.cluster.opts.prefixOf(this.index) }
  get addr () { return `/ip4/${this.host}/tcp/${this.port}/p2p/${this.peerId}` }
  get pid () { return this.proc?.pid }
  get running () { return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null }

  writeConfig () {
    const c = this.cluster.opts
    const files = this.cluster.names.map(n => `${JSON.stringify(n)} = [${JSON.stringify(this.cluster.key.base64)}]`).join('\n')
    fs.writeFileSync(this.configPath, [
      'state_dir = "state"',
      `log_level = ${JSON.stringify(c.logLevel)}`,
      '[network]',
      `id = ${JSON.stringify(c.networkId)}`,
      `listen = ["/ip4/${this.host}/tcp/${this.port}"]`,
      `bootstrap = ${JSON.stringify(this.bootstrap)}`,
      c.pushPullIntervalMs !== undefined ? `push_pull_interval_ms = ${c.pushPullIntervalMs}` : '',
      c.networkExtra ?? '',
      '[api]',
      'socket = "api.sock"',
      '[files]',
      files,
      ''
    ].join('\n'))
  }

  /**
   * Spawns `node [nodeArgs] bin/dm daemon --config ...` (or another `script`,
   * e.g. the unbundled dist/cli/entry.js, whose profiles have readable names)
   * and waits until it is
   * ready: its stdout says "daemon ready" (log level info or lower), or, at
   * log_level warn, its API socket accepts a connection, which the daemon
   * opens right before it logs "daemon ready". Polls every `pollMs`.
   * readyAt is the performance.now() at which readiness was observed.
   */
  async start ({ nodeArgs = [], script = DM, pollMs = 2, timeoutMs = 60_000, wait = true } = {}) {
    if (this.running) throw new Error(`${this.name} is already running`)
    this.output = ''
    this.readyAt = undefined
    this.startedAt = now()
    const argv = [...this.prefix, NODE, ...nodeArgs, script, 'daemon', '--config', this.configPath]
    const proc = track(spawn(argv[0], argv.slice(1), { cwd: this.dir, env: CHILD_ENV, stdio: ['ignore', 'pipe', 'pipe'] }))
    this.proc = proc
    const cap = this.cluster.opts.outputCap
    const keep = (d) => { this.output = (this.output + d).slice(-cap) }
    proc.stdout.on('data', d => {
      keep(d)
      if (this.readyAt === undefined && this.output.includes('daemon ready')) this.readyAt = now()
    })
    proc.stderr.on('data', keep)
    this.exited = new Promise(resolve => proc.once('exit', () => resolve()))
    if (wait) await this.waitReady({ pollMs, timeoutMs })
  }

  async waitReady ({ pollMs = 2, timeoutMs = 60_000 } = {}) {
    const end = Date.now() + timeoutMs
    while (this.readyAt === undefined) {
      if (!this.running) throw new Error(`${this.name} exited (${this.proc?.exitCode ?? this.proc?.signalCode}):\n${this.output}`)
      if (Date.now() > end) throw new Error(`${this.name} not ready within ${timeoutMs} ms:\n${this.output}`)
      if (fs.existsSync(this.socket) && await socketAnswers(this.socket)) {
        if (this.readyAt === undefined) this.readyAt = now()
        break
      }
      await sleep(pollMs)
    }
    return this.readyAt
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop ({ hard = false, graceMs = 10_000 } = {}) {
    if (!this.running) return
    this.proc.kill(hard ? 'SIGKILL' : 'SIGTERM')
    const killed = await missed(this.exited, graceMs)
    if (killed) { this.proc.kill('SIGKILL'); await this.exited }
  }

  async status () { return await apiRequest(this.socket, 'GET', '/v1/status') }
  async connectedPeers () { return (await this.status()).peersConnected }

  /** The content of files/<name>, or undefined. */
  file (name) {
    try { return fs.readFileSync(path.join(this.filesDir, name)) } catch { return undefined }
  }
}

/**
 * N daemons in one temp dir, one signing key, one [files] allowlist (`names`).
 * Bootstrap topology as test/helpers/cluster.ts: node 0 has no bootstrap,
 * every other node bootstraps from node 0.
 */
export class Cluster {
  /**
   * hostOf(i): the address daemon i listens on (127.0.0.1 unless it has a
   * network namespace of its own); prefixOf(i): the command prefix that runs
   * a process in its network (nsenter ...), [] on the host.
   */
  constructor ({ names, prefix = 'dm-bench-', logLevel = 'warn', networkId = 'bench-net', pushPullIntervalMs, networkExtra, outputCap = 65536, hostOf = () => '127.0.0.1', prefixOf = () => [] } = {}) {
    this.root = tempDir(prefix)
    this.opts = { logLevel, networkId, pushPullIntervalMs, networkExtra, outputCap, hostOf, prefixOf }
    this.key = newSigningKey(this.root)
    this.names = names
    this.nodes = []
  }

  /**
   * Creates n nodes (dirs, identities, configs); starts nothing. Each node
   * after the first bootstraps from `bootstrap(index, nodesSoFar)`: by
   * default node 0 only (the star of test/helpers/cluster.ts).
   */
  async create (n, { bootstrap = (_i, nodes) => [nodes[0]] } = {}) {
    for (let i = 0; i < n; i++) {
      const node = new DaemonNode(this, this.nodes.length, await freePort())
      node.peerId = await peerIdOf(node.stateDir)
      if (node.index > 0) node.bootstrap = bootstrap(node.index, this.nodes).map(b => b.addr)
      node.writeConfig()
      this.nodes.push(node)
    }
    return this.nodes
  }

  /**
   * Starts node 0, waits for it, then the others with at most `concurrency`
   * starting at once (each waits for readiness before the next slot frees),
   * so a large cluster does not start 100 node processes at the same instant.
   */
  async startAll ({ concurrency = 4, pollMs = 20, timeoutMs = 120_000, progress, nodeArgs = [] } = {}) {
    const [first, ...rest] = this.nodes
    await first.start({ pollMs, timeoutMs, nodeArgs })
    let next = 0
    let started = 1
    const worker = async () => {
      while (next < rest.length) {
        const node = rest[next++]
        await node.start({ pollMs, timeoutMs, nodeArgs })
        progress?.(++started, this.nodes.length)
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, rest.length) }, worker))
  }

  /**
   * Waits until every running node reports at least `min` connected peers.
   * Only nodes not yet seen connected are asked each round (a status call
   * costs the daemon CPU too); then one full pass must confirm all at once.
   */
  async waitConnected ({ min = 1, timeoutMs = 120_000, pollMs = 250, progress, stallMs = Infinity } = {}) {
    const nodes = this.nodes.filter(n => n.running)
    const end = Date.now() + timeoutMs
    let pending = nodes
    let lastChange = Date.now()
    let lastPending = pending.length
    for (;;) {
      const counts = await Promise.all(pending.map(n => n.connectedPeers().catch(() => 0)))
      pending = pending.filter((_, i) => counts[i] < min)
      if (pending.length === 0) {
        const all = await Promise.all(nodes.map(n => n.connectedPeers().catch(() => 0)))
        pending = nodes.filter((_, i) => all[i] < min)
        if (pending.length === 0) return
      }
      progress?.(nodes.length - pending.length, nodes.length, pending)
      if (pending.length !== lastPending) { lastPending = pending.length; lastChange = Date.now() }
      const stalled = Date.now() - lastChange > stallMs
      if (Date.now() > end || stalled) {
        throw new Error(`${stalled ? `no progress for ${stallMs} ms` : `timed out after ${timeoutMs} ms`} waiting for every node to have >= ${min} connected peer(s); ` +
          `${pending.length} still short: ${pending.map(n => n.name).join(' ')}\n${await this.diagnose(pending)}`)
      }
      await sleep(pollMs)
    }
  }

  /** A few lines on why `pending` nodes have no peers: what node 0 and they report. */
  async diagnose (pending) {
    const lines = []
    const show = async (n) => {
      try {
        const st = await n.status()
        const peers = await apiRequest(n.socket, 'GET', '/v1/peers')
        const failing = peers.filter(p => !p.connected && p.failures > 0)
        lines.push(`  ${n.name}: ${st.peersConnected} connected, ${st.peersKnown} known` +
          (failing.length > 0 ? `, failing dials: ${failing.slice(0, 3).map(p => `${this.nodes.find(x => x.peerId === p.id)?.name ?? p.id.slice(-6)} (${p.failures} failures)`).join(', ')}` : ''))
      } catch (err) { lines.push(`  ${n.name}: status failed: ${err.message}`) }
    }
    await show(this.nodes[0])
    for (const n of pending.slice(0, 3)) await show(n)
    return lines.join('\n')
  }

  /** Pids of the running daemons. */
  pids () { return this.nodes.filter(n => n.running).map(n => n.pid) }

  async peerCounts () {
    return await Promise.all(this.nodes.filter(n => n.running).map(n => n.connectedPeers().catch(() => -1)))
  }

  /**
   * The shape of the mesh, from every running daemon's connected peers
   * (GET /v1/peers): the degree histogram, and the diameter (longest
   * shortest path, in hops, by breadth-first search from every daemon).
   * An edge counts if either end reports it; a daemon nobody reaches makes
   * the graph disconnected (diameter Infinity).
   */
  async meshShape () {
    const running = this.nodes.filter(n => n.running)
    const adj = new Map(running.map(n => [n.peerId, new Set()]))
    await Promise.all(running.map(async n => {
      const peers = await apiRequest(n.socket, 'GET', '/v1/peers').catch(() => [])
      for (const p of peers) {
        if (!p.connected || !adj.has(p.id)) continue
        adj.get(n.peerId).add(p.id)
        adj.get(p.id).add(n.peerId)
      }
    }))
    const histogram = new Map()
    for (const s of adj.values()) histogram.set(s.size, (histogram.get(s.size) ?? 0) + 1)
    let diameter = 0
    for (const start of adj.keys()) {
      const dist = new Map([[start, 0]])
      const queue = [start]
      for (let i = 0; i < queue.length; i++) {
        for (const next of adj.get(queue[i])) {
          if (!dist.has(next)) { dist.set(next, dist.get(queue[i]) + 1); queue.push(next) }
        }
      }
      diameter = dist.size < adj.size ? Infinity : Math.max(diameter, ...dist.values())
      if (diameter === Infinity) break
    }
    return { histogram: [...histogram].sort((a, b) => a[0] - b[0]), diameter }
  }

  async stop () {
    await Promise.all(this.nodes.map(n => n.stop().catch(() => {})))
    removeTempDir(this.root)
  }
}

/**
 * Watches the files/ directories of `nodes` for `name` holding exactly
 * `expected` (a Buffer). Each node's arrival time (performance.now()) is
 * recorded the first time its file matches. Detection: fs.watch (inotify) on
 * each files/ dir, re-reading the file on every event; plus a fallback poll
 * of the nodes still missing every `pollMs` in case an event is missed
 * (a stat; the content is read only when the file changed).
 * `via` counts how each arrival was seen.
 */
export function watchArrivals (nodes, name, expected, { pollMs = 2 } = {}) {
  const arrivals = new Map()
  const via = { watch: 0, poll: 0, already: 0 }
  let resolveAll
  const all = new Promise(resolve => { resolveAll = resolve })
  // Files are renamed into place, so a new version is a new inode: the content
  // is only read (and compared) when inode, size or mtime changed since the last look.
  const seen = new Map()
  const target = (node) => path.join(node.filesDir, name)
  const check = (node, how) => {
    if (arrivals.has(node)) return
    const t = now()
    let st
    try { st = fs.statSync(target(node)) } catch { return }
    const key = `${st.ino}:${st.size}:${st.mtimeMs}`
    if (seen.get(node) === key || st.size !== expected.length) { seen.set(node, key); return }
    seen.set(node, key)
    const got = node.file(name)
    if (got !== undefined && got.equals(expected)) {
      arrivals.set(node, t)
      via[how]++
      if (arrivals.size === nodes.length) resolveAll()
    }
  }
  const watchers = []
  for (const node of nodes) {
    fs.mkdirSync(node.filesDir, { recursive: true })
    const w = fs.watch(node.filesDir, (_event, file) => {
      if (file === null || file === name) check(node, 'watch')
    })
    watchers.push(w)
  }
  for (const node of nodes) check(node, 'already')
  const timer = setInterval(() => { for (const node of nodes) check(node, 'poll') }, pollMs)
  return {
    arrivals,
    via,
    all,
    close () { clearInterval(timer); for (const w of watchers) w.close() }
  }
}
