import PQueue from 'p-queue'
import type { Tuning } from '../config/tuning.js'
import { DmError, describeError } from '../errors.js'
import { MessageType, PROTOCOL_PUSH_PULL, decodeMessage, encodeMessage, expectType, type IndexEntry } from '../protocol/messages.js'
import { sample, type Clock } from '../util/clock.js'
import { Events } from '../util/events.js'
import type { Log } from '../util/log.js'
import type { Acceptor } from './acceptor-api.js'
import type { FetchService } from './fetch.js'
import type { IndexView } from './index-view.js'
import { createReconciler, reconcileOver } from './reconcile.js'
import { guarded, readMessage } from './streams.js'
import type { Channel, PeerExchange, Transport } from './transport.js'

/*
 * AntiEntropy: the safety net. Every push-pull interval (jittered) the node
 * reconciles its advertised index with one random peer (range-based set
 * reconciliation, src/sync/reconcile.ts: a round in sync is one small digest
 * each way; otherwise it costs what differs), then each side fetches what the
 * other holds newer. A round also runs at once whenever this node opens a
 * connection, so a node that was away catches up as soon as it is back; such
 * a join round first swaps a few members (a Summary each way), which is how a
 * newcomer learns the mesh beyond its bootstrap node.
 */

export interface SyncStats {
  rounds: number
  lastRoundAtMs: number | undefined
  lastRoundMs: number | undefined
}

export interface AntiEntropyEvents {
  /** A round finished with `peer`; its duration. */
  round: { peer: string, durationMs: number }
}

export interface AntiEntropy {
  readonly events: Events<AntiEntropyEvents>
  readonly stats: SyncStats
  /** Serves push-pull, starts the interval timer and the rounds on join. */
  start: () => Promise<void>
  /** Stops the timer and drops rounds not yet started. */
  stop: () => void
  /** One round with `peer`, now; `introduce` swaps members first. Rejects when the exchange fails. */
  round: (peer: string, introduce?: boolean) => Promise<void>
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

type AntiEntropyTuning = Pick<Tuning, 'pushPullIntervalMs' | 'pushPullMaxIntervalMs' | 'maxParallelJoinRounds' | 'peersPerSummary'>

export function createAntiEntropy (components: AntiEntropyComponents, tuning: AntiEntropyTuning): AntiEntropy {
  const { transport, acceptor, index, fetch, peers, clock, random, log } = components
  const events = new Events<AntiEntropyEvents>()
  const stats: SyncStats = { rounds: 0, lastRoundAtMs: undefined, lastRoundMs: undefined }
  const queued = new PQueue({ concurrency: tuning.maxParallelJoinRounds })
  let cancelTimer = (): void => {}
  let running = false

  const summary = (): Uint8Array => {
    const snapshot = index.snapshot()
    return encodeMessage({ type: MessageType.Summary, count: snapshot.size, digest: snapshot.digest(0, snapshot.size), peers: peers.sample(tuning.peersPerSummary) })
  }

  async function finish (peer: string, startedMs: number, theirs: IndexEntry[], why: 'join' | 'interval' | 'answer'): Promise<void> {
    const wants = theirs.filter(acceptor.wants)
    if (wants.length > 0) {
      unsettled()
      await fetch.fetch(peer, wants)
    } else if (why === 'interval') {
      intervalMs = Math.min(intervalMs * 2, tuning.pushPullMaxIntervalMs)
    }
    stats.rounds++
    stats.lastRoundAtMs = clock.nowMs()
    stats.lastRoundMs = stats.lastRoundAtMs - startedMs
    events.emit('round', { peer, durationMs: stats.lastRoundMs })
  }

  /** The initiator: optionally a Summary each way, then it opens the reconciliation. */
  async function round (peer: string, introduce = false, why: 'join' | 'interval' = 'join'): Promise<void> {
    const startedMs = clock.nowMs()
    const ch = await transport.open(peer, PROTOCOL_PUSH_PULL)
    let theirs: IndexEntry[]
    try {
      if (introduce) {
        await ch.send(summary())
        peers.learn(expectType(await readMessage(ch), MessageType.Summary).peers, peer)
      }
      theirs = await reconcileOver(ch, createReconciler({ index: index.snapshot(), role: 'initiator' }), 'initiator')
      await ch.close()
    } catch (err) {
      ch.abort(err as Error)
      throw err
    }
    await finish(peer, startedMs, theirs, why)
  }

  /** The responder: answers a Summary if one comes first, then the reconciliation. */
  async function respond (ch: Channel): Promise<void> {
    const startedMs = clock.nowMs()
    let first = await ch.read()
    if (first !== undefined && first[0] === MessageType.Summary) {
      peers.learn(expectType(decodeMessage(first), MessageType.Summary).peers, ch.peer)
      await ch.send(summary())
      first = await ch.read()
    }
    if (first === undefined) throw new DmError('ERR_DECODE', 'stream ended before reconciliation')
    const theirs = await reconcileOver(ch, createReconciler({ index: index.snapshot(), role: 'responder' }), 'responder', first)
    await ch.close()
    await finish(ch.peer, startedMs, theirs, 'answer')
  }

  function enqueue (peer: string, why: 'join' | 'interval'): void {
    if (!running) return
    // A join round swaps members; so does an interval round while this node knows too few to choose from.
    const introduce = why === 'join' || peers.wantsIntroductions()
    void queued.add(async () => await round(peer, introduce, why))
      .catch(err => log.debug({ peer, why, err: describeError(err) }, 'push-pull failed'))
  }

  /**
   * The interval: pushPullIntervalMs while versions change, doubled by each
   * round of this node's that finds nothing to fetch, up to
   * pushPullMaxIntervalMs. A version accepted here, or a round that finds one
   * to fetch, brings it back: after a publish, every node that got the push
   * runs rounds at the short interval, so one that missed it is found as soon
   * as before, while an idle fleet pays for few rounds.
   */
  let intervalMs = tuning.pushPullIntervalMs
  let nextRoundAtMs = Infinity

  function unsettled (): void {
    if (intervalMs === tuning.pushPullIntervalMs) return
    intervalMs = tuning.pushPullIntervalMs
    if (running && nextRoundAtMs > clock.nowMs() + intervalMs * 1.25) {
      cancelTimer()
      schedule()
    }
  }

  /** One round with a random peer per interval, jittered by ±25 % so a fleet does not beat in step. */
  function schedule (): void {
    const waitMs = intervalMs * (0.75 + random() / 2)
    nextRoundAtMs = clock.nowMs() + waitMs
    cancelTimer = clock.after(waitMs, () => {
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
      acceptor.events.on('accepted', unsettled)
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
