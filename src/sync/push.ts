import PQueue from 'p-queue'
import type { Tuning } from '../config/tuning.js'
import { describeError } from '../errors.js'
import { printable } from '../format/names.js'
import { sameVersion, type SignedVersion } from '../format/version.js'
import { MAX_INLINE_BYTES, MessageType, PROTOCOL_PUSH, decodeMessage, encodeMessage, expectType, type Message } from '../protocol/messages.js'
import { sample, type Clock } from '../util/clock.js'
import type { Log } from '../util/log.js'
import { LOCAL_SOURCE, type Acceptor } from './acceptor-api.js'
import type { FetchService } from './fetch.js'
import { guarded } from './streams.js'
import type { Channel, Transport } from './transport.js'

/*
 * PushService: the fast path. Each newly accepted version goes at once to
 * `pushFanout` connected peers, over one push stream per peer that is opened
 * when the peer connects and kept for as long as it stays connected, so a
 * publish minutes after the last one never waits for a stream to open.
 * Small content rides along; larger content is announced and fetched by the
 * receiver. A received push goes to the acceptor, or to the fetch service.
 *
 * Most pushes a node receives are copies: with fanout f, about f of them per
 * publish, one of them news. A copy of the version held, or of one this
 * service is storing, is dropped on a byte comparison of its envelope, before
 * the acceptor hashes or verifies anything.
 *
 * A version is sent on once the acceptor says peers can get it from here
 * (its `servable` event): inline content from a peer, and larger content
 * received into a relay, as soon as they passed every rule, hash included,
 * while the commit's fsyncs run (each hop then costs a network round, not a
 * disk flush; the relay serves it until the commit is done); a small local
 * publish once committed, so a failed one has not spread. A large publish
 * that this node checked but could not write may have (`dm publish` says so).
 */

export interface PushService {
  /** Serves the push protocol and starts forwarding accepted versions. */
  start: () => Promise<void>
  /** Closes every push stream once its queued frames are sent. */
  stop: () => Promise<void>
}

export interface PushComponents {
  transport: Transport
  acceptor: Acceptor
  fetch: FetchService
  random: () => number
  clock: Clock
  log: Log
}

interface Session {
  channel: Channel | undefined
  /** Opens and frames go out one at a time, in order. */
  queue: PQueue
}

type PushTuning = Pick<Tuning, 'pushFanout' | 'pushEagerFanout' | 'pushLaterMs' | 'maxQueuedPushesPerPeer'>

/** Versions waiting for their second wave at once; beyond this, a version goes to all its peers at once. */
const MAX_WAITING_VERSIONS = 256

