import type { FileHandle } from 'node:fs/promises'
import { DmError, describeError } from '../errors.js'
import { compareVersions, hex, type SignedVersion } from '../format/version.js'
import type { StagedContent } from '../store/staged.js'

/*
 * Relays: versions being received (from a peer or the local API) that can be
 * served onward before their own commit is done. A reader follows the staged
 * file as its bytes land on disk, one chunk in memory at a time. Nothing is
 * verified here: every receiver checks the signed size and hash before it
 * commits, so a relayed stream is never final. If the upstream transfer
 * fails, every reader fails with ERR_UPSTREAM_FAILED and the downstream
 * fetches again elsewhere.
 */

export interface RelayedContent {
  version: SignedVersion
  /** The content so far and as it lands, in chunks of at most the asked size; rejects with ERR_UPSTREAM_FAILED. */
  chunks: AsyncIterable<Uint8Array>
  /** The reader is done (read to the end or not): call exactly once, in a finally. */
  release: () => void
}

export interface Relays {
  /**
   * Offers `staged` (content of version `id`, being received) for serving
   * onward. Returns end(), to call once it was committed or dropped: readers
   * under way go on reading what landed; no new one starts.
   */
  begin: (version: SignedVersion, id: Uint8Array, staged: StagedContent) => Promise<() => void>
  /** The version `id` as it is being received, newer than `held`; undefined if it is not being received. */
  reader: (id: Uint8Array, chunkBytes: number, held?: { timestampMs: number, id: Uint8Array }) => RelayedContent | undefined
  /** Whether version `id` is on offer. */
  has: (id: Uint8Array) => boolean
  /** How many are on offer (for tests and status). */
  readonly size: number
}

interface Entry {
  version: SignedVersion
  id: Uint8Array
  staged: StagedContent
  handle: FileHandle
  readers: number
  ended: boolean
}

export function createRelays (): Relays {
  const entries = new Map<string, Entry>()

  /** The descriptor is kept while readers use it, even past the commit (the inode stays, renamed). */
  function release (e: Entry): void {
    if (e.ended && e.readers === 0) void e.handle.close().catch(() => {})
  }

  async function * follow (e: Entry, chunkBytes: number): AsyncGenerator<Uint8Array> {
    const size = e.version.size
    for (let at = 0; at < size;) {
      try {
        await e.staged.whenLanded(at + 1)
      } catch (err) {
        throw new DmError('ERR_UPSTREAM_FAILED', `the transfer of this version to us failed midway: ${describeError(err)}`, { cause: err })
      }
      const buf = Buffer.allocUnsafe(Math.min(e.staged.landed, at + chunkBytes, size) - at)
      for (let off = 0; off < buf.length;) {
        const { bytesRead } = await e.handle.read(buf, off, buf.length - off, at + off)
        if (bytesRead === 0) throw new DmError('ERR_UPSTREAM_FAILED', 'the staged content shrank while it was relayed')
        off += bytesRead
      }
      at += buf.length
      yield buf
    }
  }

  return {
    async begin (version, id, staged) {
      const key = hex(id)
      if (entries.has(key)) return () => {}
      const e: Entry = { version, id, staged, handle: await staged.openReader(), readers: 0, ended: false }
      entries.set(key, e)
      return () => {
        if (entries.get(key) === e) entries.delete(key)
        e.ended = true
        release(e)
      }
    },
    reader (id, chunkBytes, held) {
      const e = entries.get(hex(id))
      if (e === undefined || (held !== undefined && compareVersions({ timestampMs: e.version.timestampMs, id: e.id }, held) <= 0)) return undefined
      e.readers++
      let released = false
      const done = (): void => {
        if (released) return
        released = true
        e.readers--
        release(e)
      }
      return { version: e.version, chunks: follow(e, chunkBytes), release: done }
    },
    has: id => entries.has(hex(id)),
    get size () { return entries.size }
  }
}
