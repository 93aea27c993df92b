// A network with latency and loss for the benchmarks, without netem (this
// kernel has no sch_netem, nor nftables' queue to userspace): every node gets
// a network namespace of its own with one interface, eth0, a TAP device; a
// bridge in a switch namespace of its own joins their twins; and
// bench/netem-relay.py copies the frames between each pair, delaying and
// dropping those a node sends (see that file). Nothing touches the host's
// interfaces. Needs root (it is: the benchmarks' machines run as root),
// iproute2, nsenter (util-linux) and python3.
import { execFileSync, spawn } from 'node:child_process'
import path from 'node:path'
import { ROOT, onCleanup, track } from './lib.mjs'

const RELAY = path.join(ROOT, 'bench', 'netem-relay.py')

export class LossyNet {
  /** n nodes, each frame a node sends delayed delayMs ± jitterMs (uniform) and dropped with probability loss. */
  constructor ({ n, delayMs = 10, jitterMs = 3, loss = 0.01 }) {
    if (n > 65000) throw new Error('at most 65000 nodes')
    this.n = n
    this.delayMs = delayMs
    this.jitterMs = jitterMs
    this.loss = loss
    const tag = `dmb${process.pid}`
    this.switchNs = `${tag}sw`
    this.nodeNs = Array.from({ length: n }, (_, i) => `${tag}n${i}`)
    this.relay = undefined
    this.created = []
    this.relayReport = ''
  }

  get description () {
    return `each node in its own network namespace (TAP eth0) on a bridge in a namespace of its own; every frame a node sends is delayed ${this.delayMs} ± ${this.jitterMs} ms (uniform, in order) and dropped with probability ${this.loss} by bench/netem-relay.py (userspace; the kernel has no netem)`
  }

  /** Node i's address: 10.231.0.0/16, inside the benchmark's own namespaces only. */
  hostOf (i) { return `10.231.${(i + 1) >> 8}.${(i + 1) & 255}` }
  /** The command prefix that runs a process in node i's namespace. */
  prefixOf (i) { return ['nsenter', `--net=/run/netns/${this.nodeNs[i]}`, '--'] }

  async up () {
    const ip = (...args) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
    onCleanup(() => this.downSync())
    for (const ns of [this.switchNs, ...this.nodeNs]) { ip('netns', 'add', ns); this.created.push(ns) }
    ip('-n', this.switchNs, 'link', 'set', 'lo', 'up')
    ip('-n', this.switchNs, 'link', 'add', 'br0', 'type', 'bridge')
    ip('-n', this.switchNs, 'link', 'set', 'br0', 'up')
    this.nodeNs.forEach((ns, i) => {
      ip('-n', ns, 'link', 'set', 'lo', 'up')
      ip('-n', ns, 'tuntap', 'add', 'dev', 'eth0', 'mode', 'tap')
      ip('-n', ns, 'addr', 'add', `${this.hostOf(i)}/16`, 'dev', 'eth0')
      ip('-n', ns, 'link', 'set', 'eth0', 'up')
      ip('-n', this.switchNs, 'tuntap', 'add', 'dev', `p${i}`, 'mode', 'tap')
      ip('-n', this.switchNs, 'link', 'set', `p${i}`, 'master', 'br0', 'up')
    })
    const links = this.nodeNs.map((ns, i) => `/run/netns/${ns}:eth0:/run/netns/${this.switchNs}:p${i}`)
    this.relay = track(spawn('python3', [RELAY, '--delay-ms', String(this.delayMs), '--jitter-ms', String(this.jitterMs), '--loss', String(this.loss), ...links], { stdio: ['ignore', 'pipe', 'inherit'] }))
    this.relayExited = new Promise(resolve => this.relay.once('exit', resolve))
    await new Promise((resolve, reject) => {
      this.relay.stdout.on('data', d => {
        this.relayReport += d
        if (this.relayReport.includes('ready')) resolve()
      })
      this.relay.once('exit', code => reject(new Error(`netem-relay.py exited ${code} before it was ready`)))
    })
  }

  /** Stops the relay (returns its count of frames carried and dropped) and deletes the namespaces. */
  async down () {
    if (this.relay !== undefined && this.relay.exitCode === null) {
      this.relay.kill('SIGTERM')
      await this.relayExited
    }
    this.downSync()
    return (this.relayReport.match(/uplink frames \d+ dropped \d+/) ?? [''])[0]
  }

  downSync () {
    if (this.relay !== undefined && this.relay.exitCode === null) { try { this.relay.kill('SIGKILL') } catch {} }
    for (const ns of this.created.splice(0)) {
      try { execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' }) } catch {}
    }
  }
}
