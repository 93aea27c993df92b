import { randomBytes } from 'node:crypto'
import type fs from 'node:fs'
import fsp from 'node:fs/promises'
import { DmError, describeError } from '../errors.js'
import { printable } from '../format/names.js'
import { VersionKind, hex, isExpired } from '../format/version.js'
import { readVerified } from './content-reader.js'
import { lstatEntry, openParent, openParentIfSafe, unlinkEntry, unlinkName, type HeldDir } from './held-dir.js'
import { statFingerprint } from './intact.js'
import type { MoveAside } from './quarantine.js'
import type { RepairReport } from './store-api.js'
import type { StoreState } from './store-state.js'

/*
 * Repair: bringing files/<name> (and keep/<name>) back in line with the index
 * after a crash, a tamperer or a consumer's mistake. keep/<name> is a second
 * hard link to the held content: it restores files/<name> if it is deleted or
 * replaced (not if edited in place).
 */

/** Brings files/<name> in line with the index; see settle below. */
export type Settle = (name: string, rollForward: boolean) => Promise<RepairReport | undefined>

export function createRepair (state: StoreState, moveAside: MoveAside): Settle {
  const { dirs, index, fingerprints, withdrawn, clock } = state
  const tmpName = (suffix: string): string => `${Date.now()}.${randomBytes(4).toString('hex')}.${suffix}`

  /** Links a verified entry into place at `to/base` (atomic rename of a fresh link made in staging/). */
  async function linkInto (from: HeldDir, entry: string, to: HeldDir, base: string): Promise<void> {
    const tmp = tmpName('link')
    await fsp.link(from.at(entry), dirs.staging.at(tmp))
    try {
      await fsp.rename(dirs.staging.at(tmp), to.at(base))
    } catch (err) {
      await unlinkEntry(dirs.staging, tmp).catch(() => {})
      throw err
    }
  }

  /** Makes keep/<name> the same inode as files/<name> (verified by the caller). Not fsynced: it can always be made again. */
  async function ensureKept (name: string, files: HeldDir, base: string): Promise<void> {
    const keep = await openParent(dirs.keep, name, true) as NonNullable<Awaited<ReturnType<typeof openParent>>>
    try {
      const [f, k] = await Promise.all([lstatEntry(files, base), lstatEntry(keep.dir, base)])
      if (f !== undefined && k?.ino !== f.ino) {
        await linkInto(files, base, keep.dir, base)
      }
    } finally {
      await keep.release()
    }
  }

  /**
   * Brings files/<name> in line with the index: the held version's verified
   * content, or nothing. Restores from staging (a commit interrupted between
   * its renames, when `rollForward`) or from keep/; moves aside what does not
   * verify. Runs under the name's lock, or at open.
   */
  async function settle (name: string, rollForward: boolean): Promise<RepairReport | undefined> {
    const held = index.get(name)
    const expected = held !== undefined && held.version.kind === VersionKind.File && !isExpired(held.version, clock.nowMs()) && !withdrawn.has(name) ? held : undefined
    let files
    try {
      files = await openParent(dirs.files, name, expected !== undefined)
    } catch (err) {
      if (!(err instanceof DmError)) throw err
      // A symlink or a file on the way: it is checked (and moved aside) as its own path.
      if (expected !== undefined) expected.present = false
      return { name, action: 'missing', reason: describeError(err) }
    }
    if (files === undefined) return undefined
    try {
      const { dir, base } = files
      const st = await lstatEntry(dir, base)
      if (expected === undefined) {
        if (st === undefined || st.isDirectory()) return undefined
        const where = await moveAside(dir, base, name)
        await unlinkName(dirs.keep, name)
        const why = held === undefined ? 'no version of it is held' : held.version.kind === VersionKind.Tombstone ? 'it was deleted by a tombstone' : withdrawn.has(name) ? 'its signer was revoked' : 'it has expired'
        return { name, action: 'moved-aside', reason: `files/${printable(name)} appeared, but ${why}; moved to ${where}` }
      }
      if (st !== undefined && expected.present && fingerprints.get(name) === statFingerprint(st)) return undefined
      const sha = expected.version.sha256
      if (st?.isFile() === true && await readVerified(dir, base, sha) !== undefined) {
        expected.present = true
        await ensureKept(name, dir, base)
        fingerprints.set(name, statFingerprint(await lstatEntry(dir, base) as fs.Stats))
        return undefined
      }
      fingerprints.delete(name)
      if (st?.isDirectory() === true) {
        expected.present = false
        return { name, action: 'missing', reason: `files/${printable(name)} is a directory (left by an older [files] layout?); see docs/WATCHING.md` }
      }
      const staged = `${hex(expected.id)}.content`
      const keep = await openParentIfSafe(dirs.keep, name)
      try {
        let source: { from: HeldDir, entry: string } | undefined
        if (rollForward && await readVerified(dirs.staging, staged, sha) !== undefined) source = { from: dirs.staging, entry: staged }
        else if (keep !== undefined && await readVerified(keep.dir, base, sha) !== undefined) source = { from: keep.dir, entry: base }
        else if (keep !== undefined) await unlinkEntry(keep.dir, base)
        if (source === undefined) {
          const known = !expected.present
          expected.present = false
          if (st === undefined && known) return undefined
          if (st === undefined) return { name, action: 'missing', reason: `files/${printable(name)} is missing and no intact local copy is left; it will be fetched again` }
          const where = await moveAside(dir, base, name)
          return { name, action: 'moved-aside', reason: `files/${printable(name)} did not match its signed hash; moved to ${where}; it will be fetched again` }
        }
        // Finishing a commit interrupted between its renames replaces the previous version's content: recovery, not tampering.
        const recovery = source.from === dirs.staging
        const evidence = st === undefined || recovery ? undefined : await moveAside(dir, base, name, true)
        // One rename over whatever is there: a consumer never sees the name missing.
        await linkInto(source.from, source.entry, dir, base)
        await dir.sync()
        if (recovery) {
          await unlinkEntry(dirs.staging, staged)
          await ensureKept(name, dir, base)
        }
        expected.present = true
        fingerprints.set(name, statFingerprint(await lstatEntry(dir, base) as fs.Stats))
        if (recovery) return undefined
        const was = evidence === undefined ? 'was missing' : `did not match its signed hash (kept as ${evidence})`
        return { name, action: 'restored', reason: `files/${printable(name)} ${was}; restored from the local copy` }
      } finally {
        await keep?.release()
      }
    } finally {
      await files.release()
    }
  }

  return settle
}
