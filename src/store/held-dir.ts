import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { DmError } from '../errors.js'
import { printable } from '../format/names.js'
import { DIR_MODE } from './durable.js'

/*
 * Directories under state_dir, reached without ever following a symlink.
 *
 * Why this way: Node has no openat(). Each directory is instead held open and
 * named through its descriptor, `/proc/self/fd/N/<entry>`: the kernel resolves
 * `/proc/self/fd/N` to exactly the directory held (wherever it has been moved
 * since) and looks up the one entry after it inside that directory. Directories
 * are opened one component at a time with O_NOFOLLOW; files are created with
 * O_EXCL (which refuses any existing name, links included) and read with
 * O_NOFOLLOW; rename and unlink act on a final symlink itself, never on its
 * target. So no symlink planted anywhere under state_dir, before or during an
 * operation, can redirect a write, a delete or a read outside it. An lstat()
 * walk could not promise that: the path can change between lstat and open.
 * Without /proc (not Linux), entries are named by their path; components are
 * still opened with O_NOFOLLOW, but a directory renamed meanwhile is not caught.
 */

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = fs.constants
const OPEN_DIR = O_RDONLY | O_DIRECTORY | O_NOFOLLOW
/** Read a file, refusing a symlink (ELOOP); O_NONBLOCK so a planted FIFO cannot hang the open. */
export const OPEN_READ = O_RDONLY | O_NOFOLLOW | O_NONBLOCK
const PROC_FD = fs.existsSync('/proc/self/fd') ? '/proc/self/fd' : undefined

export interface HeldDir {
  /** The directory's path, for messages only. */
  readonly path: string
  /** A path naming `entry` inside this very directory (never through a link in between). */
  at: (entry: string) => string
  /** fstat of the directory held. */
  stat: () => Promise<fs.Stats>
  /**
   * fsync of the directory held, so renames into it survive a power cut.
   * Resolves once an fsync that started after the call has finished; calls
   * made while one runs share the next (group commit: many renames, one fsync).
   */
  sync: () => Promise<void>
  close: () => Promise<void>
}

/**
 * Wraps `run` so that concurrent callers share fsyncs: a call while none runs
 * starts one; a call while one runs waits for the next, which starts once the
 * running one ends and serves every caller that arrived meanwhile.
 */
export function coalesced (run: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined
  let next: Promise<void> | undefined
  const start = (): Promise<void> => {
    running = run().finally(() => { running = undefined })
    return running
  }
  return async () => {
    if (running === undefined) return await start()
    next ??= running.catch(() => {}).then(async () => {
      next = undefined
      return await start()
    })
    return await next
  }
}

function hold (handle: fsp.FileHandle, dirPath: string): HeldDir {
  return {
    path: dirPath,
    at: entry => PROC_FD !== undefined ? `${PROC_FD}/${handle.fd}/${entry}` : path.join(dirPath, entry),
    stat: async () => await handle.stat(),
    sync: coalesced(async () => await handle.sync()),
    close: async () => await handle.close()
  }
}

/** What an entry that is not a directory is, for a clear refusal. */
async function refusal (parent: HeldDir, entry: string): Promise<DmError> {
  const where = path.join(parent.path, entry)
  const st = await fsp.lstat(parent.at(entry)).catch(() => undefined)
  if (st?.isSymbolicLink() === true) {
    return new DmError('ERR_STATE_DIR_UNSAFE', `${printable(where)} is a symlink; the daemon never follows links under state_dir`)
  }
  return new DmError('ERR_NAME_COLLISION', `${printable(where)} is a file where a directory is needed (left by an older [files] layout?)`)
}

/**
 * Opens a directory by path (state_dir itself, or an entry of a held one):
 * refuses a final symlink. `label` is its path for messages.
 */
