import PQueue from 'p-queue'
import type { Tuning } from '../config/tuning.js'
import { describeError } from '../errors.js'
import type { SignedVersion } from '../format/version.js'
import { MAX_INLINE_BYTES, MessageType, PROTOCOL_PUSH, decodeMessage, encodeMessage, expectType, type Message } from '../protocol/messages.js'
import { sample, type Clock } from '../util/clock.js'
import type { Log } from '../util/log.js'
import { LOCAL_SOURCE, type Acceptor } from './acceptor.js'
import type { FetchService } from './fetch.js'
import { guarded } from './streams.js'
import type { Channel, Transport } from './transport.js'

/*
 * PushService: the fast path. Each newly accepted version goes at once to
 * `pushFanout` connected peers, over one long-lived push stream per peer.
 * Small content rides along; larger content is announced and fetched by the
 * receiver. A received push goes to the acceptor, or to the fetch service.
 *
 * When a version is sent on:
 *  - a local publish, only once committed here: `dm publish` exits 0 exactly
 *    when its version was stored, and a failed publish has not spread;
 *  - inline content from a peer, as soon as it is verified, while the commit's
 *    fsyncs run: each hop then costs a network round, not a disk flush;
 *  - larger content, once committed, because it is served from disk.
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
  clock: Clock
  random: () => number
  log: Log
}

interface Session {
  channel: Channel | undefined
  queue: PQueue
  /** Cancels the idle close. */
  idle: () => void
}

type PushTuning = Pick<Tuning, 'pushFanout' | 'maxQueuedPushesPerPeer' | 'pushStreamIdleMs'>

export function createPushService (components: PushComponents, tuning: PushTuning): PushService {
  const { transport, acceptor, fetch, clock, random, log } = components
  const sessions = new Map<string, Session>()
  const early = (v: SignedVersion, source: string): boolean => v.size <= MAX_INLINE_BYTES && source !== LOCAL_SOURCE

  function broadcast (v: SignedVersion, content: Uint8Array, source: string): void {
    const targets = sample(transport.connectedPeers().filter(p => p !== source), tuning.pushFanout, random)
    if (targets.length === 0) return
    const frame = encodeMessage({ type: MessageType.Push, version: v, content: v.size <= MAX_INLINE_BYTES ? content : undefined })
    for (const peer of targets) send(peer, frame)
  }

  function send (peer: string, frame: Uint8Array): void {
    let s = sessions.get(peer)
    if (s === undefined) {
      s = { channel: undefined, queue: new PQueue({ concurrency: 1 }), idle: () => {} }
      sessions.set(peer, s)
    }
    // Beyond the bound the push is dropped: anti-entropy repairs what it misses.
    if (s.queue.size >= tuning.maxQueuedPushesPerPeer) return
    const session = s
    void session.queue.add(async () => {
      session.idle()
      try {
        session.channel ??= await transport.open(peer, PROTOCOL_PUSH)
        await session.channel.send(frame)
      } catch {
        // The peer may have closed or reset the stream: once more, on a fresh one.
        session.channel?.abort(new Error('push stream failed'))
        session.channel = await transport.open(peer, PROTOCOL_PUSH)
        await session.channel.send(frame)
      }
      session.idle = clock.after(tuning.pushStreamIdleMs, () => { void end(peer, session) })
    }).catch(err => {
      session.channel = undefined
      log.debug({ peer, err: describeError(err) }, 'push failed')
    })
  }

  async function end (peer: string, s: Session): Promise<void> {
    if (sessions.get(peer) !== s || s.queue.size > 0 || s.queue.pending > 0) return
    sessions.delete(peer)
    await s.channel?.close().catch(() => {})
  }

  /** A push stream carries Push frames until its sender closes it. Inline content is stored before the next frame is read (backpressure). */
  async function receive (ch: Channel): Promise<void> {
    for (let frame = await ch.read(); frame !== undefined; frame = await ch.read()) {
      await received(expectType(decodeMessage(frame), MessageType.Push), ch.peer)
    }
    await ch.close()
  }

  async function received (m: Extract<Message, { type: MessageType.Push }>, peer: string): Promise<void> {
    const v = m.version
    if (m.content !== undefined) {
      await acceptor.ingest(v, m.content, peer)
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
      acceptor.events.on('verified', ({ version, content, source }) => { if (early(version, source)) broadcast(version, content, source) })
      acceptor.events.on('accepted', ({ entry, content, source }) => { if (!early(entry.version, source)) broadcast(entry.version, content, source) })
      await transport.handle(PROTOCOL_PUSH, guarded(log, 'push', receive))
    },
    async stop () {
      await Promise.allSettled([...sessions].map(async ([peer, s]) => {
        s.idle()
        await s.queue.onIdle()
        await end(peer, s)
      }))
    }
  }
}
