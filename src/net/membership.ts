import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { peerIdFromString } from '@libp2p/peer-id'
import PQueue from 'p-queue'
import { describeError } from '../errors.js'
import type { PeerInfo } from '../protocol/messages.js'
import type { Tuning } from '../config/tuning.js'
import type { PeerExchange } from '../sync/transport.js'
import { sample, systemClock, type Clock } from '../util/clock.js'
import { silentLog, type Log } from '../util/log.js'
import type { MeshNode } from './node.js'
import { connectionsByPeer, peersToShed } from './shedding.js'
import { describeDialError, type DialError } from './dial-error.js'

/*
 * Membership: who we know, who we are connected to, and keeping enough
 * connections open. Members are learned from bootstrap addresses, from
 * identify (a peer's own listen addresses) and from peers' samples in
 * push-pull summaries, so the mesh does not stay a star around bootstrap nodes.
 */

export interface Member {
  id: string
  addrs: string[]
  bootstrap: boolean
  connected: boolean
  failures: number
  /** Why the last dial failed; cleared by a successful one. */
  lastError: DialError | undefined
  nextDialAtMs: number
  lastSeenMs: number | undefined
}

export interface MembershipInit {
  node: MeshNode
  bootstrap: string[]
  /** Members remembered from an earlier run (peers.json). */
  remembered?: PeerInfo[]
  tuning: Pick<Tuning, 'targetPeers' | 'highWaterPeers' | 'pruneGraceMs' | 'rotateIntervalMs' | 'rotateMaxIntervalMs' | 'maintainIntervalMs' | 'maxParallelDials' | 'dialTimeoutMs' | 'redialBaseMs' | 'redialMaxMs' |
  'maxKnownMembers' | 'maxIntroducedPerPeer' | 'savePeersIntervalMs'>
  /** Saves the members worth remembering (peers.json); called periodically and at stop. May throw; the error is logged. */
  save?: (peers: PeerInfo[]) => void
  log?: Log
  clock?: Clock
  random?: () => number
}

export interface Membership extends PeerExchange {
  /** Marks `peer` as having exchanged something useful (a sync round, a version): shed last. Must not block. */
  heard: (peer: string) => void
  /** Connected peers by who dialled (a peer with several connections counts once, as inbound only if all of them are). */
  degree: () => { inbound: number, outbound: number }
  start: () => void
  stop: () => void
  members: () => Member[]
  /** Members worth remembering across a restart: seen, with addresses. */
  snapshot: () => PeerInfo[]
}

