import fsp from 'node:fs/promises'
import { DmError, describeError } from '../errors.js'
import { assertValidName, printable } from '../format/names.js'
import { VersionKind, encodeEnvelope, hex, versionId, type SignedVersion } from '../format/version.js'
import { supersedes } from '../policy/accept.js'
import { writeNewFileSynced } from './durable.js'
import { lstatEntry, openParent, unlinkEntry, type HeldDir } from './held-dir.js'
import { statFingerprint } from './intact.js'
import { createStagedContent, type StagedContent } from './staged.js'
import type { CommitOptions, CommitResult } from './store-api.js'
import { SIG_SUFFIX, type StoreState } from './store-state.js'

/*
 * The commit path. Order: stage content (as it arrives, staged.ts, or from
 * memory when small) and envelope (fsynced), rename the envelope into
 * versions/ (the commit point), link the content into keep/, rename it into
 * files/, fsync the directories. A crash between the renames is rolled forward
 * at start (load.ts, repair.ts), because the staged content is named by the
 * version id it belongs to.
 */

export interface Committer {
  /** Store.commit without the lock: call under the name's lock (name-locks.ts). */
  commitLocked: (version: SignedVersion, content: Uint8Array | StagedContent | undefined, opts: CommitOptions) => Promise<CommitResult>
  /** Store.stage. */
  stage: () => Promise<StagedContent>
}