export async function openHeldDir (dirPath: string, label = dirPath): Promise<HeldDir> {
  try {
    return hold(await fsp.open(dirPath, OPEN_DIR), label)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      const st = await fsp.lstat(dirPath).catch(() => undefined)
      throw new DmError('ERR_STATE_DIR_UNSAFE', `state directory ${printable(label)} is ${st?.isSymbolicLink() === true ? 'a symlink; the daemon never follows links under state_dir' : 'not a directory'}`)
    }
    throw err
  }
}

/**
 * Opens `segments` below `parent`, one component at a time, creating missing
 * directories when `create`. Returns undefined when a component is missing and
 * not created. A symlink component is refused (`ERR_STATE_DIR_UNSAFE`), a file
 * component is a collision (`ERR_NAME_COLLISION`).
 */
export async function openSubdir (parent: HeldDir, segments: readonly string[], create: boolean, mode = DIR_MODE): Promise<HeldDir | undefined> {
  let current = parent
  try {
    for (const segment of segments) {
      let handle: fsp.FileHandle
      try {
        // Opened first, made only when missing: most commits go to a directory that exists.
        handle = await fsp.open(current.at(segment), OPEN_DIR).catch(async err => {
          if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !create) throw err
          await fsp.mkdir(current.at(segment), { mode }).catch(err => {
            if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
          })
          return await fsp.open(current.at(segment), OPEN_DIR)
        })
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code
        if (code === 'ENOENT' && !create) return undefined
        if (code === 'ELOOP' || code === 'ENOTDIR') throw await refusal(current, segment)
        throw err
      }
      const next = hold(handle, path.join(current.path, segment))
      if (current !== parent) await current.close()
      current = next
    }
    if (current === parent) throw new Error('openSubdir: no segments')
    const opened = current
    current = parent
    return opened
  } finally {
    if (current !== parent) await current.close()
  }
}

export interface Parent {
  /** The directory that holds the entry. */
  dir: HeldDir
  /** The entry's name in it: the last segment. */
  base: string
  /** Closes `dir` unless it is the root passed in. */
  release: () => Promise<void>
}

/**
 * The directory holding `name` (a `/`-separated path below `root`), opened
 * without following links, and the name's last segment. Undefined when a
 * directory on the way is missing and `create` is false.
 */
export async function openParent (root: HeldDir, name: string, create: boolean): Promise<Parent | undefined> {
  const segments = name.split('/')
  const base = segments.pop() as string
  if (segments.length === 0) return { dir: root, base, release: async () => {} }
  const dir = await openSubdir(root, segments, create)
  return dir === undefined ? undefined : { dir, base, release: async () => await dir.close() }
}

/**
 * lstat of an entry, undefined when it does not exist. Any other error surfaces.
 * Synchronous: an lstat is answered from the kernel's caches in microseconds,
 * where a thread-pool round trip costs several times that, and a missing entry
 * an Error with its stack (a commit makes four of these).
 */
export async function lstatEntry (dir: HeldDir, entry: string): Promise<fs.Stats | undefined> {
  return fs.lstatSync(dir.at(entry), { throwIfNoEntry: false })
}

/** Errors that mean "no usable file there" (missing, a link, a directory on the way), not an I/O failure. */
export function isAbsent (err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code
  return code === 'ENOENT' || code === 'ELOOP' || code === 'ENOTDIR' || code === 'EISDIR'
}

/** Only DmError refusals (a link or a file on the way) become undefined; I/O errors surface. */
export async function openParentIfSafe (root: HeldDir, name: string): Promise<Parent | undefined> {
  try {
    return await openParent(root, name, false)
  } catch (err) {
    if (err instanceof DmError) return undefined
    throw err
  }
}

/** Removes the file or link `name` below `root`, if there. */
export async function unlinkName (root: HeldDir, name: string): Promise<void> {
  const p = await openParentIfSafe(root, name)
  if (p === undefined) return
  try {
    await unlinkEntry(p.dir, p.base)
  } finally {
    await p.release()
  }
}

/** Removes a file or symlink entry; absent is fine. */
export async function unlinkEntry (dir: HeldDir, entry: string): Promise<void> {
  try {
    await fsp.unlink(dir.at(entry))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
}
