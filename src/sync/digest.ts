import { createHash } from 'node:crypto'
import type { IndexEntry } from '../protocol/messages.js'

/**
 * The summary two peers compare before exchanging whole indexes: SHA-256 over
 * the (name, version id) pairs sorted by name. Equal digests mean equal
 * holdings, so a round between peers in sync costs one small message each way.
 */
export function indexDigest (entries: IndexEntry[]): Uint8Array {
  const sorted = [...entries].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  const h = createHash('sha256')
  for (const e of sorted) {
    const name = Buffer.from(e.name, 'utf8')
    const len = Buffer.alloc(2)
    len.writeUInt16BE(name.length)
    h.update(len).update(name).update(e.id)
  }
  return new Uint8Array(h.digest())
}
