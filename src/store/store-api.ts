import type { SignedVersion } from '../format/version.js'
import type { HeldVersion } from '../policy/accept.js'
import type { Clock } from '../util/clock.js'
import type { StagedContent } from './staged.js'

/* The store as the rest of the daemon sees it (store.ts opens one). */

export interface HeldEntry extends HeldVersion {
  name: string
  version: SignedVersion
  envelope: Buffer
  /** False when the content on disk is missing or does not match: it must be fetched again. */
  present: boolean
}

export interface CommitResult {
  /** False when a newer (or the same) version was committed first; nothing was written. */
  committed: boolean
}

export interface CommitOptions {
  /**
   * Decides, under the name's lock, whether the version replaces what is held
   * then. The acceptor passes its rule (which also knows about revoked
   * signers); without it, the policy's plain order decides.
   */
  replaces?: (held: HeldEntry | undefined) => boolean
  /** The version's id when the caller has it (the acceptor's header check computed it): not hashed again. */
  id?: Uint8Array
}

export interface StoreEvents {
  /** Reports a problem found in the state directory; must not block. */
  problem: (message: string) => void
  /** Decides expiry; the system clock when absent. */
  clock?: Clock
  /**
   * Re-checks every envelope at open (the daemon passes its acceptance policy:
   * network id, signer listed, signature). True, or why the envelope is refused;
   * a refused envelope and its content are moved aside. Default: the signature.
   */
  verify?: (version: SignedVersion) => true | string
}

/** What a check of one name found and did. */
export interface RepairReport {
  name: string
  /** restored: put back from keep/ or staging; moved-aside: unverified content quarantined; missing: nothing to restore. */
  action: 'restored' | 'moved-aside' | 'missing'
  /** One line. */
  reason: string
}

export interface Store {
  readonly filesDir: string
  get: (name: string) => HeldEntry | undefined
  entries: () => IterableIterator<HeldEntry>
  size: () => number
  /**
   * Writes a version the policy has accepted. Serialised per name, and
   * compare-and-set: it only commits when still newer than what is held
   * (or the same version whose content was missing). A name whose path is
   * taken by a file or directory of another name fails with ERR_NAME_COLLISION
   * before anything is written.
   */
  commit: (version: SignedVersion, content: Uint8Array, opts?: CommitOptions) => Promise<CommitResult>
  /** A new file in staging/ to receive content into as it arrives; hand it to commitStaged or discard it. */
  stage: () => Promise<StagedContent>
  /**
   * commit() for content already staged: takes ownership of `staged` (it is
   * committed, or discarded whatever happens). The caller has checked its
   * size and SHA-256 against the version; a tombstone takes no staged content.
   */
  commitStaged: (version: SignedVersion, staged: StagedContent | undefined, opts?: CommitOptions) => Promise<CommitResult>
  /** The held content of `name`, checked against its signed hash. */
  readContent: (name: string) => Promise<Buffer | undefined>
  /**
   * The held content of `name` as chunks of at most `chunkBytes`, for serving
   * it without holding it whole. The hash is checked as it is read: on a
   * mismatch the last step throws (the reader discards what it got, as any
   * receiver checks the signed hash anyway) and the file is repaired or
   * marked missing. Undefined when not held with content.
   */
  openContent: (name: string, chunkBytes: number) => Promise<AsyncIterable<Uint8Array> | undefined>
  /**
   * Re-checks `files/<rel>` against what is held: restores or moves aside
   * what does not match, and moves aside anything where no file should be.
   * Undefined when all was well. Serialised with commits of that name.
   */
  check: (rel: string) => Promise<RepairReport | undefined>
  /**
   * Removes the file of a held version whose signer was revoked (fail closed):
   * from files/ and keep/, keeping the envelope, and never restored. Any
   * version the policy accepts replaces it.
   */
  withdraw: (name: string) => Promise<void>
  /** Removes the files of held versions that have expired; returns their names. */
  expire: () => Promise<string[]>
  /** Resolves once every commit started so far has finished (for a clean stop). */
  flush: () => Promise<void>
  /** Closes the directories held; call after flush(). */
  close: () => Promise<void>
}
