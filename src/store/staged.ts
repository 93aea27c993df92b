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
  /** Bytes on disk so far (written, not yet fsynced): a reader of the staged file may read this far. */
  readonly landed: number
  /**
   * Resolves once `n` bytes are on disk; rejects if a write fails or the
   * content is discarded first. How a relay serves it onward as it arrives.
   */
  whenLanded: (n: number) => Promise<void>
  /** Opens the staged file for reading; only before seal(), which renames it. */
  openReader: () => Promise<fsp.FileHandle>
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
  let landed = 0
  let discarded = false
  /** Readers waiting for more bytes (a relay's downstream streams: a few at most). */
  let waiters: Array<{ n: number, resolve: () => void, reject: (err: unknown) => void }> = []

  /** Wakes the waiters whose bytes are down, and all of them once no more will come. */
  function settleWaiters (): void {
    const gone = failed ?? (discarded ? new Error('staged content discarded') : undefined)
    waiters = waiters.filter(w => {
      if (landed >= w.n) w.resolve()
      else if (gone !== undefined) w.reject(gone)
      else return true
      return false
    })
  }

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
        landed += chunk.length
      }).catch(err => { failed ??= err }).finally(settleWaiters)
      await before
      if (failed !== undefined) throw failed
    },
    get size () { return size },
    get landed () { return landed },
    async whenLanded (n) {
      if (landed >= n) return
      await new Promise<void>((resolve, reject) => { waiters.push({ n, resolve, reject }); settleWaiters() })
    },
    async openReader () {
      return await fsp.open(staging.at(entry), fs.constants.O_RDONLY | O_NOFOLLOW)
    },
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
      discarded = true
      settleWaiters()
      await close().catch(() => {})
      await unlinkEntry(staging, entry).catch(() => {})
    }
  }
}
