import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import { FILE_MODE } from './durable.js'
import { unlinkEntry, type HeldDir } from './held-dir.js'

/*
 * Content received into staging/ as it arrives (from a peer or the local API),
 * hashed while it is written, so a 10 MiB version never sits whole in memory
 * and is never read back to be checked. Whoever holds a StagedContent either
 * hands it to Store.commitStaged (which commits or discards it) or discards it.
 */

export interface StagedContent {
  /**
   * Appends bytes. Resolves once the write before this one is on its way to
   * the disk, so at most two chunks are in flight (bounded memory) while the
   * next one is being received (overlap). Rejects with the disk's error.
   */
  write: (chunk: Uint8Array) => Promise<void>
  /** Bytes written so far. */
  readonly size: number
  /** SHA-256 of every byte written; no write may follow. */
  sha256: () => Buffer
  /** Waits for the writes, fsyncs and closes; returns the staged entry's name in staging/. For the store. */
  seal: () => Promise<string>
  /** Closes and removes the staged file; idempotent, never throws. */
  discard: () => Promise<void>
}

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW } = fs.constants

/** Creates staging/<random>.part exclusively (never through a link). */
export async function createStagedContent (staging: HeldDir): Promise<StagedContent> {
  const entry = `${Date.now()}.${randomBytes(6).toString('hex')}.part`
  const handle = await fsp.open(staging.at(entry), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, FILE_MODE)
  const hash = createHash('sha256')
  let digest: Buffer | undefined
  let size = 0
  /** The chain of writes, in order; the first failure sticks. */
  let tail: Promise<void> = Promise.resolve()
  let failed: unknown
  let closed = false

  async function close (): Promise<void> {
    if (closed) return
    closed = true
    await handle.close()
  }

  return {
    async write (chunk) {
      if (digest !== undefined) throw new Error('staged content already hashed')
      if (failed !== undefined) throw failed
      hash.update(chunk)
      size += chunk.length
      const before = tail
      // The chunk is written whole: a short write is continued until every byte is down.
      tail = before.then(async () => {
        for (let off = 0; off < chunk.length;) off += (await handle.write(chunk, off, chunk.length - off)).bytesWritten
      }).catch(err => { failed ??= err })
      await before
      if (failed !== undefined) throw failed
    },
    get size () { return size },
    sha256 () {
      digest ??= hash.digest()
      return digest
    },
    async seal () {
      await tail
      if (failed !== undefined) throw failed
      await handle.sync()
      await close()
      return entry
    },
    async discard () {
      await tail
      await close().catch(() => {})
      await unlinkEntry(staging, entry).catch(() => {})
    }
  }
}
