import PQueue from 'p-queue'
import { DmError, describeError } from '../errors.js'
import { printable } from '../format/names.js'
import { compareVersions, hex, MAX_CONTENT_BYTES, versionId, VersionKind, type SignedVersion } from '../format/version.js'
import { checkContent, checkHeader, type PolicyContext, type Refusal, type Verdict } from '../policy/accept.js'
import {
  CHUNK_BYTES, MAX_INLINE_BYTES, MAX_WANT_ENTRIES, MessageType, PROTOCOL_FETCH, PROTOCOL_PUSH, PROTOCOL_PUSH_PULL,
  decodeMessage, encodeMessage, expectType, type IndexEntry, type PeerInfo
} from '../protocol/messages.js'
import { isExpired, type HeldEntry, type Store } from '../store/store.js'
import { sample, systemClock, type Clock } from '../util/clock.js'
import { silentLog, type Log } from '../util/log.js'
import { indexDigest } from './digest.js'
import type { Channel, Transport } from './transport.js'

/*
 * The anti-entropy state machine, independent of libp2p:
 *  - ingest(): every version, from any source, goes through the acceptance
 *    policy and then the store; accepted versions are pushed on at once.
 *  - push (eager, fast path): a new version goes to `pushFanout` peers; small
 *    content rides along, larger content is fetched by the receiver.
 *  - push-pull (safety net): compare index digests with one peer; when they
 *    differ, swap indexes and each side fetches what the other holds newer.
 */

/** Sources other than a peer id. */
export const LOCAL_SOURCE = 'local'

/** Versions being fetched or checked at once; bounds memory to about this many times 10 MiB. */
const MAX_PARALLEL_FETCHES = 4
/** Commits in flight at once during a catch-up; fsyncs of different names overlap. */
const MAX_PARALLEL_COMMITS = 16
/** Pushes waiting to be sent; beyond this new pushes are dropped (push-pull repairs). */
const MAX_QUEUED_PUSHES = 1024

export interface PeerExchange {
  /** Up to n known members to tell a peer about. Must not block. */
  sample: (n: number) => PeerInfo[]
  /** Members a peer told us about; untrusted, the receiver bounds what it keeps. */
  learn: (peers: PeerInfo[], from: string) => void
}

export interface SyncEngineInit {
  store: Store
  transport: Transport
  policy: Omit<PolicyContext, 'nowMs'>
  pushFanout: number
  clock?: Clock
  random?: () => number
  log?: Log
  peers?: PeerExchange
  /** Called after each accepted version. Must not block. */
  onAccepted?: (entry: HeldEntry, source: string) => void
  /** Called after each refused version with its reason code. Must not block. */
  onRefused?: (code: string, source: string) => void
  /** Called after each completed push-pull round with its duration. Must not block. */
  onRound?: (durationMs: number) => void
}

export interface SyncStats {
  rounds: number
  lastRoundAtMs: number | undefined
  lastRoundMs: number | undefined
}

export type IngestResult = { ok: true, committed: boolean } | Refusal

export interface SyncEngine {
  /** Registers the protocol handlers. */
  start: () => Promise<void>
  /** Ingests a version from the local API. */
  publish: (version: SignedVersion, content: Uint8Array) => Promise<IngestResult>
  /** One push-pull round with `peer`. */
  pushPull: (peer: string) => Promise<void>
  /** Removes expired files; the advertised index changes with them. */
  expire: () => Promise<string[]>
  readonly stats: SyncStats
}

