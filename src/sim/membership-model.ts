import type { Tuning } from '../config/tuning.js'
import type { PeerInfo } from '../protocol/messages.js'
import type { PeerExchange } from '../sync/transport.js'
import { sample } from '../util/clock.js'
import type { SimNetwork } from './network.js'
import type { Scheduler } from './scheduler.js'

/*
 * Membership, modelled. src/net/membership.ts drives libp2p dials and cannot
 * run over the simulated network, so this follows its rules instead: a node
 * below targetPeers connections dials random known members (at once when a
 * connection drops, then every maintainIntervalMs while still short), a node
 * at maxConnections refuses, an unreachable member costs a dial time-out and
 * a doubling backoff, and each connection a node opens starts a push-pull
 * round (onJoin); every rotateIntervalMs a node at its target dials one more
 * random member, and a node above highWaterPeers drops a random connection.
 * Every node knows every member (the real table holds up to maxKnownMembers).
 * The sync services on top are the real ones.
 */

type MeshTuning = Pick<Tuning, 'targetPeers' | 'highWaterPeers' | 'rotateIntervalMs' | 'maxConnections' | 'maintainIntervalMs' | 'dialTimeoutMs' | 'redialBaseMs' | 'redialMaxMs'>

/** Round trips a dial takes: TCP, Noise XX (1.5), and the multistream-select of Noise and Yamux. */
const DIAL_ROUND_TRIPS = 3

interface NodeState {
  joinListeners: Array<(peer: string) => void>
  dialing: number
  maintainQueued: boolean
  /** Members whose dial failed: when they may be tried again, and how often they failed. */
  backoff: Map<string, { untilMs: number, failures: number }>
}

export class MembershipModel {
  private readonly state = new Map<string, NodeState>()
  readonly up: Set<string>
  /** Partition side of each node while a partition is in force. */
  private sides: Map<string, number> | undefined

  constructor (
    private readonly net: SimNetwork,
    private readonly scheduler: Scheduler,
    private readonly random: () => number,
    private readonly ids: readonly string[],
    private readonly tuning: MeshTuning
  ) {
    this.up = new Set(ids)
    for (const id of ids) this.state.set(id, { joinListeners: [], dialing: 0, maintainQueued: false, backoff: new Map() })
  }

  /**
   * The mesh membership converges to: every node that is up, in random
   * order, connects to random members until it has targetPeers connections,
   * and nobody goes above maxConnections.
   */
  build (): void {
    const live = sample(this.ids.filter(id => this.up.has(id)), Infinity, this.random)
    for (const id of live) {
      for (let tries = 0; this.net.degree(id) < this.tuning.targetPeers && tries < 20 * this.tuning.targetPeers; tries++) {
        const other = live[Math.floor(this.random() * live.length)]
        if (other !== id && this.net.degree(other) < this.tuning.maxConnections) this.net.connect(id, other)
      }
    }
  }

  /** What the sync services of `id` see of membership. */
  peerExchange (id: string): PeerExchange {
    const st = this.state.get(id) as NodeState
    return {
      sample: n => this.randomMembers(id, n).map(peerInfo),
      // Everyone already knows everyone in the model: gossip about members changes nothing.
      learn: () => {},
      onJoin: listener => { st.joinListeners.push(listener) },
      wantsIntroductions: () => false
    }
  }

  /** Up to n distinct random members other than `id` (by rejection: cheap when n is far below N). */
  private randomMembers (id: string, n: number): string[] {
    const out = new Set<string>()
    for (let tries = 0; out.size < Math.min(n, this.ids.length - 1) && tries < 4 * n + 16; tries++) {
      const m = this.ids[Math.floor(this.random() * this.ids.length)]
      if (m !== id) out.add(m)
    }
    return [...out]
  }

  reachable (from: string, to: string): boolean {
    return this.up.has(to) && this.up.has(from) && (this.sides === undefined || this.sides.get(from) === this.sides.get(to))
  }

  /** The node goes away (a laptop closed, a reboot): its connections drop, its peers top up. */
  leave (id: string): void {
    this.up.delete(id)
    for (const peer of [...this.net.peersOf(id)]) {
      this.net.disconnect(id, peer)
      this.maintain(peer)
    }
  }

  /** The node is back: it dials until it has targetPeers connections; each starts a push-pull round. */
  rejoin (id: string): void {
    this.up.add(id)
    this.maintain(id)
  }

