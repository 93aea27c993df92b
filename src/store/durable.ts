import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { promisify } from 'node:util'

/*
 * The durable-write primitives. A watcher must only ever see whole files, so
 * content is written and fsynced under a temporary name, then renamed over the
 * target (atomic on POSIX within one filesystem), then the directory is fsynced
 * so the rename itself survives a power cut. Every error surfaces: a failed
 * fsync means the data may not be on disk, and the caller must know.
 */

/** Mode of replicated files: owner writes, the consumer group reads. */
export const FILE_MODE = 0o640
/** Mode of directories under files/: the consumer group may list and enter. */
export const DIR_MODE = 0o750

const { O_WRONLY, O_CREAT, O_EXCL, O_NOFOLLOW, O_RDONLY } = fs.constants
/** Create a new file, never through a symlink (O_EXCL refuses any existing name, links included). */
const CREATE_NEW = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW

/*
 * Raw descriptors, not fs/promises FileHandles: a commit writes two small files,
 * and a FileHandle (an EventEmitter with its own close bookkeeping, and a
 * finalizer for the collector) cost a catch-up about three times the main
 * thread's time of these four calls.
 */
const open = promisify(fs.open)
const write = promisify(fs.write)
const fsync = promisify(fs.fsync)
const close = promisify(fs.close)

/** Creates `file` (which must not exist), writes `data`, fsyncs, closes. Removes it on failure. */
export async function writeNewFileSynced (file: string, data: Uint8Array, mode = FILE_MODE): Promise<void> {
  const fd = await open(file, CREATE_NEW, mode)
  try {
    // A short write is continued until every byte is down.
    for (let off = 0; off < data.length;) off += (await write(fd, data, off, data.length - off, null)).bytesWritten
    await fsync(fd)
  } catch (err) {
    await close(fd).catch(() => {})
    await fsp.rm(file, { force: true })
    throw err
  }
  await close(fd)
}

/**
 * The one writer for whole files the daemon keeps outside the store
 * (identity.key, peers.json): temp file in the same directory, fsync, rename
 * over `file`, fsync the directory. Synchronous because these files are tiny
 * and written at start and shutdown. A symlink at `file` is replaced, not followed.
 */
export function writeFileDurableSync (file: string, data: Uint8Array | string, mode = FILE_MODE): void {
  const dir = path.dirname(file)
  const tmp = path.join(dir, `.${path.basename(file)}.${randomBytes(4).toString('hex')}.tmp`)
  const fd = fs.openSync(tmp, CREATE_NEW, mode)
  try {
    fs.writeFileSync(fd, data)
    fs.fsyncSync(fd)
  } catch (err) {
    fs.closeSync(fd)
    fs.rmSync(tmp, { force: true })
    throw err
  }
  fs.closeSync(fd)
  try {
    fs.renameSync(tmp, file)
  } catch (err) {
    fs.rmSync(tmp, { force: true })
    throw err
  }
  const dirFd = fs.openSync(dir, O_RDONLY)
  try {
    fs.fsyncSync(dirFd)
  } finally {
    fs.closeSync(dirFd)
  }
}

/** Reads a whole file, refusing a symlink (ELOOP): the daemon's own files are never links. */
export function readFileNoFollowSync (file: string): Buffer {
  const fd = fs.openSync(file, O_RDONLY | O_NOFOLLOW)
  try {
    return fs.readFileSync(fd)
  } finally {
    fs.closeSync(fd)
  }
}
