import PQueue from 'p-queue'
import type { Tuning } from '../config/tuning.js'
import { DmError, describeError } from '../errors.js'
import { printable } from '../format/names.js'
import { compareVersions, hex, type SignedVersion } from '../format/version.js'
import {
  MAX_WANT_ENTRIES, MessageType, PROTOCOL_FETCH, encodeMessage, expectType, type IndexEntry
} from '../protocol/messages.js'
import type { Store } from '../store/store.js'
import type { Clock } from '../util/clock.js'
import type { Log } from '../util/log.js'
import { transferReceived } from '../util/transfer-gc.js'
import { STAGE_ABOVE_BYTES, type Acceptor } from './acceptor-api.js'
import { createFetchServer } from './fetch-server.js'
import type { Relays } from './relay.js'
import { guarded, readMessage, streamFailed } from './streams.js'
import type { Channel, Transport } from './transport.js'

/*
 * FetchService: content that did not ride in a push. The client asks a peer
 * for versions (Want), checks each header before reading its content, and
 * falls back on other peers that announced the same version. The server
 * (fetch-server.ts) answers Wants. Both are bounded per peer and in total.
 */

/** A version to fetch: its name, id and timestamp (what the answer must at least match). */
export type Want = IndexEntry

export interface FetchService {
  /** Serves the fetch protocol. */
  start: () => Promise<void>
  /** Drops waiting fetches; fetches under way finish or fail on their own. */
  stop: () => void
  /** Fetches `wants` from `peer`; resolves once each was delivered or every source failed. Never rejects. */
  fetch: (peer: string, wants: Want[]) => Promise<void>
  /** Whether a version is being fetched; `peer` is then kept as another source for it. */
  note: (id: Uint8Array, peer: string) => boolean
}

export interface FetchComponents {
  transport: Transport
  acceptor: Acceptor
  store: Store
  /** Versions being received here, served onward before their commit. */
  relays: Relays
  clock: Clock
  log: Log
}

type FetchTuning = Pick<Tuning, 'maxParallelFetches' | 'maxParallelCommits' | 'maxFetchesPerPeer' | 'maxQueuedFetchesPerPeer' |
'maxAlternateSources' | 'minTransferBytesPerS' | 'transferGraceMs'>

