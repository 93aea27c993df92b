import fs from 'node:fs/promises'
import path from 'node:path'

/*
 * The durable-write primitives. A watcher must only ever see whole files, so
 * content is written and fsynced under a temporary name, then renamed over the
 * target (atomic on POSIX within one filesystem), then the directory is fsynced
 * so the rename itself survives a power cut.
 */

/** Mode of replicated files: owner writes, the consumer group reads. */
export const FILE_MODE = 0o640
/** Mode of directories under files/: the consumer group may list and enter. */
export const DIR_MODE = 0o750

/** Creates `file` (which must not exist), writes `data`, fsyncs, closes. Removes it on failure. */
export async function writeNewFileSynced (file: string, data: Uint8Array, mode = FILE_MODE): Promise<void> {
  const handle = await fs.open(file, 'wx', mode)
  try {
    await handle.writeFile(data)
    await handle.sync()
  } catch (err) {
    await handle.close().catch(() => {})
    await fs.rm(file, { force: true })
    throw err
  }
  await handle.close()
}

export async function fsyncDir (dir: string): Promise<void> {
  const handle = await fs.open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/** mkdir -p for the parent of `file`; returns the parent. */
export async function ensureParent (file: string): Promise<string> {
  const dir = path.dirname(file)
  await fs.mkdir(dir, { recursive: true, mode: DIR_MODE })
  return dir
}
