import { createHash } from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import { promisify } from 'node:util'
import { DmError } from '../errors.js'
import { printable } from '../format/names.js'
import { MAX_CONTENT_BYTES, VersionKind, isExpired } from '../format/version.js'
import { OPEN_READ, isAbsent, lstatEntry, openParentIfSafe, type HeldDir } from './held-dir.js'
import type { RepairReport, Store } from './store-api.js'
import type { StoreState } from './store-state.js'

/* Reading held content: every byte served is checked against the signed hash, and a mismatch is repaired. */

const sha256 = (data: Uint8Array): Buffer => createHash('sha256').update(data).digest()

const open = promisify(fs.open)
const fstat = promisify(fs.fstat)
const read = promisify(fs.read)
const close = promisify(fs.close)

/**
 * The content of a regular file `entry` in `dir` if it has the hash `sha`; undefined if absent, not a regular file or different.
 * Raw descriptors, not a FileHandle: a fetch serves hundreds of these in a row (fewer round trips, less for the collector).
 */
export async function readVerified (dir: HeldDir, entry: string, sha: Uint8Array): Promise<Buffer | undefined> {
  let fd: number
  try {
    fd = await open(dir.at(entry), OPEN_READ)
  } catch (err) {
    if (isAbsent(err)) return undefined
    throw err
  }
  try {
    const st = await fstat(fd)
    // No signed content is larger: such a file is not read into memory at all.
    if (!st.isFile() || st.size > MAX_CONTENT_BYTES) return undefined
    // One byte more than fstat said: a file that grew meanwhile is not the one stated, and is not read whole.
    const data = Buffer.allocUnsafe(st.size + 1)
    let got = 0
    while (got < data.length) {
      const { bytesRead } = await read(fd, data, got, data.length - got, null)
      if (bytesRead === 0) break
      got += bytesRead
    }
    if (got > st.size) return undefined
    const content = data.subarray(0, got)
    return sha256(content).equals(sha) ? content : undefined
  } finally {
    await close(fd)
  }
}

export type ContentReader = Pick<Store, 'readContent' | 'openContent'>

/** `check` is Store.check (repairs under the name's lock); `problem` reports what it did. */
export function createContentReader (state: StoreState, check: (rel: string) => Promise<RepairReport | undefined>, problem: (message: string) => void): ContentReader {
  const { dirs, index, fingerprints, clock } = state

  async function readContent (name: string, repair: boolean): Promise<Buffer | undefined> {
    const held = index.get(name)
    if (held === undefined || !held.present || held.version.kind !== VersionKind.File || isExpired(held.version, clock.nowMs())) return undefined
    const p = await openParentIfSafe(dirs.files, name)
    const data = p === undefined ? undefined : await readVerified(p.dir, p.base, held.version.sha256).finally(p.release)
    if (data !== undefined || !repair) return data
    // Changed on disk: repaired (or marked missing) as the tamper watch would, then read once more.
    fingerprints.delete(name)
    const report = await check(name)
    if (report !== undefined) problem(report.reason)
    return await readContent(name, false)
  }

  async function openContent (name: string, chunkBytes: number): Promise<AsyncIterable<Uint8Array> | undefined> {
    const held = index.get(name)
    if (held === undefined || !held.present || held.version.kind !== VersionKind.File || isExpired(held.version, clock.nowMs())) return undefined
    const repair = (): void => {
      fingerprints.delete(name)
      void check(name).then(r => { if (r !== undefined) problem(r.reason) }, () => {})
    }
    const p = await openParentIfSafe(dirs.files, name)
    if (p === undefined) return undefined
    const st = await lstatEntry(p.dir, p.base).finally(p.release)
    if (st === undefined) return undefined
    if (!st.isFile()) { repair(); return undefined }
    const size = held.version.size
    // Nothing is held open until the first chunk is asked for: a generator never started never
    // runs its finally, so a reader that gives up before reading (a stream reset) would leak both.
    return (async function * () {
      const q = await openParentIfSafe(dirs.files, name)
      if (q === undefined) throw new DmError('ERR_CONTENT_MISMATCH', `content of "${printable(name)}" disappeared before it was served`)
      let handle: fsp.FileHandle
      try {
        handle = await fsp.open(q.dir.at(q.base), OPEN_READ)
      } catch (err) {
        await q.release()
        if (isAbsent(err)) { repair(); throw new DmError('ERR_CONTENT_MISMATCH', `content of "${printable(name)}" disappeared before it was served`) }
        throw err
      }
      const hash = createHash('sha256')
      try {
        if (!(await handle.stat()).isFile()) {
          repair()
          throw new DmError('ERR_CONTENT_MISMATCH', `content of "${printable(name)}" is no longer a regular file`)
        }
        for (let off = 0; off < size;) {
          const buf = Buffer.allocUnsafe(Math.min(chunkBytes, size - off))
          const { bytesRead } = await handle.read(buf, 0, buf.length, off)
          if (bytesRead === 0) break
          const chunk = buf.subarray(0, bytesRead)
          hash.update(chunk)
          off += bytesRead
          yield chunk
        }
        if (!hash.digest().equals(held.version.sha256)) {
          repair()
          throw new DmError('ERR_CONTENT_MISMATCH', `content of "${printable(name)}" changed on disk while it was served`)
        }
      } finally {
        await handle.close()
        await q.release()
      }
    })()
  }

  return {
    readContent: async name => await readContent(name, true),
    openContent
  }
}
