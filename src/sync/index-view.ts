import type { IndexEntry } from '../protocol/messages.js'
import type { Store } from '../store/store.js'
import type { Acceptor } from './acceptor-api.js'
import { createReconcileIndex, type ReconcileIndex } from './fingerprint.js'

/*
 * IndexView: what this node advertises to its peers, as the sorted snapshot
 * reconciliation fingerprints. Built from the store with the acceptor's
 * rule, cached, and rebuilt only after something it depends on changed.
 */

export interface IndexView {
  /** The advertised entries, sorted by name. */
  entries: () => IndexEntry[]
  /** The snapshot a reconciliation runs against (its whole-index digest is computed once). */
  snapshot: () => ReconcileIndex
}

export function createIndexView (components: { store: Store, acceptor: Acceptor }): IndexView {
  const { store, acceptor } = components
  let cached: ReconcileIndex | undefined
  const invalidate = (): void => { cached = undefined }
  acceptor.events.on('accepted', invalidate)
  acceptor.events.on('changed', invalidate)

  function snapshot (): ReconcileIndex {
    if (cached === undefined) {
      const entries: IndexEntry[] = []
      for (const e of store.entries()) if (acceptor.advertised(e)) entries.push({ name: e.name, timestampMs: e.timestampMs, id: e.id })
      cached = createReconcileIndex(entries)
    }
    return cached
  }

  return {
    entries: () => {
      const s = snapshot()
      return Array.from({ length: s.size }, (_, i) => s.entry(i))
    },
    snapshot
  }
}
