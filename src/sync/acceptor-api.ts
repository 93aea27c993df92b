import { MAX_INLINE_BYTES, type IndexEntry } from '../protocol/messages.js'
import type { PolicyContext, Refusal, Verdict } from '../policy/accept.js'
import type { RevocationList } from '../policy/revocation.js'
import type { Relays } from './relay.js'
import type { SignedVersion } from '../format/version.js'
import type { StagedContent } from '../store/staged.js'
import type { HeldEntry, Store } from '../store/store.js'
import type { Clock } from '../util/clock.js'
import type { Events } from '../util/events.js'
import type { Log } from '../util/log.js'

/*
 * What the Acceptor offers the other services (push, fetch, anti-entropy,
 * the index view, revocations, node reports) and what it needs; its
 * implementation is acceptor.ts.
 */

/** The source of versions handed over by the local API (any other source is a peer id). */
export const LOCAL_SOURCE = 'local'

export type IngestResult = { ok: true } | Refusal

/**
 * Content at most this long is held in memory (it may ride inline in a push,
 * so the events carry it); longer content is staged on disk as it arrives.
 */
export const STAGE_ABOVE_BYTES = MAX_INLINE_BYTES

/** Content in memory, or a stream of it (read only once the header has passed; it may end early or run long). */
export type IncomingContent = Uint8Array | AsyncIterable<Uint8Array>

/** The policy inputs that may change at run time (SIGHUP); the clock supplies nowMs. */
export type PolicyConfig = Omit<PolicyContext, 'nowMs'>

export interface AcceptorEvents {
  /**
   * The version passed every rule and peers can get its content from here:
   * it may be sent on now. Before the commit when it came from a peer with
   * inline content, or its content is served from its relay (relay.ts);
   * else (a small local publish, larger content handed over in memory) once
   * committed. `content` is empty for content over STAGE_ABOVE_BYTES (staged
   * on disk, never inline).
   */
  servable: { version: SignedVersion, content: Uint8Array, source: string }
  /** A version was committed; `content` as in `servable`. */
  accepted: { entry: HeldEntry, content: Uint8Array, source: string }
  /** A version was refused; `code` is its ERR_* reason. */
  refused: { code: string, source: string, version: SignedVersion }
  /** A revocation list came into force. */
  revoked: { list: RevocationList }
  /** Held versions expired and their files were removed. */
  expired: { entries: HeldEntry[] }
  /** What is advertised may have changed without a commit: an expiry, or a new allowlist. */
  changed: undefined
}

export interface AcceptorComponents {
  store: Store
  /** Where streamed content being received is offered onward before its commit; none if absent. */
  relays?: Relays
  clock: Clock
  log: Log
}

export interface Acceptor {
  readonly events: Events<AcceptorEvents>
  /** Starts the expiry sweep. */
  start: () => void
  /** Puts a fleet-wide revocation list in force (src/sync/revocations.ts reads it from the mesh). */
  setRevocations: (list: RevocationList) => void
  /** Stops the sweep and waits for commits under way. */
  stop: () => Promise<void>
  /** Swaps the allowlist and clock skew (SIGHUP); revocation follows at once. */
  setPolicy: (policy: PolicyConfig) => void
  /** Whether `name` is in the current allowlist, or under a declared namespace. */
  listed: (name: string) => boolean
  /** What is held for `name` as far as ordering is concerned: nothing if its signer was revoked. */
  held: (name: string) => HeldEntry | undefined
  /**
   * The header verdict against what is held (no content). A pass is
   * remembered for this very object until the policy or revocation list
   * changes, so ingesting it next does not verify its signature twice.
   */
  check: (v: SignedVersion) => Verdict
  /** Whether an announced entry is worth fetching: listed here, and it supersedes what is held. */
  wants: (e: IndexEntry) => boolean
  /** Whether a held entry is offered to peers. */
  advertised: (e: HeldEntry) => boolean
  /**
   * Checks and commits a version; never throws. Streamed content is read only
   * once the header has passed (a refused version's stream is left unread),
   * and staged on disk as it arrives when it is over STAGE_ABOVE_BYTES.
   */
  ingest: (v: SignedVersion, content: IncomingContent, source: string) => Promise<IngestResult>
  /** ingest() for content its caller has staged (a fetch); takes ownership of `staged`. Never throws. */
  ingestStaged: (v: SignedVersion, staged: StagedContent, source: string) => Promise<IngestResult>
  /** Reports a refusal (log and event) and returns it. */
  refuse: (v: SignedVersion, r: Refusal, source: string) => Refusal
}
