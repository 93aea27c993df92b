import { createHash, randomBytes } from 'node:crypto'
import type fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { DmError, describeError } from '../errors.js'
import { assertValidName, nameProblem, printable } from '../format/names.js'
import {
  VersionKind, decodeEnvelope, encodeEnvelope, hex, isExpired, signatureIsValid, versionId, type SignedVersion
} from '../format/version.js'
import { supersedes, type HeldVersion } from '../policy/accept.js'
import { systemClock, type Clock } from '../util/clock.js'
import { DIR_MODE, writeNewFileSynced } from './durable.js'
import { OPEN_READ, isAbsent, lstatEntry, openHeldDir, openParent, openParentIfSafe, openSubdir, unlinkEntry, unlinkName, type HeldDir } from './held-dir.js'
import { intactSync, readRegularSync, statFingerprint } from './intact.js'
import { createStagedContent, type StagedContent } from './staged.js'
import { STATE_SUBDIRS, crossDeviceError, unsafeDirError, unsafeDirReason } from './state-dir.js'

/*
 * The local store. On disk, under state_dir:
 *   files/<name>          the content of the held version (what consumers read)
 *   keep/<name>           a second hard link to that content: restores files/<name>
 *                         if it is deleted or replaced (not if edited in place)
 *   versions/<name>.sig   its signed envelope (the persisted index)
 *   staging/              temporary files; same filesystem, so rename is atomic
 *   quarantine/           content and envelopes that failed a check, moved aside
 *
 * Commit order: stage content (as it arrives, staged.ts, or from memory when small) and envelope (fsynced), rename the envelope into
 * versions/ (the commit point), link the content into keep/, rename it into
 * files/, fsync the directories. A crash between the renames is rolled forward
 * at start, because the staged content is named by the version id it belongs
 * to. Every path is reached through held directories (held-dir.ts): no symlink
 * under state_dir is ever followed.
 */

export interface HeldEntry extends HeldVersion {
  name: string
  version: SignedVersion
  envelope: Buffer
  /** False when the content on disk is missing or does not match: it must be fetched again. */
  present: boolean
}

export interface CommitResult {
  /** False when a newer (or the same) version was committed first; nothing was written. */
  committed: boolean
}

export interface CommitOptions {
  /**
   * Decides, under the name's lock, whether the version replaces what is held
   * then. The acceptor passes its rule (which also knows about revoked
   * signers); without it, the policy's plain order decides.
   */
  replaces?: (held: HeldEntry | undefined) => boolean
}

export interface StoreEvents {
  /** Reports a problem found in the state directory; must not block. */
  problem: (message: string) => void
  /** Decides expiry; the system clock when absent. */
  clock?: Clock
  /**
   * Re-checks every envelope at open (the daemon passes its acceptance policy:
   * network id, signer listed, signature). True, or why the envelope is refused;
   * a refused envelope and its content are moved aside. Default: the signature.
   */
  verify?: (version: SignedVersion) => true | string
}

/** What a check of one name found and did. */
export interface RepairReport {
  name: string
  /** restored: put back from keep/ or staging; moved-aside: unverified content quarantined; missing: nothing to restore. */
  action: 'restored' | 'moved-aside' | 'missing'
  /** One line. */
  reason: string
}

export interface Store {
  readonly filesDir: string
  get: (name: string) => HeldEntry | undefined
  entries: () => IterableIterator<HeldEntry>
  size: () => number
  /**
   * Writes a version the policy has accepted. Serialised per name, and
   * compare-and-set: it only commits when still newer than what is held
   * (or the same version whose content was missing). A name whose path is
   * taken by a file or directory of another name fails with ERR_NAME_COLLISION
   * before anything is written.
   */
  commit: (version: SignedVersion, content: Uint8Array, opts?: CommitOptions) => Promise<CommitResult>
  /** A new file in staging/ to receive content into as it arrives; hand it to commitStaged or discard it. */
  stage: () => Promise<StagedContent>
  /**
   * commit() for content already staged: takes ownership of `staged` (it is
   * committed, or discarded whatever happens). The caller has checked its
   * size and SHA-256 against the version; a tombstone takes no staged content.
   */
  commitStaged: (version: SignedVersion, staged: StagedContent | undefined, opts?: CommitOptions) => Promise<CommitResult>
  /** The held content of `name`, checked against its signed hash. */
  readContent: (name: string) => Promise<Buffer | undefined>
  /**
   * The held content of `name` as chunks of at most `chunkBytes`, for serving
   * it without holding it whole. The hash is checked as it is read: on a
   * mismatch the last step throws (the reader discards what it got, as any
   * receiver checks the signed hash anyway) and the file is repaired or
   * marked missing. Undefined when not held with content.
   */
  openContent: (name: string, chunkBytes: number) => Promise<AsyncIterable<Uint8Array> | undefined>
  /**
   * Re-checks `files/<rel>` against what is held: restores or moves aside
   * what does not match, and moves aside anything where no file should be.
   * Undefined when all was well. Serialised with commits of that name.
   */
  check: (rel: string) => Promise<RepairReport | undefined>
  /**
   * Removes the file of a held version whose signer was revoked (fail closed):
   * from files/ and keep/, keeping the envelope, and never restored. Any
   * version the policy accepts replaces it.
   */
  withdraw: (name: string) => Promise<void>
  /** Removes the files of held versions that have expired; returns their names. */
  expire: () => Promise<string[]>
  /** Resolves once every commit started so far has finished (for a clean stop). */
  flush: () => Promise<void>
  /** Closes the directories held; call after flush(). */
  close: () => Promise<void>
}

