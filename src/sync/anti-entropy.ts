import PQueue from 'p-queue'
import type { Tuning } from '../config/tuning.js'
import { describeError } from '../errors.js'
import { MessageType, PROTOCOL_PUSH_PULL, encodeMessage, expectType, type IndexEntry } from '../protocol/messages.js'
import { sample, type Clock } from '../util/clock.js'
import { Events } from '../util/events.js'
import type { Log } from '../util/log.js'
import type { Acceptor } from './acceptor.js'
import type { FetchService } from './fetch.js'
import type { IndexView } from './index-view.js'
import { guarded, readMessage } from './streams.js'
import type { Channel, PeerExchange, Transport } from './transport.js'

/*
 * AntiEntropy: the safety net. Every push-pull interval (jittered) the node
 * compares index digests with one random peer; when they differ, both swap
 * indexes and each fetches what the other holds newer. A round also runs at
 * once whenever this node opens a connection, so a node that was away
 * catches up as soon as it is back.
 */

export interface SyncStats {
  rounds: number
  lastRoundAtMs: number | undefined
  lastRoundMs: number | undefined
}

export interface AntiEntropyEvents {
  /** A round finished; its duration. */
  round: { durationMs: number }
}

export interface AntiEntropy {
  readonly events: Events<AntiEntropyEvents>
  readonly stats: SyncStats
  /** Serves push-pull, starts the interval timer and the rounds on join. */
  start: () => Promise<void>
  /** Stops the timer and drops rounds not yet started. */
  stop: () => void
  /** One round with `peer`, now. Rejects when the exchange fails. */
  round: (peer: string) => Promise<void>
}

export interface AntiEntropyComponents {
  transport: Transport
  acceptor: Acceptor
  index: IndexView
  fetch: FetchService
  peers: PeerExchange
  clock: Clock
  random: () => number
  log: Log
}

type AntiEntropyTuning = Pick<Tuning, 'pushPullIntervalMs' | 'maxParallelJoinRounds' | 'peersPerSummary'>

export function createAntiEntropy (components: AntiEntropyComponents, tuning: AntiEntropyTuning): AntiEntropy {
  const { transport, acceptor, index, fetch, peers, clock, random, log } = components
  const events = new Events<AntiEntropyEvents>()
  const stats: SyncStats = { rounds: 0, lastRoundAtMs: undefined, lastRoundMs: undefined }
  const queued = new PQueue({ concurrency: tuning.maxParallelJoinRounds })
  let cancelTimer = (): void => {}
  let running = false

  const summary = (): Uint8Array => encodeMessage({ type: MessageType.Summary, count: index.entries().length, digest: index.digest(), peers: peers.sample(tuning.peersPerSummary) })
  const inSync = (digest: Uint8Array): boolean => Buffer.from(digest).equals(index.digest())
  const wantsFrom = (theirs: IndexEntry[]): IndexEntry[] => theirs.filter(acceptor.wants)

  function finished (startedMs: number): void {
    stats.rounds++
    stats.lastRoundAtMs = clock.nowMs()
    stats.lastRoundMs = stats.lastRoundAtMs - startedMs
    events.emit('round', { durationMs: stats.lastRoundMs })
  }

  /** The initiator: summary, their summary, then (if they differ) their index and ours. */
  async function round (peer: string): Promise<void> {
    const startedMs = clock.nowMs()
    const ch = await transport.open(peer, PROTOCOL_PUSH_PULL)
    let wants: IndexEntry[] = []
    try {
      await ch.send(summary())
      const theirs = expectType(await readMessage(ch), MessageType.Summary)
      peers.learn(theirs.peers, peer)
      if (!inSync(theirs.digest)) {
        const remote = expectType(await readMessage(ch), MessageType.Index)
        await ch.send(encodeMessage({ type: MessageType.Index, entries: index.entries() }))
        wants = wantsFrom(remote.entries)
      }
      await ch.close()
    } catch (err) {
      ch.abort(err as Error)
      throw err
    }
    if (wants.length > 0) await fetch.fetch(peer, wants)
    finished(startedMs)
  }

  /** The responder: the same exchange, mirrored. */
  async function respond (ch: Channel): Promise<void> {
    const startedMs = clock.nowMs()
    const theirs = expectType(await readMessage(ch), MessageType.Summary)
    peers.learn(theirs.peers, ch.peer)
    await ch.send(summary())
    if (inSync(theirs.digest)) {
      await ch.close()
      finished(startedMs)
      return
    }
    await ch.send(encodeMessage({ type: MessageType.Index, entries: index.entries() }))
    const remote = expectType(await readMessage(ch), MessageType.Index)
    await ch.close()
    const wants = wantsFrom(remote.entries)
    if (wants.length > 0) await fetch.fetch(ch.peer, wants)
    finished(startedMs)
  }

  function enqueue (peer: string, why: string): void {
    if (!running) return
    void queued.add(async () => await round(peer))
      .catch(err => log.debug({ peer, why, err: describeError(err) }, 'push-pull failed'))
  }

  /** One round with a random peer per interval, jittered by ±25 % so a fleet does not beat in step. */
  function schedule (): void {
    cancelTimer = clock.after(tuning.pushPullIntervalMs * (0.75 + random() / 2), () => {
      const peer = sample(transport.connectedPeers(), 1, random)[0]
      if (peer !== undefined) enqueue(peer, 'interval')
      schedule()
    })
  }

  return {
    events,
    stats,
    async start () {
      running = true
      peers.onJoin(peer => enqueue(peer, 'join'))
      await transport.handle(PROTOCOL_PUSH_PULL, guarded(log, 'push-pull', respond))
      schedule()
    },
    stop () {
      running = false
      cancelTimer()
      queued.clear()
    },
    round
  }
}
