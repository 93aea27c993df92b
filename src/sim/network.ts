import { DmError } from '../errors.js'
import { LONG_LIVED_PROTOCOLS, MAX_FRAME_BYTES, MAX_FRAME_BYTES_BY_PROTOCOL } from '../protocol/messages.js'
import type { Channel, ChannelHandler, Transport } from '../sync/transport.js'
import type { Scheduler } from './scheduler.js'

/*
 * The simulated network: the sync Transport over virtual time. A connection
 * is a pair of nodes; channels (libp2p streams) ride on it. Every frame is a
 * scheduled event, delivered after the link's one-way latency plus jitter,
 * in order per direction of a connection (streams share one TCP connection,
 * so a late frame holds up the ones behind it). Loss is TCP's: a lost frame
 * is sent again after a retransmission time-out, it is never dropped.
 * Opening a stream costs a round trip (multistream-select, as libp2p's
 * default `negotiateFully`). A dropped connection aborts its streams.
 */

export interface LinkModel {
  /** One-way latency of every link, ms. */
  latencyMs: number
  /** Uniform jitter, ± ms, per frame. */
  jitterMs: number
  /** Probability that a frame is lost on the wire and retransmitted. */
  loss: number
  /** Retransmission time-out (Linux's minimum RTO is 200 ms); doubles per repeated loss. */
  rtoMs: number
}

/**
 * CPU per message on the receiving node, off by default. A node handles one
 * message at a time; with `cores`, all nodes also share that many cores (N
 * daemons on one machine), first come first served.
 */
export interface CpuModel {
  frameMs: number
  streamMs: number
  cores: number | undefined
}

export interface Traffic {
  frames: number
  bytes: number
  streams: number
}

interface Link {
  a: string
  b: string
  open: boolean
  /** Arrival time of the last frame scheduled in each direction (FIFO per direction). */
  lastArrival: Map<string, number>
  channels: Set<SimChannel>
}

const linkKey = (a: string, b: string): string => a < b ? `${a}|${b}` : `${b}|${a}`

class LinkError extends Error {
  readonly code = 'ERR_SIM_LINK'
  constructor (message: string) { super(message); this.name = 'LinkError' }
}

/** One end of a stream. Frames arrive in `inbox`; undefined marks the peer's end. */
class SimChannel implements Channel {
  private readonly inbox: Array<Uint8Array | undefined> = []
  private waiter: { resolve: (f: Uint8Array | undefined) => void, reject: (e: Error) => void, cancel: () => void } | undefined
  private failed: Error | undefined
  private ended = false
  private closedOurSide = false
  remote!: SimChannel
  /** Called once if the channel fails (a pending open rejects with it). */
  onFail: (err: Error) => void = () => {}

  constructor (
    readonly self: string,
    readonly peer: string,
    readonly protocol: string,
    private readonly net: SimNetwork,
    private readonly link: Link,
    private readonly maxFrameBytes: number
  ) {}

  /** A frame (or the end, as undefined) has arrived from the peer. */
  deliver (frame: Uint8Array | undefined): void {
    if (this.failed !== undefined || this.ended) return
    if (frame === undefined) this.ended = true
    else if (frame.length > this.maxFrameBytes) { this.fail(new DmError('ERR_DECODE', 'frame above the limit')); return }
    const w = this.waiter
    if (w !== undefined) { this.waiter = undefined; w.cancel(); w.resolve(frame) } else this.inbox.push(frame)
  }

  fail (err: Error): void {
    if (this.failed !== undefined) return
    this.failed = err
    this.link.channels.delete(this)
    this.onFail(err)
    const w = this.waiter
    if (w !== undefined) { this.waiter = undefined; w.cancel(); w.reject(err) }
  }

  async send (frame: Uint8Array): Promise<void> {
    if (this.failed !== undefined) throw this.failed
    if (this.closedOurSide) throw new LinkError('stream closed for writing')
    this.net.transmit(this.link, this.self, this.peer, this.protocol, frame.length, () => this.remote.deliver(frame))
  }

