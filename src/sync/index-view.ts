import type { IndexEntry } from '../protocol/messages.js'
import type { Store } from '../store/store.js'
import type { Acceptor } from './acceptor.js'
import { indexDigest } from './digest.js'

/*
 * IndexView: what this node advertises to its peers, and its digest. Built
 * from the store with the acceptor's rule, cached, and rebuilt only after
 * something it depends on changed.
 */

export interface IndexView {
  /** The advertised entries, sorted by name. */
  entries: () => IndexEntry[]
  /** The digest peers compare in a push-pull summary. */
  digest: () => Uint8Array
}

export function createIndexView (components: { store: Store, acceptor: Acceptor }): IndexView {
  const { store, acceptor } = components
  let cached: { entries: IndexEntry[], digest: Uint8Array } | undefined
  const invalidate = (): void => { cached = undefined }
  acceptor.events.on('accepted', invalidate)
  acceptor.events.on('changed', invalidate)

  function build (): { entries: IndexEntry[], digest: Uint8Array } {
    if (cached === undefined) {
      const entries: IndexEntry[] = []
      for (const e of store.entries()) if (acceptor.advertised(e)) entries.push({ name: e.name, timestampMs: e.timestampMs, id: e.id })
      entries.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
      cached = { entries, digest: indexDigest(entries) }
    }
    return cached
  }

  return {
    entries: () => build().entries,
    digest: () => build().digest
  }
}