  /** Splits the mesh: connections across sides drop (as keep-alives find out), dials across time out. */
  split (sides: Map<string, number>): void {
    this.sides = sides
    for (const id of this.ids) {
      for (const peer of [...this.net.peersOf(id)]) {
        if (sides.get(id) !== sides.get(peer)) {
          this.net.disconnect(id, peer)
          this.maintain(id)
          this.maintain(peer)
        }
      }
    }
  }

  /** Ends the partition. Nothing else happens at once: the next rotations dial across. */
  heal (): void {
    this.sides = undefined
  }

  /** Starts every node's rotation timer (membership.ts's maintain at target), at a random phase. */
  startRotation (): void {
    for (const id of this.ids) this.scheduler.after(this.tuning.rotateIntervalMs * this.random(), () => this.rotate(id))
  }

  private rotate (id: string): void {
    this.scheduler.after(this.tuning.rotateIntervalMs * (0.75 + this.random() / 2), () => this.rotate(id))
    const st = this.state.get(id) as NodeState
    if (!this.up.has(id) || st.dialing > 0 || this.net.degree(id) < this.tuning.targetPeers) return
    const now = this.scheduler.elapsedMs
    for (let tries = 0; tries < 20; tries++) {
      const m = this.ids[Math.floor(this.random() * this.ids.length)]
      if (m === id || this.net.connected(id, m) || (st.backoff.get(m)?.untilMs ?? 0) > now) continue
      this.dial(id, m)
      return
    }
  }

  /** membership.ts's prune(): above the high-water mark, drop random connections other than `keep`. */
  private prune (id: string, keep: string): void {
    const excess = this.net.degree(id) - this.tuning.highWaterPeers
    if (excess <= 0) return
    for (const peer of sample([...this.net.peersOf(id)].filter(p => p !== keep), excess, this.random)) this.net.disconnect(id, peer)
  }

  /** membership.ts's maintain(): dial `missing` random members not connected and not backing off, unless dials are under way. */
  private maintain (id: string): void {
    const st = this.state.get(id) as NodeState
    if (!this.up.has(id) || st.dialing > 0) return
    const missing = this.tuning.targetPeers - this.net.degree(id)
    if (missing <= 0) return
    const now = this.scheduler.elapsedMs
    const picked = new Set<string>()
    for (let tries = 0; picked.size < missing && tries < 20 * missing; tries++) {
      const m = this.ids[Math.floor(this.random() * this.ids.length)]
      if (m === id || this.net.connected(id, m) || (st.backoff.get(m)?.untilMs ?? 0) > now) continue
      picked.add(m)
    }
    for (const m of picked) this.dial(id, m)
    if (picked.size === 0) this.maintainLater(id)
  }

  private maintainLater (id: string): void {
    const st = this.state.get(id) as NodeState
    if (st.maintainQueued) return
    st.maintainQueued = true
    this.scheduler.after(this.tuning.maintainIntervalMs, () => { st.maintainQueued = false; this.maintain(id) })
  }

  private dial (from: string, to: string): void {
    const st = this.state.get(from) as NodeState
    st.dialing++
    const settle = (ok: boolean): void => {
      st.dialing--
      if (ok) {
        st.backoff.delete(to)
        this.net.connect(from, to)
        this.prune(from, to)
        this.prune(to, from)
        for (const l of st.joinListeners) l(to)
      } else {
        const failures = (st.backoff.get(to)?.failures ?? 0) + 1
        const backoffMs = Math.min(this.tuning.redialBaseMs * 2 ** failures, this.tuning.redialMaxMs)
        st.backoff.set(to, { untilMs: this.scheduler.elapsedMs + backoffMs * (0.5 + this.random() / 2), failures })
      }
      if (st.dialing === 0 && this.net.degree(from) < this.tuning.targetPeers) this.maintainLater(from)
    }
    if (!this.reachable(from, to)) {
      this.scheduler.after(this.tuning.dialTimeoutMs, () => settle(false))
      return
    }
    let rttMs = 0
    for (let i = 0; i < 2 * DIAL_ROUND_TRIPS; i++) rttMs += this.net.delayMs()
    this.scheduler.after(rttMs, () => {
      const ok = this.reachable(from, to) && !this.net.connected(from, to) && this.net.degree(to) < this.tuning.maxConnections
      settle(ok)
    })
  }
}

/** A member as a summary carries it, sized like a real one (a peer id and one TCP address). */
function peerInfo (id: string): PeerInfo {
  return { id, addrs: [`/ip4/10.0.0.1/tcp/7946/p2p/${id}`] }
}

/** Node ids as long as libp2p's Ed25519 peer ids (52 characters), so summaries have their real size. */
export function nodeId (i: number): string {
  return `12D3KooWSim${String(i).padStart(41, '0')}`
}