  async read (): Promise<Uint8Array | undefined> {
    if (this.inbox.length > 0) return this.inbox.shift()
    if (this.failed !== undefined) throw this.failed
    if (this.ended) return undefined
    return await new Promise((resolve, reject) => {
      // As the libp2p channel: a long-lived stream (push) may idle between frames; on
      // any other a peer gets frameTimeoutMs to deliver a frame (here frames arrive whole).
      if (LONG_LIVED_PROTOCOLS.has(this.protocol)) { this.waiter = { resolve, reject, cancel: () => {} }; return }
      const cancel = this.net.scheduler.after(this.net.frameTimeoutMs, () => {
        this.waiter = undefined
        const err = new DmError('ERR_TIMEOUT', `no complete frame within ${this.net.frameTimeoutMs} ms`)
        this.abort(err)
        reject(err)
      })
      this.waiter = { resolve, reject, cancel }
    })
  }

  async close (): Promise<void> {
    if (!this.closedOurSide) {
      this.closedOurSide = true
      if (this.failed === undefined) this.net.transmit(this.link, this.self, this.peer, this.protocol, 0, () => this.remote.deliver(undefined))
    }
    // As the libp2p channel: wait for the peer's end; data after it is a violation.
    if (await this.read() !== undefined) {
      const err = new DmError('ERR_DECODE', 'peer sent data after the last message')
      this.abort(err)
      throw err
    }
    this.link.channels.delete(this)
  }

  abort (err: Error): void {
    if (this.failed !== undefined) return
    this.fail(err)
    this.net.transmit(this.link, this.self, this.peer, this.protocol, 0, () => this.remote.fail(new LinkError('stream reset by peer')))
  }
}

export class SimNetwork {
  private readonly handlers = new Map<string, Map<string, ChannelHandler>>()
  private readonly links = new Map<string, Link>()
  private readonly adjacency = new Map<string, Set<string>>()
  private readonly cpuFree = new Map<string, number>()
  private readonly peerListeners = new Map<string, Array<(peer: string, connected: boolean) => void>>()
  private readonly coreFree: number[]
  /** Traffic sent, per node, since the start. */
  readonly sent = new Map<string, Traffic>()
  /** Traffic sent by all nodes, per protocol, since the start. */
  readonly byProtocol = new Map<string, Traffic>()

  constructor (
    readonly scheduler: Scheduler,
    private readonly random: () => number,
    private readonly model: LinkModel,
    private readonly cpu: CpuModel | undefined,
    readonly frameTimeoutMs: number
  ) {
    this.coreFree = new Array(cpu?.cores ?? 0).fill(0)
  }

  addNode (id: string): Transport {
    this.handlers.set(id, new Map())
    this.adjacency.set(id, new Set())
    this.sent.set(id, { frames: 0, bytes: 0, streams: 0 })
    return {
      connectedPeers: () => [...this.peersOf(id)],
      open: async (peer, protocol) => await this.open(id, peer, protocol),
      handle: async (protocol, handler) => { this.handlers.get(id)?.set(protocol, handler) },
      onPeer: listener => { this.peerListeners.set(id, [...(this.peerListeners.get(id) ?? []), listener]) }
    }
  }

  private notify (a: string, b: string, connected: boolean): void {
    for (const l of this.peerListeners.get(a) ?? []) l(b, connected)
    for (const l of this.peerListeners.get(b) ?? []) l(a, connected)
  }

  peersOf (id: string): Set<string> { return this.adjacency.get(id) as Set<string> }
  degree (id: string): number { return this.peersOf(id).size }
  connected (a: string, b: string): boolean { return this.peersOf(a).has(b) }

  connect (a: string, b: string): void {
    if (a === b || this.connected(a, b)) return
    this.links.set(linkKey(a, b), { a, b, open: true, lastArrival: new Map(), channels: new Set() })
    this.peersOf(a).add(b)
    this.peersOf(b).add(a)
    this.notify(a, b, true)
  }