export function createPushService (components: PushComponents, tuning: PushTuning): PushService {
  const { transport, acceptor, fetch, random, clock, log } = components
  const sessions = new Map<string, Session>()
  /** Inline pushes being ingested, by signature; at most one per push stream. */
  const ingesting = new Map<string, SignedVersion>()
  const signatureKey = (v: SignedVersion): string => Buffer.from(v.signature.buffer, v.signature.byteOffset, v.signature.byteLength).toString('base64')

  /**
   * Versions in their second wave's wait, by signature: when this node got it,
   * and the peers that sent a copy since, which hold it already.
   */
  const holders = new Map<string, { sinceMs: number, peers: Set<string> }>()
  const cancelWaits = new Set<() => void>()
  /**
   * The time from a version's first copy to its second, averaged: how long a
   * hop takes here and now (well under a millisecond on an idle LAN, hundreds
   * on a machine that runs 100 daemons). The second wave waits twice that.
   */
  let hopMs = tuning.pushLaterMs

  /**
   * Sends a version to `pushFanout` peers in two waves. A version received
   * from a peer goes at once to `pushEagerFanout` of them, and about two hops'
   * time later (at least pushLaterMs, at most 20 times it) to the rest,
   * except those that pushed a copy here meanwhile: in a flood every link
   * would carry the version both ways, and this way most carry it once.
   * Every chosen peer still gets it or is known to hold it, so the flood
   * misses no node it missed before. A local publish goes to all at once: no
   * other node holds it yet.
   */
  function broadcast (v: SignedVersion, content: Uint8Array, source: string): void {
    const targets = sample(transport.connectedPeers().filter(p => p !== source), tuning.pushFanout, random)
    if (targets.length === 0) return
    const frame = encodeMessage({ type: MessageType.Push, version: v, content: v.size <= MAX_INLINE_BYTES ? content : undefined })
    const key = signatureKey(v)
    const atOnce = source === LOCAL_SOURCE || holders.has(key) || holders.size >= MAX_WAITING_VERSIONS ? targets.length : tuning.pushEagerFanout
    for (const peer of targets.slice(0, atOnce)) enqueue(peer, frame)
    const later = targets.slice(atOnce)
    if (later.length === 0) return
    const wait = { sinceMs: clock.nowMs(), peers: new Set<string>() }
    holders.set(key, wait)
    const waitMs = Math.min(Math.max(2 * hopMs, tuning.pushLaterMs), 20 * tuning.pushLaterMs)
    // Jittered, 0.5-1.5 times: of two neighbours waiting to send each other the version, the first to send is heard first.
    const cancel = clock.after(waitMs * (0.5 + random()), () => {
      // One more turn of the event loop: on a busy machine the copies that came meanwhile may still be
      // unread (timers run before socket reads), and they name peers that need no push.
      cancelWaits.delete(cancel)
      const next = clock.after(0, () => {
        cancelWaits.delete(next)
        holders.delete(key)
        for (const peer of later) if (!wait.peers.has(peer)) enqueue(peer, frame)
      })
      cancelWaits.add(next)
    })
    cancelWaits.add(cancel)
  }

  /**
   * Notes that `peer` sent a copy of a version in its second wave's wait. A
   * hostile peer can only spare itself a push, or stretch this node's wait
   * up to its bound by sending copies late.
   */
  function heldBy (key: string, peer: string): void {
    const wait = holders.get(key)
    if (wait === undefined) return
    if (wait.peers.size === 0) hopMs = 0.8 * hopMs + 0.2 * (clock.nowMs() - wait.sinceMs)
    wait.peers.add(peer)
  }

  function session (peer: string): Session {
    let s = sessions.get(peer)
    if (s === undefined) {
      s = { channel: undefined, queue: new PQueue({ concurrency: 1 }) }
      sessions.set(peer, s)
    }
    return s
  }

  /** Queues work on the peer's push stream, opening it first if needed; beyond the bound, work is dropped (anti-entropy repairs). */
  function enqueue (peer: string, frame: Uint8Array | undefined): void {
    const s = session(peer)
    if (s.queue.size >= tuning.maxQueuedPushesPerPeer) return
    void s.queue.add(async () => {
      try {
        s.channel ??= await transport.open(peer, PROTOCOL_PUSH)
        if (frame !== undefined) await s.channel.send(frame)
      } catch (err) {
        if (frame === undefined) throw err
        // The peer may have closed or reset the stream: once more, on a fresh one.
        s.channel?.abort(new Error('push stream failed'))
        s.channel = await transport.open(peer, PROTOCOL_PUSH)
        await s.channel.send(frame)
      }
    }).catch(err => {
      s.channel = undefined
      log.debug({ peer, err: describeError(err) }, 'push failed')
    })
  }

  function disconnected (peer: string): void {
    const s = sessions.get(peer)
    if (s === undefined) return
    sessions.delete(peer)
    s.queue.clear()
    s.channel?.abort(new Error('peer disconnected'))
  }

  /** A push stream carries Push frames until its sender closes it. Inline content is stored before the next frame is read (backpressure). */
  async function receive (ch: Channel): Promise<void> {
    for (let frame = await ch.read(); frame !== undefined; frame = await ch.read()) {
      await received(expectType(decodeMessage(frame), MessageType.Push), ch.peer)
    }
    await ch.close()
  }

  /** A copy of the version held, or of one being ingested from another push. */
  function isCopy (v: SignedVersion, key: string): boolean {
    const held = acceptor.held(v.name)?.version
    if (held !== undefined && sameVersion(held, v)) return true
    const pending = ingesting.get(key)
    return pending !== undefined && sameVersion(pending, v)
  }

  async function received (m: Extract<Message, { type: MessageType.Push }>, peer: string): Promise<void> {
    const v = m.version
    const key = signatureKey(v)
    if (isCopy(v, key)) {
      // A true copy (every signed byte the same): its sender holds the version.
      heldBy(key, peer)
      acceptor.refuse(v, { ok: false, code: 'ERR_ALREADY_HELD', reason: `this version of "${printable(v.name)}" is already held or being stored`, retryable: false }, peer)
      return
    }
    if (m.content !== undefined) {
      ingesting.set(key, v)
      try {
        await acceptor.ingest(v, m.content, peer)
      } finally {
        if (ingesting.get(key) === v) ingesting.delete(key)
      }
      return
    }
    // Larger content: the header is checked before any stream work, so duplicates cost nothing.
    const header = acceptor.check(v)
    if (!header.ok) { acceptor.refuse(v, header, peer); return }
    if (fetch.note(header.id, peer)) return
    void fetch.fetch(peer, [{ name: v.name, id: header.id, timestampMs: v.timestampMs }])
  }

  return {
    async start () {
      acceptor.events.on('servable', ({ version, content, source }) => { broadcast(version, content, source) })
      transport.onPeer((peer, connected) => { if (connected) enqueue(peer, undefined); else disconnected(peer) })
      await transport.handle(PROTOCOL_PUSH, guarded(log, 'push', receive))
    },
    async stop () {
      for (const cancel of cancelWaits) cancel()
      cancelWaits.clear()
      holders.clear()
      await Promise.allSettled([...sessions].map(async ([peer, s]) => {
        await s.queue.onIdle()
        if (sessions.get(peer) === s) sessions.delete(peer)
        await s.channel?.close()
      }))
    }
  }
}
