import type { Clock } from '../util/clock.js'
import type { StateDirs } from './state-dir.js'
import type { HeldEntry } from './store-api.js'

/** versions/<name>.sig: the signed envelope of the held version of <name>. */
export const SIG_SUFFIX = '.sig'

/** What the store's parts (load, repair, commit, reads) share: its directories, the index and what is known of each name's file. */
export interface StoreState {
  readonly dirs: StateDirs
  /** Decides expiry. */
  readonly clock: Clock
  /** The held version of every name (the persisted index, versions/, in memory). */
  readonly index: Map<string, HeldEntry>
  /** Names whose expired content has been removed. */
  readonly expired: Set<string>
  /** Names whose content was withdrawn (its signer revoked): absent on purpose, never restored from keep/. */
  readonly withdrawn: Set<string>
  /** (ino, size, mtime, ctime) of files/<name> when last verified: a check whose stat is unchanged skips the hash. */
  readonly fingerprints: Map<string, string>
}

export function createStoreState (dirs: StateDirs, clock: Clock): StoreState {
  return { dirs, clock, index: new Map(), expired: new Set(), withdrawn: new Set(), fingerprints: new Map() }
}
