import type { Tuning } from '../config/tuning.js'
import { DmError, describeError } from '../errors.js'
import { printable } from '../format/names.js'
import { hex, isExpired, versionId, VersionKind, type SignedVersion } from '../format/version.js'
import {
  advertisable, checkContent, checkDigest, checkHeader, effectiveHeld, isListed, supersedes,
  type PolicyContext, type Refusal, type Verdict
} from '../policy/accept.js'
import type { StagedContent } from '../store/staged.js'
import type { HeldEntry } from '../store/store.js'
import { Events } from '../util/events.js'
import { NO_REVOCATIONS, type RevocationList } from '../policy/revocation.js'
import { isNodeReportName } from '../policy/node-reports.js'
import { MAX_INLINE_BYTES } from '../protocol/messages.js'
import { receiveContent } from './content.js'
import { LOCAL_SOURCE, STAGE_ABOVE_BYTES, type Acceptor, type AcceptorComponents, type AcceptorEvents, type IncomingContent, type IngestResult, type PolicyConfig } from './acceptor-api.js'

/*
 * The Acceptor: the one way a version gets into the store, from any source
 * (local API, push, fetch). It applies the acceptance policy with the current
 * allowlist, serialises duplicates, commits, and tells the other services
 * what happened through its events.
 */

/** Versions remembered as blocked by the local disk layout; beyond this they are simply retried. */
const MAX_BLOCKED = 1024

const EMPTY = new Uint8Array(0)