export function createMembership (init: MembershipInit): Membership {
  const { node } = init
  const log = init.log ?? silentLog
  const clock = init.clock ?? systemClock
  const random = init.random ?? Math.random
  const { tuning } = init
  const self = node.peerId.toString()
  const joinListeners: Array<(peer: string) => void> = []
  const known = new Map<string, Omit<Member, 'connected'>>()
  const dials = new PQueue({ concurrency: tuning.maxParallelDials })
  let timer: NodeJS.Timeout | undefined
  let saveTimer: NodeJS.Timeout | undefined

  /** Members introduced by each peer (hearsay), to bound what one peer can add. */
  const introduced = new Map<string, number>()

  /**
   * Adds or updates a member. `firsthand` members (bootstrap, a live
   * connection) always get a place: when the table is full, a member that was
   * only ever heard of and never reached makes room.
   */
  function remember (id: string, addrs: string[], source: 'bootstrap' | 'firsthand' | 'hearsay'): boolean {
    if (id === self) return false
    const m = known.get(id)
    if (m !== undefined) {
      if (addrs.length > 0) m.addrs = addrs
      return false
    }
    if (known.size >= tuning.maxKnownMembers) {
      if (source === 'hearsay') return false
      const evictable = [...known.values()].find(x => x.lastSeenMs === undefined && !x.bootstrap)
      if (evictable === undefined) return false
      known.delete(evictable.id)
    }
    known.set(id, { id, addrs, bootstrap: source === 'bootstrap', failures: 0, lastError: undefined, nextDialAtMs: 0, lastSeenMs: undefined })
    return true
  }

  for (const addr of init.bootstrap) {
    const id = multiaddr(addr).getComponents().at(-1)?.value
    if (id !== undefined) remember(id, [addr], 'bootstrap')
  }
  for (const p of init.remembered ?? []) remember(p.id, cleanAddrs(p.id, p.addrs), 'firsthand')

  /** Keeps only addresses that parse, naming the peer (so a dial checks who answers). */
  function cleanAddrs (id: string, addrs: string[]): string[] {
    const out: string[] = []
    for (const a of addrs.slice(0, 8)) {
      try {
        const ma = multiaddr(a)
        const last = ma.getComponents().at(-1)
        out.push(last?.name === 'p2p' ? (last.value === id ? ma.toString() : '') : `${ma.toString()}/p2p/${id}`)
      } catch {}
    }
    return out.filter(a => a !== '')
  }

  /** Connected peers, kept from libp2p's events: heard() runs for every version a peer sends, so it must not rebuild this. */
  const connected = new Set(node.getPeers().map(p => p.toString()))

  async function dial (m: Omit<Member, 'connected'>): Promise<boolean> {
    try {
      await node.dial(m.addrs.map(a => multiaddr(a)) as Multiaddr[], { signal: AbortSignal.timeout(tuning.dialTimeoutMs) })
      m.failures = 0
      m.lastError = undefined
      m.lastSeenMs = clock.nowMs()
      return true
    } catch (err) {
      m.failures++
      m.lastError = describeDialError(err)
      const backoff = Math.min(tuning.redialBaseMs * 2 ** m.failures, tuning.redialMaxMs)
      m.nextDialAtMs = clock.nowMs() + backoff * (0.5 + random() / 2)
      // A bootstrap entry that fails is an operator's mistake until shown otherwise: say so once per backoff step.
      const fields = { peer: m.id, addrs: m.addrs, failures: m.failures, retryInMs: Math.round(m.nextDialAtMs - clock.nowMs()), reason: m.lastError.words, code: m.lastError.code }
      if (m.bootstrap) log.warn(fields, 'cannot reach bootstrap peer')
      else log.debug(fields, 'dial failed')
      return false
    }
  }

  /** Peers that exchanged something useful with us (a sync round, a version), and when. */
  const useful = new Map<string, number>()

  /** Hangs up on up to `count` peers, chosen as src/net/shedding.ts says. */
  function shed (count: number, why: string, keep?: string): void {
    const ids = peersToShed(node.getConnections(), { count, nowMs: clock.nowMs(), graceMs: tuning.pruneGraceMs, useful, keep, random })
    for (const id of ids) {
      log.debug({ peer: id, useful: useful.has(id) }, why)
      shedding.add(id)
      void node.hangUp(peerIdFromString(id)).catch(() => {})
    }
  }

  /** Peers this node is hanging up on: their disconnect is not news. */
  const shedding = new Set<string>()

  /** Sheds connections above the high-water mark, so a bootstrap node keeps room for newcomers. */
  function prune (): void {
    // Runs every maintainIntervalMs: most of the time there are not even that many connections.
    if (node.getConnections().length <= tuning.highWaterPeers) return
    const excess = connectionsByPeer(node.getConnections()).size - tuning.highWaterPeers
    if (excess > 0) shed(excess, 'shedding a connection above the high-water mark')
  }

  /**
   * Rotation: at its target, a node now and then dials a member it is not
   * connected to and, once connected, drops one old connection, so the graph
   * keeps mixing and two halves of a healed partition find each other, while
   * the degree stays at the target or one above (adding and shedding later kept every node
   * near the high-water mark, and each connection costs keep-alives and a
   * share of every publish). Each rotation with nothing new doubles the
   * interval, up to rotateMaxIntervalMs: a settled mesh rotates rarely. A new
   * member met firsthand (a connection), or a connection lost below the
   * target, brings it back to rotateIntervalMs. Members only heard of in
   * summaries do not: in a fleet of N every node hears of the other N - 1
   * over its first minutes, and resetting on each kept every node at the
   * short interval, a dial and a join round each, long after the mesh settled.
   */
  let rotateEveryMs = tuning.rotateIntervalMs
  let nextRotateMs = clock.nowMs() + rotateEveryMs * random()
  const unsettle = (): void => {
    if (rotateEveryMs === tuning.rotateIntervalMs) return
    rotateEveryMs = tuning.rotateIntervalMs
    nextRotateMs = Math.min(nextRotateMs, clock.nowMs() + rotateEveryMs * (0.75 + random() / 2))
  }

  function rotate (candidates: Array<Omit<Member, 'connected'>>): void {
    const [m] = sample(candidates, 1, random)
    if (m === undefined) return
    void dials.add(async () => {
      if (!await dial(m)) return
      // One old connection for the new one, above one more than the target (a fleet of target + 2 nodes
      // stays fully connected and stops rotating); a node further above drops a second, drifting back.
      shed(Math.min(2, connected.size - tuning.targetPeers - 1), 'rotation: dropping an old connection for a new one', m.id)
      rotateEveryMs = Math.min(rotateEveryMs * 2, tuning.rotateMaxIntervalMs)
    })
  }

  function maintain (): void {
    prune()
    const now = clock.nowMs()
    const missing = tuning.targetPeers - connected.size
    if (dials.size + dials.pending > 0 || (missing <= 0 && now < nextRotateMs)) return
    const candidates = [...known.values()].filter(m => !connected.has(m.id) && m.addrs.length > 0 && m.nextDialAtMs <= now)
    if (missing > 0) {
      for (const m of sample(candidates, missing, random)) void dials.add(async () => await dial(m))
    } else if (now >= nextRotateMs) {
      nextRotateMs = now + rotateEveryMs * (0.75 + random() / 2)
      rotate(candidates)
    }
  }

  /** Members seen, with addresses, most recent first. */
  function snapshot (): PeerInfo[] {
    return [...known.values()].filter(m => m.lastSeenMs !== undefined && m.addrs.length > 0)
      .sort((a, b) => (b.lastSeenMs ?? 0) - (a.lastSeenMs ?? 0)).map(m => ({ id: m.id, addrs: m.addrs }))
  }

  function persist (): void {
    try {
      init.save?.(snapshot())
    } catch (err) {
      log.warn({ err: describeError(err) }, 'cannot save the members seen')
    }
  }

  node.addEventListener('peer:identify', evt => {
    const id = evt.detail.peerId.toString()
    if (remember(id, cleanAddrs(id, evt.detail.listenAddrs.map(a => a.toString())), 'firsthand')) unsettle()
    const m = known.get(id)
    if (m !== undefined) { m.lastSeenMs = clock.nowMs(); m.failures = 0 }
  })
  node.addEventListener('connection:open', evt => {
    if (evt.detail.direction === 'outbound') for (const l of joinListeners) l(evt.detail.remotePeer.toString())
  })
  node.addEventListener('peer:connect', evt => { connected.add(evt.detail.toString()) })
  node.addEventListener('peer:disconnect', evt => {
    const id = evt.detail.toString()
    connected.delete(id)
    // A connection lost, not dropped by this node, below the target: the mesh is changing.
    if (!shedding.delete(id) && connected.size < tuning.targetPeers) unsettle()
    // Last heard from: the moment the connection ended (while connected, members() says now).
    const m = known.get(id)
    if (m !== undefined) m.lastSeenMs = clock.nowMs()
    useful.delete(id)
    setImmediate(maintain)
  })
  node.addEventListener('peer:discovery', evt => {
    const id = evt.detail.id.toString()
    remember(id, cleanAddrs(id, evt.detail.multiaddrs.map(a => a.toString())), 'firsthand')
  })

  return {
    start () {
      maintain()
      timer = setInterval(maintain, tuning.maintainIntervalMs)
      timer.unref()
      saveTimer = setInterval(persist, tuning.savePeersIntervalMs)
      saveTimer.unref()
    },
    stop () {
      clearInterval(timer)
      clearInterval(saveTimer)
      dials.clear()
      persist()
    },
    onJoin (listener) { joinListeners.push(listener) },
    heard (peer) { if (connected.has(peer)) useful.set(peer, clock.nowMs()) },
    degree () {
      const byPeer = connectionsByPeer(node.getConnections())
      const inbound = [...byPeer.values()].filter(c => c.inbound).length
      return { inbound, outbound: byPeer.size - inbound }
    },
    wantsIntroductions: () => known.size < tuning.targetPeers * 2,
    members () {
      const now = clock.nowMs()
      return [...known.values()].map(m => connected.has(m.id) ? { ...m, connected: true, lastSeenMs: now } : { ...m, connected: false })
    },
    snapshot,
    sample (n) {
      const good = [...known.values()].filter(m => m.addrs.length > 0 && (connected.has(m.id) || m.failures === 0))
      return sample(good, n, random).map(m => ({ id: m.id, addrs: m.addrs }))
    },
    learn (peers: PeerInfo[], from: string) {
      for (const p of peers) {
        if ((introduced.get(from) ?? 0) >= tuning.maxIntroducedPerPeer) return
        // Most of a summary is members known already: skipped before their ids are parsed.
        if (known.has(p.id) || p.id === self) continue
        try {
          peerIdFromString(p.id)
        } catch {
          log.debug({ from, peer: p.id }, 'ignoring member with a bad peer id')
          continue
        }
        if (remember(p.id, cleanAddrs(p.id, p.addrs), 'hearsay')) {
          if (introduced.size >= tuning.maxKnownMembers) introduced.clear()
          introduced.set(from, (introduced.get(from) ?? 0) + 1)
        }
      }
    }
  }
}