const SIG_SUFFIX = '.sig'
/** Entries kept in quarantine/; the oldest are deleted beyond this. */
export const MAX_QUARANTINED = 64

type Dirs = Record<typeof STATE_SUBDIRS[number], HeldDir>

/** Holds state_dir and its directories, refusing any that is a symlink, writable by others or on another filesystem. */
async function openStateDir (stateDir: string): Promise<{ root: HeldDir, dirs: Dirs }> {
  await fsp.mkdir(stateDir, { recursive: true, mode: DIR_MODE })
  const root = await openHeldDir(stateDir)
  const opened: HeldDir[] = [root]
  try {
    const rootStat = await root.stat()
    const rootReason = unsafeDirReason(rootStat)
    if (rootReason !== undefined) throw unsafeDirError(stateDir, rootReason)
    const dirs: Partial<Dirs> = {}
    for (const sub of STATE_SUBDIRS) {
      // keep/ and quarantine/ are the daemon's alone; files/ is for the consumer group.
      const mode = sub === 'keep' || sub === 'quarantine' ? 0o700 : DIR_MODE
      await fsp.mkdir(root.at(sub), { mode }).catch(err => { if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err })
      const held = await openHeldDir(root.at(sub), path.join(stateDir, sub))
      opened.push(held)
      const st = await held.stat()
      const reason = unsafeDirReason(st)
      if (reason !== undefined) throw unsafeDirError(held.path, reason)
      if (st.dev !== rootStat.dev) throw crossDeviceError(held.path, stateDir)
      dirs[sub] = held
    }
    return { root, dirs: dirs as Dirs }
  } catch (err) {
    await Promise.all(opened.map(async d => await d.close().catch(() => {})))
    throw err
  }
}

const sha256 = (data: Uint8Array): Buffer => createHash('sha256').update(data).digest()

/** The content of a regular file `entry` in `dir` if it has the hash `sha`; undefined if absent, not a regular file or different. */
async function readVerified (dir: HeldDir, entry: string, sha: Uint8Array): Promise<Buffer | undefined> {
  let handle: fsp.FileHandle
  try {
    handle = await fsp.open(dir.at(entry), OPEN_READ)
  } catch (err) {
    if (isAbsent(err)) return undefined
    throw err
  }
  try {
    if (!(await handle.stat()).isFile()) return undefined
    const data = await handle.readFile()
    return sha256(data).equals(sha) ? data : undefined
  } finally {
    await handle.close()
  }
}