export function createAcceptor (components: AcceptorComponents, init: { policy: PolicyConfig, tuning: Pick<Tuning, 'expirySweepMs'> }): Acceptor {
  const { store, relays, clock, log } = components
  const events = new Events<AcceptorEvents>()
  let policy = init.policy
  /** Version ids being ingested, so the same version arriving from many peers at once costs one commit. */
  const inflight = new Set<string>()
  /**
   * Versions the store cannot take until the operator acts (a name whose path
   * an older [files] layout still occupies, an unsafe state_dir): not fetched
   * again every round. Forgotten on reload, when the operator may have fixed it.
   */
  const blocked = new Set<string>()
  /** Commits under way, which stop() waits for. */
  const commits = new Set<Promise<unknown>>()
  let cancelSweep = (): void => {}
  let running = false

  /** The fleet-wide revocation list in force: kept apart from the config's policy, so a reload does not drop it. */
  let revocations: RevocationList = NO_REVOCATIONS
  /** The policy and the revocation list as one object, made again only when either changes (it is read several times per version). */
  let inForce: PolicyConfig = { ...policy, revocations }
  const rules = (): PolicyConfig => inForce
  const ctx = (): PolicyContext => ({ ...rules(), nowMs: clock.nowMs() })
  const held = (name: string): HeldEntry | undefined => effectiveHeld(rules(), store.get(name))

  /** Bumped whenever the policy or the revocation list changes: header passes from before no longer count. */
  let epoch = 0
  /** Versions whose header passed check(), with the epoch it passed in (keyed by object: a fetch checks, then ingests). */
  const passed = new WeakMap<SignedVersion, { epoch: number, verdict: Verdict }>()

  function check (v: SignedVersion): Verdict {
    const verdict = checkHeader(v, held(v.name), ctx())
    if (verdict.ok) passed.set(v, { epoch, verdict })
    return verdict
  }

  /**
   * The header verdict for ingesting `v`: a pass from check() under the same
   * policy stands (the signature cannot change; the clock only moves forward,
   * so a timestamp that was not in the future still is not; ordering against
   * what is held is decided again by the store's compare-and-set at commit).
   */
  function headerFor (v: SignedVersion): Verdict {
    const before = passed.get(v)
    passed.delete(v)
    const now = ctx()
    const current = held(v.name)
    const stands = before !== undefined && before.epoch === epoch && before.verdict.ok &&
      !isExpired(v, now.nowMs) && supersedes({ timestampMs: v.timestampMs, id: before.verdict.id }, current)
    return stands ? before.verdict : checkHeader(v, current, now)
  }

  function refuse (v: SignedVersion, r: Refusal, source: string): Refusal {
    events.emit('refused', { code: r.code, source, version: v })
    const fields = { name: v.name, signer: Buffer.from(v.signer).toString('base64'), timestampMs: v.timestampMs, source, code: r.code, reason: r.reason }
    // Duplicates arrive from every neighbour during a flood: expected, not news.
    if (r.code === 'ERR_ALREADY_HELD') log.debug(fields, 'version refused')
    else log.warn(fields, 'version refused')
    return r
  }

  /** The version is being stored already (the same version from many peers at once): dropped before any signature check. */
  function duplicate (v: SignedVersion, key: string, source: string): Refusal | undefined {
    if (!inflight.has(key)) return undefined
    return refuse(v, { ok: false, code: 'ERR_ALREADY_HELD', reason: `this version of "${printable(v.name)}" is being stored`, retryable: false }, source)
  }

  /** The version's id as a map key; from check()'s pass when there is one (hashing the signed bytes costs too). */
  const keyOf = (v: SignedVersion): string => {
    const before = passed.get(v)?.verdict
    return hex(before?.ok === true ? before.id : versionId(v))
  }

  async function ingest (v: SignedVersion, content: IncomingContent, source: string): Promise<IngestResult> {
    const key = keyOf(v)
    const dup = duplicate(v, key, source)
    if (dup !== undefined) return dup
    const header = headerFor(v)
    if (!header.ok) return refuse(v, header, source)
    inflight.add(key)
    let staged: StagedContent | undefined
    let endRelay = (): void => {}
    try {
      if (content instanceof Uint8Array) return await checkAndCommit(v, header.id, content, undefined, source)
      if (v.size > STAGE_ABOVE_BYTES) {
        staged = await store.stage()
        endRelay = await relays?.begin(v, header.id, staged).catch(() => endRelay) ?? endRelay
      }
      const received = await receiveContent(v, content, staged)
      if (!received.ok) {
        await staged?.discard()
        return refuse(v, received, source)
      }
      return await checkAndCommit(v, header.id, received.bytes, staged, source)
    } catch (err) {
      await staged?.discard()
      return storeFailed(v, key, err, source)
    } finally {
      endRelay()
      inflight.delete(key)
    }
  }

  async function ingestStaged (v: SignedVersion, staged: StagedContent, source: string): Promise<IngestResult> {
    const key = keyOf(v)
    const dup = duplicate(v, key, source)
    const header = dup ?? headerFor(v)
    if (!header.ok) {
      await staged.discard()
      return dup ?? refuse(v, header, source)
    }
    inflight.add(key)
    try {
      return await checkAndCommit(v, header.id, EMPTY, staged, source)
    } catch (err) {
      return storeFailed(v, key, err, source)
    } finally {
      inflight.delete(key)
    }
  }

  /**
   * The content rules (11, 12), then the commit. `content` is the bytes in
   * memory, or empty when `staged` holds them (checked by its size and hash,
   * never read back). Owns `staged` and the caller's inflight mark.
   */
  async function checkAndCommit (v: SignedVersion, id: Uint8Array, content: Uint8Array, staged: StagedContent | undefined, source: string): Promise<IngestResult> {
    const body = staged === undefined ? checkContent(v, content) : checkDigest(v, staged.size, staged.sha256())
    if (!body.ok) {
      await staged?.discard()
      return refuse(v, body, source)
    }
    // Sent on while the commit's fsyncs run when peers can get the content from here meanwhile:
    // inline content from a peer, larger content from its relay. A small local publish waits for
    // its commit: a failed one never spreads, and at 30 daemons on 2 cores sending it first made
    // its peers' work slow the commit and the publish (all 30: 516 ms, against 407 ms waiting).
    const early = (v.size <= MAX_INLINE_BYTES && source !== LOCAL_SOURCE) || relays?.has(id) === true
    if (early) events.emit('servable', { version: v, content, source })
    const candidate = { timestampMs: v.timestampMs, id }
    const opts = { id, replaces: (h: HeldEntry | undefined) => supersedes(candidate, effectiveHeld(rules(), h)) }
    const commit = staged !== undefined ? store.commitStaged(v, staged, opts) : store.commit(v, content, opts)
    commits.add(commit)
    const committed = await commit.finally(() => commits.delete(commit)).then(r => r.committed, err => {
      if (!early) throw err
      // Sent on already: a failed commit here does not mean it did not spread.
      throw new DmError(err instanceof DmError ? err.code : 'ERR_STORE_IO', `${describeError(err)} (it passed every check and may have reached peers already)`, { cause: err })
    })
    if (!committed) {
      // Another version of this name was stored while this one was checked: say which way it went.
      const winner = store.get(v.name)
      const same = winner !== undefined && Buffer.from(winner.id).equals(id)
      return refuse(v, same
        ? { ok: false, code: 'ERR_ALREADY_HELD', reason: `this version of "${printable(v.name)}" is already held`, retryable: false }
        : { ok: false, code: 'ERR_STALE', reason: `a newer version of "${printable(v.name)}" was stored first`, retryable: false }, source)
    }
    const entry = store.get(v.name) as HeldEntry
    // Node reports arrive from every node on every change: news only when debugging.
    log[isNodeReportName(v.name) ? 'debug' : 'info']({ name: v.name, signer: Buffer.from(v.signer).toString('base64'), timestampMs: v.timestampMs, size: v.size, source, tombstone: v.kind === VersionKind.Tombstone }, 'version accepted')
    events.emit('accepted', { entry, content, source })
    if (!early) events.emit('servable', { version: v, content, source })
    return { ok: true }
  }

  function storeFailed (v: SignedVersion, key: string, err: unknown, source: string): Refusal {
    const code = err instanceof DmError ? err.code : 'ERR_STORE_IO'
    if (code === 'ERR_NAME_COLLISION' || code === 'ERR_STATE_DIR_UNSAFE') {
      // The store has said why, once; retrying cannot help until the operator acts.
      if (blocked.size < MAX_BLOCKED) blocked.add(key)
      log.debug({ name: v.name, source, code }, 'version cannot be stored here')
      return { ok: false, code, reason: describeError(err), retryable: false }
    }
    log.error({ name: v.name, source, code, err: describeError(err) }, 'cannot store version')
    return { ok: false, code: 'ERR_STORE_IO', reason: describeError(err), retryable: true }
  }

  async function expire (): Promise<void> {
    const names = await store.expire()
    for (const name of names) log.info({ name }, 'version expired; file removed')
    if (names.length === 0) return
    events.emit('expired', { entries: names.map(n => store.get(n)).filter((e): e is HeldEntry => e !== undefined) })
    events.emit('changed', undefined)
  }

  return {
    events,
    start () {
      running = true
      const tick = (): void => {
        if (!running) return
        cancelSweep = clock.after(init.tuning.expirySweepMs, () => {
          expire().catch(err => log.error({ err: describeError(err) }, 'cannot remove expired files')).finally(tick)
        })
      }
      tick()
    },
    async stop () {
      running = false
      cancelSweep()
      // Writes already under way finish; each is atomic, so even a kill here loses nothing.
      await Promise.allSettled([...commits])
      await store.flush()
    },
    setRevocations (list) {
      revocations = list
      inForce = { ...policy, revocations }
      epoch++
      events.emit('revoked', { list })
      events.emit('changed', undefined)
    },
    setPolicy (next) {
      policy = next
      inForce = { ...policy, revocations }
      epoch++
      blocked.clear()
      events.emit('changed', undefined)
    },
    listed: name => isListed(rules(), name),
    held,
    check,
    wants: e => isListed(rules(), e.name) && supersedes(e, held(e.name)) && !blocked.has(hex(e.id)),
    advertised: e => advertisable(ctx(), e),
    ingest,
    ingestStaged,
    refuse
  }
}