export function createFetchService (components: FetchComponents, tuning: FetchTuning): FetchService {
  const { transport, acceptor, store, relays, clock, log } = components
  const fetches = new PQueue({ concurrency: tuning.maxParallelFetches })
  const commits = new PQueue({ concurrency: tuning.maxParallelCommits })
  const perPeer = new Map<string, PQueue>()
  /** Versions being fetched (by id), each with other peers that announced it, to fall back on. */
  const alternates = new Map<string, Set<string>>()

  async function fetch (peer: string, wants: Want[]): Promise<void> {
    const fresh = wants.filter(w => !alternates.has(hex(w.id)))
    for (let i = 0; i < fresh.length; i += MAX_WANT_ENTRIES) {
      const batch = fresh.slice(i, i + MAX_WANT_ENTRIES)
      batch.forEach(w => alternates.set(hex(w.id), new Set()))
      try {
        await queueFor(peer).add(async () => await fetches.add(async () => await fetchBatch(peer, batch)))
      } catch (err) {
        streamFailed(log, peer, 'fetch', err)
      }
      const fallback = fallbackSources(batch, peer)
      await Promise.allSettled([...fallback].map(async ([alt, ws]) => await fetch(alt, ws)))
    }
  }

  /** Per-peer queue: a few batches at once, a bounded number waiting. */
  function queueFor (peer: string): PQueue {
    let q = perPeer.get(peer)
    if (q === undefined) {
      const created = new PQueue({ concurrency: tuning.maxFetchesPerPeer })
      created.on('idle', () => { if (created.size === 0 && created.pending === 0) perPeer.delete(peer) })
      perPeer.set(peer, created)
      q = created
    }
    if (q.size >= tuning.maxQueuedFetchesPerPeer) throw new DmError('ERR_BUSY', `too many fetches queued for ${peer}; the next round asks again`)
    return q
  }

  /** Clears the in-flight marks of a finished batch; returns what is still missing, grouped by an alternate source. */
  function fallbackSources (batch: Want[], failed: string): Map<string, Want[]> {
    const out = new Map<string, Want[]>()
    for (const w of batch) {
      const key = hex(w.id)
      const others = [...(alternates.get(key) ?? [])].filter(p => p !== failed)
      alternates.delete(key)
      if (!acceptor.wants(w) || others.length === 0) continue
      out.set(others[0], [...(out.get(others[0]) ?? []), w])
    }
    return out
  }

  async function fetchBatch (peer: string, batch: Want[]): Promise<void> {
    const asked = new Map(batch.map(w => [w.name, w]))
    /** Commits of this batch not yet finished: at most maxParallelCommits, so received content waiting for the disk stays bounded. */
    const pending = new Set<Promise<unknown>>()
    const commit = (job: () => Promise<unknown>): void => {
      const p = commits.add(job).finally(() => pending.delete(p))
      pending.add(p)
    }
    /**
     * Checks an answer's header before its content is read: asked for, not
     * older than asked, and accepted; returns its id. Undefined for an honest race (someone
     * else delivered it first), whose content is read past; any other refusal
     * costs the peer its stream.
     */
    const admit = (v: SignedVersion): Uint8Array | undefined => {
      const want = asked.get(v.name)
      if (want === undefined) throw new DmError('ERR_DECODE', `peer sent "${printable(v.name)}", which was not asked for`)
      asked.delete(v.name)
      const header = acceptor.check(v)
      if (header.ok && compareVersions({ timestampMs: v.timestampMs, id: header.id }, want) < 0) {
        throw new DmError('ERR_DECODE', `peer answered "${printable(v.name)}" with an older version than the one asked for`)
      }
      if (header.ok) return header.id
      acceptor.refuse(v, header, peer)
      if (header.code !== 'ERR_ALREADY_HELD' && header.code !== 'ERR_STALE') throw new DmError('ERR_DECODE', `peer offered ${header.code === 'ERR_TOO_LARGE' ? 'oversized content' : 'a refused version'} (${header.code})`)
      return undefined
    }
    const ch = await transport.open(peer, PROTOCOL_FETCH)
    try {
      await ch.send(encodeMessage({ type: MessageType.Want, entries: batch.map(w => ({ name: w.name, id: w.id })) }))
      for (let answered = 0; answered < batch.length;) {
        while (pending.size >= tuning.maxParallelCommits) await Promise.race(pending)
        const m = await readMessage(ch)
        if (m.type === MessageType.Versions) {
          // Small versions with their content, several to a frame: one frame's worth beyond the window at most.
          answered += m.answers.length
          for (const { version, content } of m.answers) if (admit(version) !== undefined) commit(async () => await acceptor.ingest(version, content, peer))
          continue
        }
        answered++
        if (m.type === MessageType.NotFound) continue
        const v = expectType(m, MessageType.Version).version
        const id = admit(v)
        if (id === undefined) {
          await readContent(ch, v.size, () => {})
        } else if (v.size <= STAGE_ABOVE_BYTES) {
          const content = Buffer.allocUnsafe(v.size)
          let at = 0
          await readContent(ch, v.size, chunk => { content.set(chunk, at); at += chunk.length })
          commit(async () => await acceptor.ingest(v, content, peer))
        } else {
          // Written to staging/ as it arrives, hashed on the way: never whole in memory, never read back;
          // served onward from there as it lands (relay.ts), before our own commit.
          const staged = await store.stage()
          const end = await relays.begin(v, id, staged).catch(() => () => {})
          try {
            await readContent(ch, v.size, async chunk => await staged.write(chunk).catch(err => {
              // Our disk, not the peer: a full or failing disk must be reported as such.
              throw new DmError('ERR_STORE_IO', `cannot store "${printable(v.name)}": ${describeError(err)}`, { cause: err })
            }))
          } catch (err) {
            await staged.discard()
            end()
            throw err
          }
          commit(async () => await acceptor.ingestStaged(v, staged, peer).finally(end))
          transferReceived()
        }
      }
      await ch.close()
    } catch (err) {
      ch.abort(err as Error)
      throw err
    } finally {
      await Promise.allSettled([...pending])
    }
  }

  /**
   * Reads exactly `size` bytes of chunks, at a minimum average rate, handing
   * each to `take` before reading the next (back-pressure: the disk paces the
   * peer). A peer that sends more or trickles is cut off.
   */
  async function readContent (ch: Channel, size: number, take: (chunk: Uint8Array) => void | Promise<void>): Promise<void> {
    const deadline = clock.nowMs() + tuning.transferGraceMs + (size / tuning.minTransferBytesPerS) * 1000
    let got = 0
    while (got < size) {
      const chunk = expectType(await readMessage(ch), MessageType.Chunk).data
      if (chunk.length === 0 || got + chunk.length > size) throw new DmError('ERR_DECODE', 'peer sent more content than signed')
      if (clock.nowMs() > deadline) throw new DmError('ERR_TIMEOUT', `transfer of ${size} bytes too slow`)
      await take(chunk)
      got += chunk.length
    }
  }

  return {
    async start () {
      await transport.handle(PROTOCOL_FETCH, guarded(log, 'fetch', createFetchServer({ acceptor, store, relays })))
    },
    stop () {
      fetches.clear()
      for (const q of perPeer.values()) q.clear()
    },
    fetch,
    note (id, peer) {
      const others = alternates.get(hex(id))
      if (others === undefined) return false
      if (others.size < tuning.maxAlternateSources) others.add(peer)
      return true
    }
  }
}