export async function openStore (stateDir: string, events: StoreEvents = { problem: () => {} }): Promise<Store> {
  const { root, dirs } = await openStateDir(stateDir)
  const filesDir = path.join(stateDir, 'files')
  const clock = events.clock ?? systemClock
  const verify = events.verify ?? ((v: SignedVersion) => signatureIsValid(v) ? true : 'its signature is not valid')
  const index = new Map<string, HeldEntry>()
  const locks = new Map<string, Promise<void>>()
  /** Names whose expired content has been removed. */
  const expired = new Set<string>()
  /** Names whose content was withdrawn (its signer revoked): absent on purpose, never restored from keep/. */
  const withdrawn = new Set<string>()
  /** (ino, size, mtime, ctime) of files/<name> when last verified: a check whose stat is unchanged skips the hash. */
  const fingerprints = new Map<string, string>()
  /** Collisions already reported, so a name retried by every sync round is reported once. */
  const reported = new Set<string>()

  const reportOnce = (key: string, message: string): void => {
    if (reported.has(key)) return
    reported.add(key)
    events.problem(message)
  }

  const tmpName = (suffix: string): string => `${Date.now()}.${randomBytes(4).toString('hex')}.${suffix}`

  /**
   * Moves an entry into quarantine/ (a rename: same filesystem), or with
   * `copy` links it there as evidence before it is replaced. Keeps at most
   * MAX_QUARANTINED entries. Returns where it went.
   */
  async function moveAside (dir: HeldDir, entry: string, label: string, copy = false): Promise<string> {
    const target = `${String(Date.now()).padStart(15, '0')}-${randomBytes(3).toString('hex')}-${label.replaceAll('/', '%').slice(0, 200)}`
    if (copy) await fsp.link(dir.at(entry), dirs.quarantine.at(target))
    else await fsp.rename(dir.at(entry), dirs.quarantine.at(target))
    await Promise.all([dir.sync(), dirs.quarantine.sync()])
    const all = (await fsp.readdir(dirs.quarantine.at('.'))).sort()
    for (const old of all.slice(0, Math.max(0, all.length - MAX_QUARANTINED))) {
      await fsp.rm(dirs.quarantine.at(old), { recursive: true, force: true })
    }
    return path.join(dirs.quarantine.path, target)
  }

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

  /** Reads, decodes and verifies one envelope at open; moves aside what fails. */
  async function loadEnvelope (dir: HeldDir, entry: string, rel: string): Promise<void> {
    const name = rel.slice(0, -SIG_SUFFIX.length)
    // The fast path (intact.ts); anything unusual is read again the careful way, which says what is wrong.
    let envelope = readRegularSync(dir, entry)
    if (envelope === undefined) {
      try {
        const handle = await fsp.open(dir.at(entry), OPEN_READ)
        try {
          envelope = await handle.readFile()
        } finally {
          await handle.close()
        }
      } catch (err) {
        if (!isAbsent(err)) throw err
        const where = await moveAside(dir, entry, `${rel}`)
        events.problem(`envelope versions/${printable(rel)} is not a regular file; moved to ${where}`)
        return
      }
    }
    let version: SignedVersion | undefined
    let refused: string
    try {
      version = decodeEnvelope(envelope)
      const verdict = version.name !== name ? `it is for "${printable(version.name)}"` : verify(version)
      refused = verdict === true ? '' : verdict
    } catch (err) {
      refused = `it does not decode: ${describeError(err)}`
    }
    if (version === undefined || refused !== '') {
      const where = await moveAside(dir, entry, rel)
      events.problem(`envelope versions/${printable(rel)}: ${refused}; refused at start, moved to ${where}`)
      // Its content is unverified now: the scan of files/ moves it aside too.
      return
    }
    // Present until settle() finds otherwise (and reports it).
    index.set(version.name, { name: version.name, version, envelope, id: versionId(version), timestampMs: version.timestampMs, present: true })
  }

  /** Calls `onEntry` for every entry below `dir` that is not a directory (links are not followed). */
  async function walk (dir: HeldDir, rel: string, onEntry: (dir: HeldDir, entry: fs.Dirent, rel: string) => Promise<void>): Promise<void> {
    for (const ent of await fsp.readdir(dir.at('.'), { withFileTypes: true })) {
      const r = rel === '' ? ent.name : `${rel}/${ent.name}`
      if (ent.isDirectory()) {
        const sub = await openSubdir(dir, [ent.name], false)
        if (sub === undefined) continue
        try {
          await walk(sub, r, onEntry)
        } finally {
          await sub.close()
        }
      } else {
        await onEntry(dir, ent, r)
      }
    }
  }

  try {
    // I/O errors here are fatal: a store that cannot read its state must not start as if empty.
    await walk(dirs.versions, '', async (dir, ent, rel) => {
      if (ent.name.endsWith(SIG_SUFFIX)) await loadEnvelope(dir, ent.name, rel)
    })
    const nowMs = clock.nowMs()
    for (const [name, held] of index) {
      if (held.version.kind === VersionKind.File && !isExpired(held.version, nowMs)) {
        const intact = intactSync(dirs.files, dirs.keep, name, held.version.size, held.version.sha256)
        if (intact !== undefined) { fingerprints.set(name, intact); continue }
      }
      const report = await settle(name, true)
      if (report !== undefined) events.problem(report.reason)
    }
    // Whatever else is in files/ is unverified: moved aside, never left under a name consumers read.
    await walk(dirs.files, '', async (dir, ent, rel) => {
      const held = index.get(rel)
      if (held?.present === true && held.version.kind === VersionKind.File && !isExpired(held.version, clock.nowMs())) return
      if (held === undefined || held.version.kind === VersionKind.Tombstone || isExpired(held.version, clock.nowMs())) {
        const where = await moveAside(dir, ent.name, rel)
        events.problem(`files/${printable(rel)} is not a held version; moved to ${where}`)
      }
    })
    // keep/ holds links to present held files only.
    await walk(dirs.keep, '', async (dir, ent, rel) => {
      const held = index.get(rel)
      if (held?.present !== true || held.version.kind !== VersionKind.File || isExpired(held.version, clock.nowMs())) await unlinkEntry(dir, ent.name)
    })
    // Whatever is still staged belongs to no committed version.
    for (const leftover of await fsp.readdir(dirs.staging.at('.'))) await fsp.rm(dirs.staging.at(leftover), { force: true, recursive: true })
  } catch (err) {
    await Promise.all([root, ...Object.values(dirs)].map(async d => await d.close().catch(() => {})))
    throw err instanceof DmError ? err : new DmError('ERR_STORE_IO', `cannot open the store in ${printable(stateDir)}: ${describeError(err)}`, { cause: err })
  }

  /** Runs fn after every earlier operation on the same name: writes to one name never interleave. */
  async function withLock<T> (name: string, fn: () => Promise<T>): Promise<T> {
    const prev = locks.get(name) ?? Promise.resolve()
    const next = prev.then(fn)
    const settled = next.then(() => {}, () => {})
    locks.set(name, settled)
    void settled.then(() => { if (locks.get(name) === settled) locks.delete(name) })
    return await next
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
    const id = versionId(version)
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
    const tag = `${hex(id)}.${randomBytes(4).toString('hex')}`
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

  async function commitStaged (version: SignedVersion, staged: StagedContent | undefined, opts: CommitOptions = {}): Promise<CommitResult> {
    try {
      return await withLock(version.name, async () => await commitLocked(version, staged, opts))
    } finally {
      // A no-op once committed (the file was renamed away); otherwise its bytes belong to nothing.
      await staged?.discard()
    }
  }

  async function check (rel: string): Promise<RepairReport | undefined> {
    if (nameProblem(rel) !== undefined) return undefined
    return await withLock(rel, async () => await settle(rel, false))
  }

  async function readContent (name: string, repair: boolean): Promise<Buffer | undefined> {
    const held = index.get(name)
    if (held === undefined || !held.present || held.version.kind !== VersionKind.File || isExpired(held.version, clock.nowMs())) return undefined
    const p = await openParentIfSafe(dirs.files, name)
    const data = p === undefined ? undefined : await readVerified(p.dir, p.base, held.version.sha256).finally(p.release)
    if (data !== undefined || !repair) return data
    // Changed on disk: repaired (or marked missing) as the tamper watch would, then read once more.
    fingerprints.delete(name)
    const report = await check(name)
    if (report !== undefined) events.problem(report.reason)
    return await readContent(name, false)
  }

  /** Removes a held name's file from files/ and keep/ (an expiry, a withdrawal); its envelope stays. Call under the name's lock. */
  async function removeContent (name: string): Promise<void> {
    for (const root of [dirs.files, dirs.keep]) {
      const p = await openParentIfSafe(root, name)
      if (p === undefined) continue
      try {
        await unlinkEntry(p.dir, p.base)
        await p.dir.sync()
      } finally {
        await p.release()
      }
    }
    fingerprints.delete(name)
  }

  async function openContent (name: string, chunkBytes: number): Promise<AsyncIterable<Uint8Array> | undefined> {
    const held = index.get(name)
    if (held === undefined || !held.present || held.version.kind !== VersionKind.File || isExpired(held.version, clock.nowMs())) return undefined
    const repair = (): void => {
      fingerprints.delete(name)
      void check(name).then(r => { if (r !== undefined) events.problem(r.reason) }, () => {})
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
    filesDir,
    openContent,
    get: name => index.get(name),
    entries: () => index.values(),
    size: () => index.size,
    async commit (version, content, opts = {}) {
      // In memory already: written straight to its staged name at commit (one file made, no rename).
      return await withLock(version.name, async () => await commitLocked(version, version.kind === VersionKind.File ? content : undefined, opts))
    },
    stage,
    commitStaged,
    check,
    async expire () {
      const now = clock.nowMs()
      const due = [...index.values()].filter(e => e.version.kind === VersionKind.File && isExpired(e.version, now) && !expired.has(e.name))
      for (const e of due) {
        // Under the name's lock, so it cannot interleave with a commit of a newer version.
        await withLock(e.name, async () => {
          if (index.get(e.name) !== e) return
          await removeContent(e.name)
          expired.add(e.name)
        })
      }
      return due.map(e => e.name)
    },
    async withdraw (name) {
      await withLock(name, async () => {
        const held = index.get(name)
        if (held === undefined) return
        await removeContent(name)
        withdrawn.add(name)
        held.present = false
      })
    },
    async flush () {
      await Promise.all(locks.values())
    },
    async close () {
      await Promise.all([root, ...Object.values(dirs)].map(async d => await d.close()))
    },
    readContent: async name => await readContent(name, true)

  }
}
