import type { Connection, PeerId, Stream } from '@libp2p/interface'
import { peerIdFromString } from '@libp2p/peer-id'
import { DmError, describeError, type ErrorCode } from '../errors.js'
import type { Certificate } from '../format/certificate.js'
import { systemClock, type Clock } from '../util/clock.js'
import type { Log } from '../util/log.js'
import { judgeMembership, peerKey, type Judgement, type RevokedCheck } from './admit-trust.js'
import { decodeVerdict, encodeVerdict, MAX_ADMIT_FRAME_BYTES, PROTOCOL_ADMIT, type AdmitVerdict } from './admit-wire.js'
import { streamChannel } from './channel.js'
import type { MeshNode } from './node.js'

/*
 * Admission to a private mesh (docs/SECURITY.md section 1, docs/PROTOCOL.md
 * section 12). Right after Noise has authenticated a connection's peer id,
 * each side sends its membership certificate on /data-mesher/admit/1.0.0 and
 * judges the other's: signed by the network key, for the key behind the
 * remote peer id, valid now, not revoked. Until a peer passes, the transport
 * hands none of its streams to the sync services, opens none to it and leaves
 * it out of the connected peers, and membership hears nothing from it (the
 * filtered node view below). A peer that fails is logged on both sides and
 * disconnected.
 */

/** How often admitted peers are re-judged, so a certificate that expires while connected ends the connection. */
const RECHECK_INTERVAL_MS = 60_000
/** Refusal reasons remembered for dm peers; the oldest is forgotten beyond this. */
const MAX_REMEMBERED_REFUSALS = 1024
/** identify and connection events held back per peer until it is admitted. */
const MAX_HELD_EVENTS_PER_PEER = 8

export interface AdmissionInit {
  node: MeshNode
  networkKey: Uint8Array
  /** This node's membership certificate, as sent to peers. */
  certificate: Uint8Array
  /** A frame must arrive within this (tuning.frameTimeoutMs); the whole exchange within three times it. */
  frameTimeoutMs: number
  log: Log
  clock?: Clock
}

export interface Admission {
  /** Serves the admit protocol and admits the connections already open. */
  start: () => Promise<void>
  stop: () => Promise<void>
  isAdmitted: (peer: string) => boolean
  /** True once `peer` is admitted; false when no exchange with it is under way or it fails (bounded by the exchange deadline). */
  whenAdmitted: (peer: string) => Promise<boolean>
  /** Peers connected and admitted now. */
  admittedPeers: () => string[]
  /** Calls `listener` when a peer is admitted (true) or stops being (false). Must not block. */
  onChange: (listener: (peer: string, admitted: boolean) => void) => void
  /** Replaces this node's certificate (a renewal, on reload); sent from the next connection on. */
  setCertificate: (certificate: Uint8Array) => void
  /** Sets the revocation check and disconnects admitted peers it now refuses. */
  setRevoked: (revoked: RevokedCheck) => void
  /** Why `peer` was last refused (either way), if it was. */
  lastRefusal: (peer: string) => string | undefined
  /** The node name in an admitted peer's membership certificate, if it has one. */
  nameOf: (peer: string) => string | undefined
  /**
   * The node as membership must see it: only admitted peers and their
   * connections, identify, discovery and connection-open events of a
   * connected peer held back until it is admitted, and a dial that resolves
   * only once the peer is.
   */
  readonly node: MeshNode
}

interface PeerState {
  admitted?: { cert: Certificate, key: Uint8Array }
  /** Exchanges under way on its connections. */
  pending: number
  waiters: Array<(admitted: boolean) => void>
  /** Events for membership held until the peer is admitted. */
  held: Array<() => void>
}

interface Exchange {
  streamSeen: boolean
  finish: (outcome: Outcome) => void
}

type Outcome =
  | { ours: Judgement, theirs: AdmitVerdict }
  /** The exchange did not complete: our refusal of the peer says why. */
  | { ours: Judgement & { ok: false }, theirs?: undefined, quiet?: boolean }