  /** Drops a connection: its streams fail on both ends, frames in flight are lost. */
  disconnect (a: string, b: string): void {
    const link = this.links.get(linkKey(a, b))
    if (link === undefined) return
    this.links.delete(linkKey(a, b))
    link.open = false
    this.peersOf(a).delete(b)
    this.peersOf(b).delete(a)
    for (const ch of [...link.channels]) ch.fail(new LinkError('connection closed'))
    this.notify(a, b, false)
  }

  /** One message's one-way delay: latency, jitter, and a retransmission time-out per loss. */
  delayMs (): number {
    const { latencyMs, jitterMs, loss, rtoMs } = this.model
    let d = Math.max(0, latencyMs + jitterMs * (2 * this.random() - 1))
    for (let rto = rtoMs; loss > 0 && this.random() < loss; rto *= 2) d += rto
    return d
  }

  /**
   * Schedules `arrive` at the receiver: after the delay, not before the frame
   * sent before it on the same connection, then after the receiver's CPU is free.
   */
  transmit (link: Link, from: string, to: string, protocol: string, bytes: number, arrive: () => void, kind: 'frame' | 'stream' = 'frame'): void {
    let p = this.byProtocol.get(protocol)
    if (p === undefined) { p = { frames: 0, bytes: 0, streams: 0 }; this.byProtocol.set(protocol, p) }
    for (const t of [this.sent.get(from) as Traffic, p]) {
      if (kind === 'stream') t.streams++
      else if (bytes > 0) { t.frames++; t.bytes += bytes }
    }
    if (!link.open) return
    const now = this.scheduler.elapsedMs
    const at = Math.max(now + this.delayMs(), link.lastArrival.get(to) ?? 0)
    link.lastArrival.set(to, at)
    this.scheduler.at(at, () => {
      if (!link.open) return
      if (this.cpu === undefined) { arrive(); return }
      // Ends and resets cost nothing, but queue behind the frames before them.
      const cost = kind === 'stream' ? this.cpu.streamMs : bytes > 0 ? this.cpu.frameMs : 0
      this.scheduler.at(this.cpuDone(to, cost), () => { if (link.open) arrive() })
    })
  }

  /** When the receiver has spent `costMs` of CPU on a message that arrived now. */
  private cpuDone (node: string, costMs: number): number {
    const now = this.scheduler.elapsedMs
    let start = Math.max(now, this.cpuFree.get(node) ?? 0)
    let core = -1
    if (this.coreFree.length > 0 && costMs > 0) {
      core = 0
      for (let i = 1; i < this.coreFree.length; i++) if (this.coreFree[i] < this.coreFree[core]) core = i
      start = Math.max(start, this.coreFree[core])
    }
    const done = start + costMs
    this.cpuFree.set(node, done)
    if (core >= 0) this.coreFree[core] = done
    return done
  }

  /** A stream: the handler sees it after one way, the opener gets it after the round trip. */
  private async open (from: string, to: string, protocol: string): Promise<Channel> {
    const link = this.links.get(linkKey(from, to))
    if (link === undefined) throw new LinkError(`${from} is not connected to ${to}`)
    const limit = MAX_FRAME_BYTES_BY_PROTOCOL[protocol] ?? MAX_FRAME_BYTES
    const mine = new SimChannel(from, to, protocol, this, link, limit)
    const theirs = new SimChannel(to, from, protocol, this, link, limit)
    mine.remote = theirs
    theirs.remote = mine
    link.channels.add(mine)
    link.channels.add(theirs)
    return await new Promise((resolve, reject) => {
      const timeout = this.scheduler.after(this.frameTimeoutMs, () => mine.abort(new DmError('ERR_TIMEOUT', 'stream not accepted in time')))
      // A connection dropped (or a reset) before the answer rejects the open.
      mine.onFail = err => { timeout(); reject(err) }
      this.transmit(link, from, to, protocol, 0, () => {
        const handler = this.handlers.get(to)?.get(protocol)
        if (handler === undefined) { mine.fail(new LinkError(`${to} does not handle ${protocol}`)); return }
        void handler(theirs)
        // The acknowledgement of the protocol; an abort by the handler follows it, in order.
        this.transmit(link, to, from, protocol, 0, () => { timeout(); mine.onFail = () => {}; resolve(mine) })
      }, 'stream')
    })
  }
}
