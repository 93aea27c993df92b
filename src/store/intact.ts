import { createHash } from 'node:crypto'
import fs from 'node:fs'
import { OPEN_READ, type HeldDir } from './held-dir.js'

/*
 * The start-up fast path: the same checks the store makes of every held name
 * at open (its envelope read without following a link; files/<name> a regular
 * file whose bytes hash to the signed SHA-256; keep/<name> the same inode),
 * made with synchronous calls. At open nothing else runs yet, and each of
 * these calls costs a few microseconds where a thread-pool round trip costs
 * tens: with 10,000 names that was most of the start-up. Anything that is not
 * plainly intact returns undefined, and the store's own (asynchronous) repair
 * path decides what to do with it, as before.
 */

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = fs.constants
const OPEN_DIR = O_RDONLY | O_DIRECTORY | O_NOFOLLOW
/** Content is hashed this much at a time, so a large file is never whole in memory. */
const READ_BYTES = 1024 * 1024

/** (ino, size, mtime, ctime): the store skips re-hashing a file whose stat still reads this. */
export const statFingerprint = (st: fs.Stats): string => `${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`

/** An entry's contents if it is a regular file (opened without following a link); undefined otherwise or on any error. */
export function readRegularSync (dir: HeldDir, entry: string): Buffer | undefined {
  let fd: number
  try {
    fd = fs.openSync(dir.at(entry), OPEN_READ)
  } catch {
    return undefined
  }
  try {
    return fs.fstatSync(fd).isFile() ? fs.readFileSync(fd) : undefined
  } catch {
    return undefined
  } finally {
    fs.closeSync(fd)
  }
}

/**
 * Calls `fn` with a function naming an entry of the directory that holds
 * `name` below `root`, each directory on the way opened without following a
 * link; undefined when one is missing or not a plain directory.
 */
function inParentSync<T> (root: HeldDir, name: string, fn: (at: (entry: string) => string, base: string) => T): T | undefined {
  const segments = name.split('/')
  const base = segments.pop() as string
  const fds: number[] = []
  try {
    let at = root.at
    for (const segment of segments) {
      const fd = fs.openSync(at(segment), OPEN_DIR)
      fds.push(fd)
      at = entry => `/proc/self/fd/${fd}/${entry}`
    }
    return fn(at, base)
  } catch {
    return undefined
  } finally {
    for (const fd of fds) fs.closeSync(fd)
  }
}

/** SHA-256 of an open file's bytes, read in bounded pieces. */
function hashFd (fd: number, size: number): Buffer {
  const hash = createHash('sha256')
  const buf = Buffer.allocUnsafe(Math.min(READ_BYTES, Math.max(size, 1)))
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, null)
    if (n === 0) break
    hash.update(buf.subarray(0, n))
  }
  return hash.digest()
}

/**
 * The fingerprint of files/<name> when it is intact: a regular file of the
 * signed size whose bytes hash to `sha`, unchanged while it was read, and
 * keep/<name> a link to the same inode. Undefined for anything else (missing,
 * a link, different, no intact keep/ link, any error): the caller repairs.
 */
export function intactSync (files: HeldDir, keep: HeldDir, name: string, size: number, sha: Uint8Array): string | undefined {
  // /proc/self/fd names a held directory exactly; without /proc the async path does it.
  if (!files.at('x').startsWith('/proc/self/fd/')) return undefined
  const found = inParentSync(files, name, (at, base) => {
    const fd = fs.openSync(at(base), OPEN_READ)
    try {
      const before = fs.fstatSync(fd)
      if (!before.isFile() || before.size !== size) return undefined
      if (!hashFd(fd, size).equals(sha)) return undefined
      const after = fs.fstatSync(fd)
      return statFingerprint(after) === statFingerprint(before) ? after : undefined
    } finally {
      fs.closeSync(fd)
    }
  })
  if (found === undefined) return undefined
  const kept = inParentSync(keep, name, (at, base) => fs.lstatSync(at(base), { throwIfNoEntry: false }))
  return kept?.ino === found.ino ? statFingerprint(found) : undefined
}