export function createAdmission (init: AdmissionInit): Admission {
  const { node, networkKey, frameTimeoutMs, log } = init
  let certificate = init.certificate
  const clock = init.clock ?? systemClock
  const deadlineMs = 3 * frameTimeoutMs
  const peers = new Map<string, PeerState>()
  const exchanges = new Map<string, Exchange>()
  const tracked = new WeakSet<Connection>()
  const refusals = new Map<string, string>()
  const changeListeners: Array<(peer: string, admitted: boolean) => void> = []
  const filtered = new EventTarget()
  let revoked: RevokedCheck = () => undefined
  let recheckTimer: NodeJS.Timeout | undefined
  let running = true

  const state = (peer: string): PeerState => {
    let st = peers.get(peer)
    if (st === undefined) {
      st = { pending: 0, waiters: [], held: [] }
      peers.set(peer, st)
    }
    return st
  }
  const isAdmitted = (peer: string): boolean => peers.get(peer)?.admitted !== undefined

  function remember (peer: string, why: string): void {
    refusals.delete(peer)
    refusals.set(peer, why)
    if (refusals.size > MAX_REMEMBERED_REFUSALS) refusals.delete(refusals.keys().next().value as string)
  }

  function emitChange (peer: string, admitted: boolean): void {
    for (const l of changeListeners) l(peer, admitted)
  }

  function wake (peer: string, st: PeerState): void {
    if (st.admitted === undefined && st.pending > 0) return
    for (const w of st.waiters.splice(0)) w(st.admitted !== undefined)
    if (st.admitted === undefined && st.pending === 0 && node.getConnections(peerIdFromString(peer)).length === 0) peers.delete(peer)
  }

  /** Starts the exchange on a connection once (both the open event and a handler may see it first). */
  function track (conn: Connection): void {
    if (tracked.has(conn) || !running) return
    tracked.add(conn)
    const peer = conn.remotePeer.toString()
    const st = state(peer)
    st.pending++
    let done = false
    const timer = setTimeout(() => finish({ ours: { ok: false, code: 'ERR_NOT_ADMITTED', reason: `completed no admission within ${deadlineMs} ms` } }), deadlineMs)
    timer.unref()
    const finish = (outcome: Outcome): void => {
      if (done) return
      done = true
      clearTimeout(timer)
      exchanges.delete(conn.id)
      settle(conn, outcome)
    }
    exchanges.set(conn.id, { streamSeen: false, finish })
    if (conn.direction === 'outbound') {
      conn.newStream(PROTOCOL_ADMIT, { signal: AbortSignal.timeout(frameTimeoutMs) })
        .then(async stream => await exchange(stream, conn))
        .then(finish, err => finish(failed(err, conn)))
    }
  }

  /** An exchange that broke off; a connection that went away is not news. */
  function failed (err: unknown, conn: Connection): Outcome {
    const quiet = conn.status !== 'open'
    const code: ErrorCode = err instanceof DmError && err.code !== 'ERR_TIMEOUT' ? err.code : 'ERR_NOT_ADMITTED'
    return { ours: { ok: false, code, reason: `broke off the admission exchange (${describeError(err)})` }, quiet }
  }

  /** Certificates both ways, then verdicts both ways: two round trips. */
  async function exchange (stream: Stream, conn: Connection): Promise<Outcome> {
    const peer = conn.remotePeer.toString()
    const ch = streamChannel(stream, peer, { maxFrameBytes: MAX_ADMIT_FRAME_BYTES, frameTimeoutMs })
    try {
      await ch.send(certificate)
      const frame = await ch.read()
      const ours: Judgement = frame === undefined
        ? { ok: false, code: 'ERR_NOT_ADMITTED', reason: 'closed the admission stream without sending a certificate' }
        : judgeMembership(frame, peerKey(conn.remotePeer), { networkKey, nowMs: clock.nowMs(), revoked })
      await ch.send(encodeVerdict(ours))
      const reply = await ch.read()
      const theirs: AdmitVerdict = reply === undefined
        ? { ok: false, code: 'ERR_NOT_ADMITTED', reason: 'closed the admission stream without a verdict' }
        : decodeVerdict(reply)
      await ch.close().catch(() => {})
      return { ours, theirs }
    } catch (err) {
      ch.abort(err as Error)
      throw err
    }
  }

  function settle (conn: Connection, outcome: Outcome): void {
    const peer = conn.remotePeer.toString()
    const st = state(peer)
    st.pending--
    const { ours, theirs } = outcome
    if (ours.ok && theirs?.ok === true) {
      if (st.admitted === undefined && running && conn.status === 'open') {
        st.admitted = { cert: ours.cert, key: peerKey(conn.remotePeer) as Uint8Array }
        refusals.delete(peer)
        log.debug({ peer, name: ours.cert.name, notAfterMs: ours.cert.notAfterMs }, 'peer admitted')
        emitChange(peer, true)
        for (const replay of st.held.splice(0)) replay()
      }
    } else {
      const quiet = 'quiet' in outcome && outcome.quiet === true
      if (!ours.ok) {
        remember(peer, `not admitted here: ${ours.code}: ${ours.reason}`)
        if (quiet) log.debug({ peer, code: ours.code, reason: ours.reason }, 'admission broke off')
        else log.warn({ peer, code: ours.code, reason: `the peer ${ours.reason}` }, 'peer not admitted')
      }
      if (theirs !== undefined && !theirs.ok) {
        remember(peer, `the peer did not admit this node: ${theirs.code}: ${theirs.reason}`)
        log.warn({ peer, code: theirs.code, reason: `this node ${theirs.reason}` }, 'this node was not admitted by the peer')
      }
      // Only this connection: the peer may be admitted on another one.
      if (st.admitted === undefined) void conn.close({ signal: AbortSignal.timeout(frameTimeoutMs) }).catch(err => conn.abort(err as Error))
    }
    wake(peer, st)
  }

  /** Re-judges admitted peers (revocation list changed, or time passed) and disconnects those no longer members. */
  function recheck (): void {
    const now = clock.nowMs()
    for (const [peer, st] of peers) {
      if (st.admitted === undefined) continue
      const { cert, key } = st.admitted
      const why = revoked(key)
      const problem: { code: ErrorCode, reason: string } | undefined = why !== undefined
        ? { code: 'ERR_REVOKED', reason: `is revoked by the network's revocation list (${why})` }
        : now >= cert.notAfterMs ? { code: 'ERR_CERT_EXPIRED', reason: `has a membership certificate that expired at ${new Date(cert.notAfterMs).toISOString()}` } : undefined
      if (problem === undefined) continue
      st.admitted = undefined
      remember(peer, `not admitted here: ${problem.code}: ${problem.reason}`)
      log.warn({ peer, code: problem.code, reason: `the peer ${problem.reason}` }, 'peer no longer admitted; disconnecting')
      emitChange(peer, false)
      void node.hangUp(peerIdFromString(peer)).catch(() => {})
    }
  }

  /** Runs `deliver` now if the peer is admitted, else when it is (dropped if it never is). */
  function whenAdmittedRun (peer: string, deliver: () => void): void {
    if (isAdmitted(peer)) { deliver(); return }
    const st = state(peer)
    if (st.held.length < MAX_HELD_EVENTS_PER_PEER) st.held.push(deliver)
  }

  node.addEventListener('connection:open', evt => {
    const conn = evt.detail
    track(conn)
    whenAdmittedRun(conn.remotePeer.toString(), () => filtered.dispatchEvent(new CustomEvent('connection:open', { detail: conn })))
  })
  node.addEventListener('connection:close', evt => exchanges.get(evt.detail.id)?.finish(failed(new DmError('ERR_NOT_ADMITTED', 'the connection closed'), evt.detail)))
  node.addEventListener('peer:identify', evt => {
    const detail = evt.detail
    whenAdmittedRun(detail.peerId.toString(), () => filtered.dispatchEvent(new CustomEvent('peer:identify', { detail })))
  })
  // libp2p reports every peer new to its peer store as discovered, a connecting stranger too: held back
  // like identify. A discovery with no connection behind it (mDNS) is only an address to dial, and passes.
  node.addEventListener('peer:discovery', evt => {
    const detail = evt.detail
    const peer = detail.id.toString()
    const deliver = (): void => { filtered.dispatchEvent(new CustomEvent('peer:discovery', { detail })) }
    if (peers.has(peer) || node.getConnections(detail.id).length > 0) whenAdmittedRun(peer, deliver)
    else deliver()
  })
  node.addEventListener('peer:disconnect', evt => {
    const peer = evt.detail.toString()
    const st = peers.get(peer)
    if (st === undefined) return
    const was = st.admitted !== undefined
    st.admitted = undefined
    st.held.length = 0
    if (was) emitChange(peer, false)
    wake(peer, st)
  })

  async function whenAdmitted (peer: string): Promise<boolean> {
    if (isAdmitted(peer)) return true
    // A connection whose open event has not reached us yet is tracked now.
    for (const c of node.getConnections(peerIdFromString(peer))) track(c)
    const st = peers.get(peer)
    if (st === undefined || st.pending === 0) return false
    return await new Promise(resolve => st.waiters.push(resolve))
  }

  const FILTERED = new Set(['connection:open', 'peer:identify', 'peer:discovery'])
  const view = new Proxy(node, {
    get (target, prop) {
      switch (prop) {
        case 'getPeers': return () => target.getPeers().filter(p => isAdmitted(p.toString()))
        case 'getConnections': return (peer?: PeerId) => target.getConnections(peer).filter(c => isAdmitted(c.remotePeer.toString()))
        case 'dial': return async (...args: Parameters<MeshNode['dial']>) => {
          const conn = await target.dial(...args)
          const peer = conn.remotePeer.toString()
          if (await whenAdmitted(peer)) return conn
          throw new DmError('ERR_NOT_ADMITTED', refusals.get(peer) ?? 'not admitted')
        }
        case 'addEventListener': return (type: string, listener: EventListener, opts?: AddEventListenerOptions) =>
          FILTERED.has(type) ? filtered.addEventListener(type, listener, opts) : target.addEventListener(type as 'peer:connect', listener, opts)
        case 'removeEventListener': return (type: string, listener: EventListener) =>
          FILTERED.has(type) ? filtered.removeEventListener(type, listener) : target.removeEventListener(type as 'peer:connect', listener)
      }
      const value = Reflect.get(target, prop, target) as unknown
      return typeof value === 'function' ? value.bind(target) : value
    }
  })

  return {
    async start () {
      await node.handle(PROTOCOL_ADMIT, (stream, conn) => {
        track(conn)
        const ex = exchanges.get(conn.id)
        // Only the dialler opens the stream, once per connection.
        if (ex === undefined || ex.streamSeen || conn.direction !== 'inbound') {
          stream.abort(new DmError('ERR_NOT_ADMITTED', 'unexpected admission stream'))
          return
        }
        ex.streamSeen = true
        exchange(stream, conn).then(ex.finish, err => ex.finish(failed(err, conn)))
      }, { maxInboundStreams: 1 })
      for (const conn of node.getConnections()) track(conn)
      recheckTimer = setInterval(recheck, RECHECK_INTERVAL_MS)
      recheckTimer.unref()
    },
    async stop () {
      running = false
      clearInterval(recheckTimer)
      await node.unhandle(PROTOCOL_ADMIT).catch(() => {})
    },
    isAdmitted,
    whenAdmitted,
    admittedPeers: () => [...peers].filter(([, st]) => st.admitted !== undefined).map(([peer]) => peer),
    onChange (listener) { changeListeners.push(listener) },
    setCertificate (bytes) { certificate = bytes },
    setRevoked (check) {
      revoked = check
      recheck()
    },
    lastRefusal: peer => refusals.get(peer),
    nameOf: peer => {
      const name = peers.get(peer)?.admitted?.cert.name
      return name === undefined || name === '' ? undefined : name
    },
    node: view
  }
}
