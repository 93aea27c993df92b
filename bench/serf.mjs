// HashiCorp Serf agents (Debian's `serf`, which reports 0.8.2-dev) as a same-run baseline for
// propagation.mjs: N agents joined the way the daemons bootstrap, a user event
// timed from just before `serf event` until every agent's event handler has
// written the payload to a file the benchmark watches, as it watches dm's
// files/. Install: scripts/install-system-deps.sh (Debian package `serf`).
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { CHILD_ENV, freePort, missed, runTimed, sleep, track } from './lib.mjs'

export const EVENT = 'prop'
/** The file each agent's handler writes the event's payload to, in its events/ dir. */
export const EVENT_FILE = 'ev.bin'
/**
 * Serf refuses user events whose encoded message (name, payload, Lamport
 * time, flags) is over 512 bytes, so the payload is 400 bytes of hex.
 */
export const SERF_PAYLOAD_BYTES = 400

export function serfBinary () {
  try { return fs.realpathSync(execFileSync('sh', ['-c', 'command -v serf'], { encoding: 'utf8' }).trim()) } catch {
    throw new Error('serf is not installed: run scripts/install-system-deps.sh (Debian package serf)')
  }
}

export function serfVersion () {
  return execFileSync(serfBinary(), ['version'], { encoding: 'utf8' }).split('\n')[0].trim()
}

export class SerfAgent {
  constructor (fleet, index, { host, bindPort, rpcPort }) {
    this.fleet = fleet
    this.index = index
    this.name = `s${index}`
    this.host = host
    this.bindPort = bindPort
    this.rpcPort = rpcPort
    this.dir = path.join(fleet.root, this.name)
    this.filesDir = path.join(this.dir, 'events')
    fs.mkdirSync(this.filesDir, { recursive: true })
    this.join = []
    this.proc = undefined
    this.output = ''
  }

  get addr () { return `${this.host}:${this.bindPort}` }
  get rpcAddr () { return `127.0.0.1:${this.rpcPort}` }
  get prefix () { return this.fleet.prefixOf(this.index) }
  get pid () { return this.proc?.pid }
  get running () { return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null }

  file (name) {
    try { return fs.readFileSync(path.join(this.filesDir, name)) } catch { return undefined }
  }

  /** Runs `serf COMMAND -rpc-addr=... ARGS` against this agent, in its network. */
  async cli ([command, ...args], opts = {}) {
    return await runTimed([command, `-rpc-addr=${this.rpcAddr}`, ...args], { command: this.fleet.serf, prefix: this.prefix, ...opts })
  }

  async start ({ timeoutMs = 60_000 } = {}) {
    // The handler is run by `sh -c` with the payload on stdin; shell built-ins
    // only, so an arrival costs one sh process. printf writes the file whole.
    const handler = `user:${EVENT}=read -r p; printf %s "$p" > ${path.join(this.filesDir, EVENT_FILE)}`
    const argv = [...this.prefix, this.fleet.serf, 'agent', `-node=${this.name}`, `-bind=${this.addr}`, `-rpc-addr=${this.rpcAddr}`,
      '-log-level=warn', `-event-handler=${handler}`, ...this.join.map(j => `-join=${j}`)]
    this.output = ''
    this.proc = track(spawn(argv[0], argv.slice(1), { cwd: this.dir, env: CHILD_ENV, stdio: ['ignore', 'pipe', 'pipe'] }))
    const keep = (d) => { this.output = (this.output + d).slice(-16384) }
    this.proc.stdout.on('data', keep)
    this.proc.stderr.on('data', keep)
    this.exited = new Promise(resolve => this.proc.once('exit', () => resolve()))
    // Ready when its RPC answers (it has joined by then: -join failing is fatal).
    const end = Date.now() + timeoutMs
    for (;;) {
      if (!this.running) throw new Error(`serf agent ${this.name} exited (${this.proc.exitCode ?? this.proc.signalCode}):\n${this.output}`)
      if ((await this.cli(['members'], { timeoutMs: 5000 }).catch(() => ({ code: 1 }))).code === 0) return
      if (Date.now() > end) throw new Error(`serf agent ${this.name} not answering within ${timeoutMs} ms:\n${this.output}`)
      await sleep(50)
    }
  }

  async aliveMembers () {
    const r = await this.cli(['members', '-status=alive'], { timeoutMs: 10_000 })
    return r.code === 0 ? r.stdout.split('\n').filter(l => l.trim() !== '').length : 0
  }

  async stop () {
    if (!this.running) return
    this.proc.kill('SIGTERM')
    const late = await missed(this.exited, 5000)
    if (late) { this.proc.kill('SIGKILL'); await this.exited }
  }
}

/**
 * N serf agents in `root`. `hostOf(i)` / `prefixOf(i)` place agent i (its
 * address, and the command prefix that runs a process in its network) as
 * the daemons are placed. `joinOf(i, agents)`: whom agent i joins at start
 * (by default agent 0, as every daemon bootstraps from n0).
 */
export class SerfFleet {
  constructor ({ root, hostOf = () => '127.0.0.1', prefixOf = () => [], fixedPorts = false }) {
    this.root = root
    this.hostOf = hostOf
    this.prefixOf = prefixOf
    this.fixedPorts = fixedPorts
    this.serf = serfBinary()
    this.agents = []
  }

  async create (n, { joinOf = (_i, agents) => [agents[0]] } = {}) {
    for (let i = 0; i < n; i++) {
      // In namespaces of their own, every agent can use serf's usual ports.
      const ports = this.fixedPorts ? { bindPort: 7946, rpcPort: 7373 } : { bindPort: await freePort(), rpcPort: await freePort() }
      const a = new SerfAgent(this, i, { host: this.hostOf(i), ...ports })
      if (i > 0) a.join = joinOf(i, this.agents).map(x => x.addr)
      this.agents.push(a)
    }
    return this.agents
  }

  /** Agent 0 first, then the others, at most `concurrency` starting at once. */
  async startAll ({ concurrency = 4, progress } = {}) {
    const [first, ...rest] = this.agents
    await first.start()
    let next = 0
    let started = 1
    const worker = async () => {
      while (next < rest.length) {
        const a = rest[next++]
        await a.start()
        progress?.(++started, this.agents.length)
      }
    }
    await Promise.all(Array.from({ length: Math.min(concurrency, rest.length) }, worker))
  }

  /** Waits until every agent sees all N agents alive (asking only those not yet seen complete). */
  async waitMembers ({ timeoutMs = 300_000, pollMs = 500, progress } = {}) {
    const n = this.agents.length
    const end = Date.now() + timeoutMs
    let pending = this.agents
    for (;;) {
      const counts = []
      for (const a of pending) counts.push(await a.aliveMembers())
      pending = pending.filter((_, i) => counts[i] < n)
      progress?.(n - pending.length, n, pending)
      if (pending.length === 0) return
      if (Date.now() > end) throw new Error(`serf: ${pending.length} agents still see fewer than ${n} members after ${timeoutMs} ms: ${pending.slice(0, 8).map(a => a.name).join(' ')}`)
      await sleep(pollMs)
    }
  }

  /** `serf event -coalesce=false prop PAYLOAD` on agent `from`, timed from just before its spawn. */
  async event (from, payload) {
    const r = await this.agents[from].cli(['event', '-coalesce=false', EVENT, payload])
    if (r.code !== 0) throw new Error(`serf event exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`)
    return r
  }

  pids () { return this.agents.filter(a => a.running).map(a => a.pid) }

  async stop () { await Promise.all(this.agents.map(a => a.stop().catch(() => {}))) }
}