export function createSyncEngine (init: SyncEngineInit): SyncEngine {
  const { store, transport } = init
  const clock = init.clock ?? systemClock
  const random = init.random ?? Math.random
  const log = init.log ?? silentLog
  const stats: SyncStats = { rounds: 0, lastRoundAtMs: undefined, lastRoundMs: undefined }
  const fetches = new PQueue({ concurrency: MAX_PARALLEL_FETCHES })
  const commits = new PQueue({ concurrency: MAX_PARALLEL_COMMITS })
  const pushes = new PQueue({ concurrency: 8 })
  /** Version ids being ingested or fetched, so duplicates arriving from many peers cost nothing. */
  const inflight = new Set<string>()
  let advertised: { entries: IndexEntry[], digest: Uint8Array } | undefined

  const ctx = (): PolicyContext => ({ ...init.policy, nowMs: clock.nowMs() })

  /** The header verdict against what is held; a held version whose content went missing may be fetched again. */
  function precheck (v: SignedVersion): Verdict {
    const held = store.get(v.name)
    const verdict = checkHeader(v, held, ctx())
    if (!verdict.ok && verdict.code === 'ERR_ALREADY_HELD' && held !== undefined && !held.present) {
      return checkHeader(v, undefined, ctx())
    }
    return verdict
  }

  function refused (v: SignedVersion, r: Refusal, source: string): Refusal {
    init.onRefused?.(r.code, source)
    const fields = { name: v.name, signer: Buffer.from(v.signer).toString('base64'), timestampMs: v.timestampMs, source, code: r.code, reason: r.reason }
    // Duplicates arrive from every neighbour during a flood: expected, not news.
    if (r.code === 'ERR_ALREADY_HELD') log.debug(fields, 'version already held')
    else log.warn(fields, 'version refused')
    return r
  }

  async function ingest (v: SignedVersion, content: Uint8Array, source: string): Promise<IngestResult> {
    const header = precheck(v)
    if (!header.ok) return refused(v, header, source)
    const key = hex(header.id)
    const body = checkContent(v, content)
    if (!body.ok) return refused(v, body, source)
    inflight.add(key)
    // Small content travels inside the push, so it can go out while the commit's
    // fsyncs run: each hop then costs a network round, not a disk flush. Larger
    // content is fetched from us, so it is announced only once it can be served.
    const inline = v.size <= MAX_INLINE_BYTES
    if (inline) pushToPeers(v, content, source)
    let committed: boolean
    try {
      committed = (await store.commit(v, content)).committed
    } catch (err) {
      log.error({ name: v.name, source, code: (err as DmError).code, err: describeError(err) }, 'cannot store version; it will be fetched again')
      return { ok: false, code: 'ERR_STORE_IO', reason: describeError(err), retryable: true }
    } finally {
      inflight.delete(key)
    }
    if (!committed) return { ok: true, committed }
    advertised = undefined
    const entry = store.get(v.name) as HeldEntry
    log.info({ name: v.name, signer: Buffer.from(v.signer).toString('base64'), timestampMs: v.timestampMs, size: v.size, source, tombstone: v.kind === VersionKind.Tombstone }, 'version accepted')
    init.onAccepted?.(entry, source)
    if (!inline) pushToPeers(v, content, source)
    return { ok: true, committed }
  }

  function pushToPeers (v: SignedVersion, content: Uint8Array, source: string): void {
    const targets = sample(transport.connectedPeers().filter(p => p !== source), init.pushFanout, random)
    if (targets.length === 0) return
    const frame = encodeMessage({ type: MessageType.Push, version: v, content: v.size <= MAX_INLINE_BYTES ? content : undefined })
    for (const peer of targets) {
      if (pushes.size >= MAX_QUEUED_PUSHES) return
      void pushes.add(async () => {
        const ch = await transport.open(peer, PROTOCOL_PUSH)
        await ch.send(frame)
        await ch.close()
      }).catch(err => log.debug({ peer, err: describeError(err) }, 'push failed'))
    }
  }

  /** Reads one frame and decodes it; end-of-stream is an error where a message is required. */
  async function readMessage (ch: Channel): Promise<ReturnType<typeof decodeMessage>> {
    const frame = await ch.read()
    if (frame === undefined) throw new DmError('ERR_DECODE', 'stream ended early')
    return decodeMessage(frame)
  }

  async function handlePush (ch: Channel): Promise<void> {
    const m = expectType(await readMessage(ch), MessageType.Push)
    await ch.close()
    const v = m.version
    if (m.content !== undefined) {
      if (inflight.has(hex(versionId(v)))) return
      await ingest(v, m.content, ch.peer)
      return
    }
    const header = precheck(v)
    if (!header.ok) { refused(v, header, ch.peer); return }
    await fetchFrom(ch.peer, [{ name: v.name, id: header.id }])
  }

  /** Fetches the wanted versions from `peer`, checking each header before reading its content. */
  async function fetchFrom (peer: string, wants: Array<{ name: string, id: Uint8Array }>): Promise<void> {
    const fresh = wants.filter(w => !inflight.has(hex(w.id)))
    for (let i = 0; i < fresh.length; i += MAX_WANT_ENTRIES) {
      const batch = fresh.slice(i, i + MAX_WANT_ENTRIES)
      batch.forEach(w => inflight.add(hex(w.id)))
      try {
        await fetches.add(async () => await fetchBatch(peer, batch))
      } finally {
        batch.forEach(w => inflight.delete(hex(w.id)))
      }
    }
  }

  async function fetchBatch (peer: string, batch: Array<{ name: string, id: Uint8Array }>): Promise<void> {
    const asked = new Set(batch.map(w => w.name))
    const pending: Array<Promise<unknown>> = []
    const ch = await transport.open(peer, PROTOCOL_FETCH)
    try {
      await ch.send(encodeMessage({ type: MessageType.Want, entries: batch }))
      for (let answered = 0; answered < batch.length; answered++) {
        const m = await readMessage(ch)
        if (m.type === MessageType.NotFound) continue
        const v = expectType(m, MessageType.Version).version
        if (!asked.has(v.name)) throw new DmError('ERR_DECODE', `peer sent "${printable(v.name)}", which was not asked for`)
        asked.delete(v.name)
        const header = precheck(v)
        if (!header.ok && (header.code === 'ERR_TOO_LARGE' || v.size > MAX_CONTENT_BYTES)) {
          refused(v, header, peer)
          throw new DmError('ERR_DECODE', 'peer offered oversized content')
        }
        const content = await readContent(ch, v.size)
        if (!header.ok) { refused(v, header, peer); continue }
        pending.push(commits.add(async () => await ingest(v, content, peer)))
      }
      await ch.close()
    } catch (err) {
      ch.abort(err as Error)
      throw err
    } finally {
      await Promise.allSettled(pending)
    }
  }

  /** Reads exactly `size` bytes of chunks; a peer that sends more is cut off. */
  async function readContent (ch: Channel, size: number): Promise<Uint8Array> {
    const content = Buffer.allocUnsafe(size)
    let got = 0
    while (got < size) {
      const chunk = expectType(await readMessage(ch), MessageType.Chunk).data
      if (chunk.length === 0 || got + chunk.length > size) throw new DmError('ERR_DECODE', 'peer sent more content than signed')
      content.set(chunk, got)
      got += chunk.length
    }
    return content
  }

  async function handleFetch (ch: Channel): Promise<void> {
    const want = expectType(await readMessage(ch), MessageType.Want)
    for (const w of want.entries) {
      const held = store.get(w.name)
      const content = held === undefined ? undefined : held.version.kind === VersionKind.Tombstone ? new Uint8Array(0) : await store.readContent(w.name)
      if (held === undefined || content === undefined) {
        await ch.send(encodeMessage({ type: MessageType.NotFound, name: w.name }))
        continue
      }
      await ch.send(encodeMessage({ type: MessageType.Version, version: held.version }))
      for (let off = 0; off < content.length; off += CHUNK_BYTES) {
        await ch.send(encodeMessage({ type: MessageType.Chunk, data: content.subarray(off, off + CHUNK_BYTES) }))
      }
    }
    await ch.close()
  }

  function advertise (): { entries: IndexEntry[], digest: Uint8Array } {
    if (advertised === undefined) {
      const entries: IndexEntry[] = []
      const now = clock.nowMs()
      // Expired versions are not offered: peers would refuse them anyway.
      for (const e of store.entries()) if (e.present && !isExpired(e.version, now)) entries.push({ name: e.name, timestampMs: e.timestampMs, id: e.id })
      advertised = { entries, digest: indexDigest(entries) }
    }
    return advertised
  }

  /** What the remote index holds that is newer than ours and that our allowlist admits. */
  function wantsFrom (theirs: IndexEntry[]): Array<{ name: string, id: Uint8Array }> {
    const wants: Array<{ name: string, id: Uint8Array }> = []
    for (const e of theirs) {
      if (!init.policy.allowlist.has(e.name)) continue
      const held = store.get(e.name)
      const order = held === undefined ? 1 : compareVersions(e, held)
      if (order > 0 || (order === 0 && held?.present === false)) wants.push({ name: e.name, id: e.id })
    }
    return wants
  }

  function summary (): Uint8Array {
    const { entries, digest } = advertise()
    return encodeMessage({ type: MessageType.Summary, count: entries.length, digest, peers: init.peers?.sample(16) ?? [] })
  }

  function recordRound (startedMs: number): void {
    stats.rounds++
    stats.lastRoundAtMs = clock.nowMs()
    stats.lastRoundMs = stats.lastRoundAtMs - startedMs
    init.onRound?.(stats.lastRoundMs)
  }

  async function pushPull (peer: string): Promise<void> {
    const startedMs = clock.nowMs()
    const ch = await transport.open(peer, PROTOCOL_PUSH_PULL)
    let wants: Array<{ name: string, id: Uint8Array }> = []
    try {
      const mine = advertise()
      await ch.send(summary())
      const theirs = expectType(await readMessage(ch), MessageType.Summary)
      init.peers?.learn(theirs.peers, peer)
      if (!Buffer.from(theirs.digest).equals(mine.digest)) {
        const index = expectType(await readMessage(ch), MessageType.Index)
        await ch.send(encodeMessage({ type: MessageType.Index, entries: advertise().entries }))
        wants = wantsFrom(index.entries)
      }
      await ch.close()
    } catch (err) {
      ch.abort(err as Error)
      throw err
    }
    if (wants.length > 0) await fetchFrom(peer, wants)
    recordRound(startedMs)
  }

  async function handlePushPull (ch: Channel): Promise<void> {
    const startedMs = clock.nowMs()
    const theirs = expectType(await readMessage(ch), MessageType.Summary)
    init.peers?.learn(theirs.peers, ch.peer)
    const mine = advertise()
    await ch.send(summary())
    if (Buffer.from(theirs.digest).equals(mine.digest)) {
      await ch.close()
      recordRound(startedMs)
      return
    }
    await ch.send(encodeMessage({ type: MessageType.Index, entries: mine.entries }))
    const index = expectType(await readMessage(ch), MessageType.Index)
    await ch.close()
    const wants = wantsFrom(index.entries)
    if (wants.length > 0) await fetchFrom(ch.peer, wants)
    recordRound(startedMs)
  }

  /** Wraps a handler so a misbehaving peer costs it its stream, never the daemon. */
  const guarded = (name: string, handler: (ch: Channel) => Promise<void>) => async (ch: Channel): Promise<void> => {
    try {
      await handler(ch)
    } catch (err) {
      ch.abort(err as Error)
      log.debug({ peer: ch.peer, protocol: name, err: describeError(err) }, 'stream failed')
    }
  }

  return {
    stats,
    async start () {
      await transport.handle(PROTOCOL_PUSH, guarded('push', handlePush))
      await transport.handle(PROTOCOL_FETCH, guarded('fetch', handleFetch))
      await transport.handle(PROTOCOL_PUSH_PULL, guarded('push-pull', handlePushPull))
    },
    publish: async (v, content) => await ingest(v, content, LOCAL_SOURCE),
    async expire () {
      const names = await store.expire()
      if (names.length > 0) advertised = undefined
      for (const name of names) log.info({ name }, 'version expired; file removed')
      return names
    },
    pushPull
  }
}
