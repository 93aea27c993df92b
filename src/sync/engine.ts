import PQueue from 'p-queue'
import { DmError, describeError } from '../errors.js'
import { printable } from '../format/names.js'
import { compareVersions, hex, versionId, VersionKind, type SignedVersion } from '../format/version.js'
import { checkContent, checkHeader, signerAllowed, type PolicyContext, type Refusal, type Verdict } from '../policy/accept.js'
import {
  CHUNK_BYTES, MAX_INLINE_BYTES, MAX_WANT_ENTRIES, MessageType, PROTOCOL_FETCH, PROTOCOL_PUSH, PROTOCOL_PUSH_PULL,
  decodeMessage, encodeMessage, expectType, type IndexEntry, type Message, type PeerInfo
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
/** Pushes waiting to be sent to one peer; beyond this new pushes are dropped (push-pull repairs). */
const MAX_QUEUED_PUSHES_PER_PEER = 256
/**
 * A push stream stays open this long after its last frame, so a burst of
 * versions, and a flood's forwards, share one stream: opening a libp2p stream
 * costs far more CPU than the frame. Below the receiver's 15 s frame timeout,
 * so an idle stream is closed by its sender rather than cut by its receiver.
 */
const PUSH_STREAM_IDLE_MS = 5000
/** Fetch batches one peer may have running at once, so one peer cannot hold every fetch slot. */
const MAX_FETCHES_PER_PEER = 1
/** Fetch batches that may wait for one peer; beyond this, wants are dropped until the next round. */
const MAX_QUEUED_FETCHES_PER_PEER = 32
/** Other peers remembered as sources of a version being fetched, tried in turn if the first fails. */
const MAX_ALTERNATE_SOURCES = 8
/** A transfer must average at least this rate (after a grace period), or it is cut: no trickling. */
const MIN_TRANSFER_BYTES_PER_S = 256 * 1024
const TRANSFER_GRACE_MS = 10_000

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

/** A version to fetch: its name, id and timestamp (what the answer must at least match). */
type Want = IndexEntry

interface PushSession {
  channel: Channel | undefined
  queue: PQueue
  idle: NodeJS.Timeout | undefined
}

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
  const peerFetches = new Map<string, PQueue>()
  const commits = new PQueue({ concurrency: MAX_PARALLEL_COMMITS })
  /** One outbound push stream per peer, with its send queue. */
  const pushSessions = new Map<string, PushSession>()
  /** Version ids being ingested or fetched, so duplicates arriving from many peers cost nothing. */
  const inflight = new Set<string>()
  /** For versions being fetched: other peers that announced them, to fall back on. */
  const alternates = new Map<string, Set<string>>()
  let advertised: { entries: IndexEntry[], digest: Uint8Array } | undefined

  const ctx = (): PolicyContext => ({ ...init.policy, nowMs: clock.nowMs() })

  /** A held version whose signer is no longer listed is revoked: it neither blocks nor is offered. */
  const revoked = (held: HeldEntry): boolean => !signerAllowed(init.policy, held.name, held.version.signer)

  /** What is held for ordering purposes: nothing, if the held version was revoked. */
  function heldFor (name: string): HeldEntry | undefined {
    const held = store.get(name)
    return held !== undefined && !revoked(held) ? held : undefined
  }

  /** The header verdict against what is held; a held version whose content went missing may be fetched again. */
  function precheck (v: SignedVersion): Verdict {
    const held = heldFor(v.name)
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
      committed = (await store.commit(v, content, { revoked })).committed
    } catch (err) {
      log.error({ name: v.name, source, code: (err as DmError).code, err: describeError(err) }, 'cannot store version; it will be fetched again')
      return { ok: false, code: 'ERR_STORE_IO', reason: describeError(err), retryable: true }
    } finally {
      inflight.delete(key)
    }
    if (!committed) {
      // Another version of this name was stored while this one was checked: say which way it went.
      const winner = store.get(v.name)
      const same = winner !== undefined && Buffer.from(winner.id).equals(header.id)
      return refused(v, same
        ? { ok: false, code: 'ERR_ALREADY_HELD', reason: `this version of "${printable(v.name)}" is already held`, retryable: false }
        : { ok: false, code: 'ERR_STALE', reason: `a newer version of "${printable(v.name)}" was stored first`, retryable: false }, source)
    }
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
    for (const peer of targets) pushTo(peer, frame)
  }

  function pushTo (peer: string, frame: Uint8Array): void {
    let session = pushSessions.get(peer)
    if (session === undefined) {
      session = { channel: undefined, queue: new PQueue({ concurrency: 1 }), idle: undefined }
      pushSessions.set(peer, session)
    }
    if (session.queue.size >= MAX_QUEUED_PUSHES_PER_PEER) return
    const s = session
    void s.queue.add(async () => {
      clearTimeout(s.idle)
      try {
        s.channel ??= await transport.open(peer, PROTOCOL_PUSH)
        await s.channel.send(frame)
      } catch {
        // The peer may have closed or reset the stream: once more, on a fresh one.
        s.channel?.abort(new Error('push stream failed'))
        s.channel = await transport.open(peer, PROTOCOL_PUSH)
        await s.channel.send(frame)
      }
      s.idle = setTimeout(() => endPushSession(peer, s), PUSH_STREAM_IDLE_MS)
      s.idle.unref()
    }).catch(err => {
      s.channel = undefined
      log.debug({ peer, err: describeError(err) }, 'push failed')
    })
  }

  function endPushSession (peer: string, s: PushSession): void {
    if (pushSessions.get(peer) !== s || s.queue.size > 0 || s.queue.pending > 0) return
    pushSessions.delete(peer)
    void s.channel?.close().catch(() => {})
  }

  /** Reads one frame and decodes it; end-of-stream is an error where a message is required. */
  async function readMessage (ch: Channel): Promise<ReturnType<typeof decodeMessage>> {
    const frame = await ch.read()
    if (frame === undefined) throw new DmError('ERR_DECODE', 'stream ended early')
    return decodeMessage(frame)
  }

  /** A push stream carries Push frames until its sender closes it. */
  async function handlePush (ch: Channel): Promise<void> {
    for (let frame = await ch.read(); frame !== undefined; frame = await ch.read()) {
      await receivePush(expectType(decodeMessage(frame), MessageType.Push), ch.peer)
    }
    await ch.close()
  }

  /** Inline content is stored before the next frame is read (backpressure); larger content is fetched meanwhile. */
  async function receivePush (m: Extract<Message, { type: MessageType.Push }>, peer: string): Promise<void> {
    const v = m.version
    if (m.content !== undefined) {
      if (inflight.has(hex(versionId(v)))) return
      await ingest(v, m.content, peer)
      return
    }
    const header = precheck(v)
    if (!header.ok) { refused(v, header, peer); return }
    const key = hex(header.id)
    const others = alternates.get(key)
    if (others !== undefined) {
      // Already being fetched from someone else: keep this peer in reserve in case that one stalls.
      if (others.size < MAX_ALTERNATE_SOURCES) others.add(peer)
      return
    }
    void fetchFrom(peer, [{ name: v.name, id: header.id, timestampMs: v.timestampMs }]).catch(() => {})
  }

  /**
   * Fetches the wanted versions from `peer`, checking each header before
   * reading its content. Versions it fails to deliver are tried from the other
   * peers that announced them meanwhile.
   */
  async function fetchFrom (peer: string, wants: Want[]): Promise<void> {
    const fresh = wants.filter(w => !alternates.has(hex(w.id)))
    for (let i = 0; i < fresh.length; i += MAX_WANT_ENTRIES) {
      const batch = fresh.slice(i, i + MAX_WANT_ENTRIES)
      batch.forEach(w => alternates.set(hex(w.id), new Set()))
      let fallback = new Map<string, Want[]>()
      try {
        await queueFor(peer).add(async () => await fetches.add(async () => await fetchBatch(peer, batch)))
      } catch (err) {
        streamFailed(peer, 'fetch', err)
      } finally {
        fallback = fallbackSources(batch, peer)
      }
      await Promise.allSettled([...fallback].map(async ([alt, ws]) => await fetchFrom(alt, ws)))
    }
  }

  /** Per-peer queue: at most MAX_FETCHES_PER_PEER batches at once, a bounded number waiting. */
  function queueFor (peer: string): PQueue {
    let q = peerFetches.get(peer)
    if (q === undefined) {
      q = new PQueue({ concurrency: MAX_FETCHES_PER_PEER })
      peerFetches.set(peer, q)
      q.on('idle', () => { if (q?.size === 0 && q.pending === 0) peerFetches.delete(peer) })
    }
    if (q.size >= MAX_QUEUED_FETCHES_PER_PEER) throw new DmError('ERR_API', `too many fetches queued for ${peer}`)
    return q
  }

  /** Clears the in-flight marks of a finished batch; returns what is still missing, grouped by an alternate source. */
  function fallbackSources (batch: Want[], failed: string): Map<string, Want[]> {
    const out = new Map<string, Want[]>()
    for (const w of batch) {
      const key = hex(w.id)
      const others = [...(alternates.get(key) ?? [])].filter(p => p !== failed)
      alternates.delete(key)
      const held = store.get(w.name)
      const satisfied = held !== undefined && held.present && compareVersions(held, w) >= 0
      if (satisfied || others.length === 0) continue
      const alt = others[0]
      out.set(alt, [...(out.get(alt) ?? []), w])
    }
    return out
  }

  async function fetchBatch (peer: string, batch: Want[]): Promise<void> {
    const asked = new Map(batch.map(w => [w.name, w]))
    const pending: Array<Promise<unknown>> = []
    const ch = await transport.open(peer, PROTOCOL_FETCH)
    try {
      await ch.send(encodeMessage({ type: MessageType.Want, entries: batch.map(w => ({ name: w.name, id: w.id })) }))
      for (let answered = 0; answered < batch.length; answered++) {
        const m = await readMessage(ch)
        if (m.type === MessageType.NotFound) continue
        const v = expectType(m, MessageType.Version).version
        const want = asked.get(v.name)
        if (want === undefined) throw new DmError('ERR_DECODE', `peer sent "${printable(v.name)}", which was not asked for`)
        asked.delete(v.name)
        const header = precheck(v)
        if (header.ok && compareVersions({ timestampMs: v.timestampMs, id: header.id }, want) < 0) {
          throw new DmError('ERR_DECODE', `peer answered "${printable(v.name)}" with an older version than the one asked for`)
        }
        if (!header.ok) {
          refused(v, header, peer)
          // An honest race (someone else delivered it first) is read past; anything else costs the peer its stream.
          if (header.code !== 'ERR_ALREADY_HELD' && header.code !== 'ERR_STALE') throw new DmError('ERR_DECODE', `peer offered ${header.code === 'ERR_TOO_LARGE' ? 'oversized content' : 'a refused version'} (${header.code})`)
        }
        const content = await readContent(ch, v.size)
        if (header.ok) pending.push(commits.add(async () => await ingest(v, content, peer)))
      }
      await ch.close()
    } catch (err) {
      ch.abort(err as Error)
      throw err
    } finally {
      await Promise.allSettled(pending)
    }
  }

  /** Reads exactly `size` bytes of chunks, at a minimum average rate; a peer that sends more or trickles is cut off. */
  async function readContent (ch: Channel, size: number): Promise<Uint8Array> {
    const content = Buffer.allocUnsafe(size)
    const deadline = clock.nowMs() + TRANSFER_GRACE_MS + (size / MIN_TRANSFER_BYTES_PER_S) * 1000
    let got = 0
    while (got < size) {
      const chunk = expectType(await readMessage(ch), MessageType.Chunk).data
      if (chunk.length === 0 || got + chunk.length > size) throw new DmError('ERR_DECODE', 'peer sent more content than signed')
      if (clock.nowMs() > deadline) throw new DmError('ERR_DECODE', `transfer of ${size} bytes too slow`)
      content.set(chunk, got)
      got += chunk.length
    }
    return content
  }

  async function handleFetch (ch: Channel): Promise<void> {
    const want = expectType(await readMessage(ch), MessageType.Want)
    for (const w of want.entries) {
      const held = heldFor(w.name)
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
      for (const e of store.entries()) if (e.present && !isExpired(e.version, now) && !revoked(e)) entries.push({ name: e.name, timestampMs: e.timestampMs, id: e.id })
      advertised = { entries, digest: indexDigest(entries) }
    }
    return advertised
  }

  /** What the remote index holds that is newer than ours and that our allowlist admits. */
  function wantsFrom (theirs: IndexEntry[]): Want[] {
    const wants: Want[] = []
    for (const e of theirs) {
      if (!init.policy.allowlist.has(e.name)) continue
      const held = heldFor(e.name)
      const order = held === undefined ? 1 : compareVersions(e, held)
      if (order > 0 || (order === 0 && held?.present === false)) wants.push(e)
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
    let wants: Want[] = []
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

  /** A peer breaking the protocol is news (warn, with its code); a connection dropping mid-stream is not. */
  function streamFailed (peer: string, protocol: string, err: unknown): void {
    const code = err instanceof DmError ? err.code : undefined
    const fields = { peer, protocol, code, err: describeError(err) }
    if (code === 'ERR_DECODE') log.warn(fields, 'stream failed')
    else log.debug(fields, 'stream failed')
  }

  /** Wraps a handler so a misbehaving peer costs it its stream, never the daemon. */
  const guarded = (name: string, handler: (ch: Channel) => Promise<void>) => async (ch: Channel): Promise<void> => {
    try {
      await handler(ch)
    } catch (err) {
      ch.abort(err as Error)
      streamFailed(ch.peer, name, err)
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