/** `problem` reports a collision or an unsafe directory (once per name). */
export function createCommitter (state: StoreState, problem: (message: string) => void): Committer {
  const { dirs, index, fingerprints, expired, withdrawn } = state
  /**
   * Numbers the staged names of this store's commits: unique within the process, and
   * start-up empties staging/ (the daemon's lock keeps any other process out).
   */
  let attempts = 0
  /** Collisions already reported, so a name retried by every sync round is reported once. */
  const reported = new Set<string>()

  const reportOnce = (key: string, message: string): void => {
    if (reported.has(key)) return
    reported.add(key)
    problem(message)
  }

  /** Refuses a name whose entry is a directory in files/, keep/ or versions/ (ERR_NAME_COLLISION). */
  async function assertNoCollision (name: string, dir: HeldDir, entry: string, where: string): Promise<void> {
    if ((await lstatEntry(dir, entry))?.isDirectory() === true) {
      throw new DmError('ERR_NAME_COLLISION', `cannot store "${printable(name)}": ${where}/${printable(name)} is a directory (left by an older [files] layout?); see docs/WATCHING.md`)
    }
  }

  /** `content`: in memory (small, checked by the caller) or staged as it arrived; none for a tombstone. */
  async function commitLocked (version: SignedVersion, content: Uint8Array | StagedContent | undefined, opts: CommitOptions): Promise<CommitResult> {
    const name = version.name
    assertValidName(name)
    const id = opts.id ?? versionId(version)
    const held = index.get(name)
    const replaces = opts.replaces ?? (h => supersedes({ timestampMs: version.timestampMs, id }, h))
    if (!replaces(held)) return { committed: false }
    const isFile = version.kind === VersionKind.File
    if (isFile && content === undefined) throw new DmError('ERR_STORE_IO', `cannot store "${printable(name)}": a file version needs its content`)
    const envelope = encodeEnvelope(version)
    const opened: Array<{ release: () => Promise<void> }> = []
    try {
      // Collisions are found before anything is staged: a refusal writes nothing. All three are
      // settled before any failure is thrown, so none is still opening (and then leaked) after release.
      const parents = await Promise.allSettled([dirs.files, dirs.keep, dirs.versions].map(async root => await openParent(root, name, true)))
      for (const r of parents) if (r.status === 'fulfilled' && r.value !== undefined) opened.push(r.value)
      for (const r of parents) if (r.status === 'rejected') throw r.reason
      const [files, keep, versions] = parents.map(r => (r as PromiseFulfilledResult<NonNullable<Awaited<ReturnType<typeof openParent>>>>).value)
      await assertNoCollision(name, files.dir, files.base, 'files')
      await assertNoCollision(name, keep.dir, keep.base, 'keep')
      await assertNoCollision(name, versions.dir, versions.base + SIG_SUFFIX, 'versions')
      return await stageAndRename(version, isFile ? content : undefined, envelope, id, files.dir, keep.dir, versions.dir, files.base)
    } catch (err) {
      if (err instanceof DmError && (err.code === 'ERR_NAME_COLLISION' || err.code === 'ERR_STATE_DIR_UNSAFE')) {
        reportOnce(`${err.code} ${name}`, err.message)
        throw err
      }
      if (err instanceof DmError) throw err
      throw new DmError('ERR_STORE_IO', `cannot store "${printable(name)}": ${describeError(err)}`, { cause: err })
    } finally {
      await Promise.all(opened.map(async p => await p.release()))
    }
  }

  /**
   * Writes and fsyncs content held in memory as staging/<version id>.content. A file
   * already there is an earlier attempt at the same version (or its roll-forward
   * copy): replaced, under the name's lock.
   */
  async function writeStaged (entry: string, content: Uint8Array): Promise<void> {
    try {
      await writeNewFileSynced(dirs.staging.at(entry), content)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      await unlinkEntry(dirs.staging, entry)
      await writeNewFileSynced(dirs.staging.at(entry), content)
    }
  }

  async function stageAndRename (version: SignedVersion, content: Uint8Array | StagedContent | undefined, envelope: Buffer, id: Uint8Array,
    files: HeldDir, keep: HeldDir, versions: HeldDir, base: string): Promise<CommitResult> {
    const name = version.name
    const isFile = content !== undefined
    const tag = `${hex(id)}.${(++attempts).toString(16)}`
    const stagedSig = `${tag}.sig`
    const stagedKeep = `${tag}.keep`
    const staged = `${hex(id)}.content`
    const staging = dirs.staging
    let pastCommitPoint = false
    try {
      // Both staged files are flushed at once: one disk round instead of two. The content ends
      // up named by its version id, the name start-up rolls forward from (8.2): content in
      // memory is written there directly, streamed content renamed there; either replaces a
      // leftover of an earlier attempt at the same version.
      const writes = await Promise.allSettled([
        content instanceof Uint8Array
          ? writeStaged(staged, content)
          : content?.seal().then(async part => await fsp.rename(staging.at(part), staging.at(staged))),
        writeNewFileSynced(staging.at(stagedSig), envelope)
      ])
      for (const r of writes) if (r.status === 'rejected') throw r.reason
      if (isFile) await fsp.link(staging.at(staged), staging.at(stagedKeep))
      await fsp.rename(staging.at(stagedSig), versions.at(base + SIG_SUFFIX)) // commit point
      pastCommitPoint = true
      if (isFile) {
        await fsp.rename(staging.at(stagedKeep), keep.at(base))
        await fsp.rename(staging.at(staged), files.at(base))
      } else {
        await Promise.all([unlinkEntry(files, base), unlinkEntry(keep, base)])
      }
      // keep/ is not fsynced: a link lost to a power cut is made again from files/ at the next start.
      await Promise.all([versions.sync(), files.sync()])
    } catch (err) {
      if (pastCommitPoint) {
        // The envelope is committed; the staged content stays for start-up to roll forward,
        // and until then the version counts as held but missing, so it is fetched again.
        index.set(name, { name, version, envelope, id, timestampMs: version.timestampMs, present: false })
        fingerprints.delete(name)
      } else {
        // Best effort: a failing clean-up must not replace the error being reported.
        await Promise.all([stagedSig, staged, stagedKeep].map(async e => await unlinkEntry(staging, e))).catch(() => {})
      }
      throw err
    }
    index.set(name, { name, version, envelope, id, timestampMs: version.timestampMs, present: true })
    if (isFile) {
      const st = await lstatEntry(files, base)
      if (st !== undefined) fingerprints.set(name, statFingerprint(st))
    } else {
      fingerprints.delete(name)
    }
    expired.delete(name)
    withdrawn.delete(name)
    return { committed: true }
  }

  async function stage (): Promise<StagedContent> {
    try {
      return await createStagedContent(dirs.staging)
    } catch (err) {
      throw new DmError('ERR_STORE_IO', `cannot stage content in ${printable(dirs.staging.path)}: ${describeError(err)}`, { cause: err })
    }
  }

  return { commitLocked, stage }
}
