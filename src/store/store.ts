import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs/promises'
import path from 'node:path'
import { DmError, describeError } from '../errors.js'
import { assertValidName, printable } from '../format/names.js'
import {
  VersionKind, decodeEnvelope, encodeEnvelope, hex, isExpired, versionId, type SignedVersion
} from '../format/version.js'
import { supersedes, type HeldVersion } from '../policy/accept.js'
import { systemClock, type Clock } from '../util/clock.js'
import { DIR_MODE, ensureParent, fsyncDir, writeNewFileSynced } from './durable.js'

/*
 * The local store. On disk, under state_dir:
 *   files/<name>          the content of the held version (what consumers read)
 *   versions/<name>.sig   its signed envelope (the persisted index)
 *   staging/              temporary files; same filesystem, so rename is atomic
 *
 * Commit order: stage content and envelope (fsynced), rename the envelope into
 * versions/ (the commit point), rename the content into files/, fsync both
 * directories. A crash between the two renames is rolled forward at start,
 * because the staged content is named by the version id it belongs to.
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
}

export interface Store {
  readonly filesDir: string
  get: (name: string) => HeldEntry | undefined
  entries: () => IterableIterator<HeldEntry>
  size: () => number
  /**
   * Writes a version the policy has accepted. Serialised per name, and
   * compare-and-set: it only commits when still newer than what is held
   * (or the same version whose content was missing).
   */
  commit: (version: SignedVersion, content: Uint8Array, opts?: CommitOptions) => Promise<CommitResult>
  /** The held content of `name`, checked against its signed hash. */
  readContent: (name: string) => Promise<Buffer | undefined>
  /** Removes the files of held versions that have expired; returns their names. */
  expire: () => Promise<string[]>
  /** Resolves once every commit started so far has finished (for a clean stop). */
  flush: () => Promise<void>
}

const SIG_SUFFIX = '.sig'

export async function openStore (stateDir: string, events: StoreEvents = { problem: () => {} }): Promise<Store> {
  const filesDir = path.join(stateDir, 'files')
  const versionsDir = path.join(stateDir, 'versions')
  const stagingDir = path.join(stateDir, 'staging')
  for (const dir of [stateDir, filesDir, versionsDir, stagingDir]) await fs.mkdir(dir, { recursive: true, mode: DIR_MODE })

  const clock = events.clock ?? systemClock
  const index = new Map<string, HeldEntry>()
  const locks = new Map<string, Promise<void>>()
  /** Names whose expired content has been removed. */
  const expired = new Set<string>()

  /** The path of a name under a base directory; refuses anything that would leave it. */
  function under (base: string, name: string, suffix = ''): string {
    assertValidName(name)
    const p = path.join(base, name + suffix)
    if (!p.startsWith(base + path.sep)) throw new DmError('ERR_NAME_INVALID', `name "${printable(name)}" leaves ${base}`)
    return p
  }

  const stagedContent = (id: Uint8Array): string => path.join(stagingDir, `${hex(id)}.content`)

  async function fileMatches (file: string, sha: Uint8Array): Promise<boolean> {
    try {
      const data = await fs.readFile(file)
      return createHash('sha256').update(data).digest().equals(sha)
    } catch {
      return false
    }
  }

  async function recover (sigFile: string): Promise<void> {
    const rel = path.relative(versionsDir, sigFile).slice(0, -SIG_SUFFIX.length).split(path.sep).join('/')
    let version: SignedVersion
    let envelope: Buffer
    try {
      envelope = await fs.readFile(sigFile)
      version = decodeEnvelope(envelope)
    } catch (err) {
      events.problem(`ignoring unreadable envelope ${sigFile}: ${describeError(err)}`)
      return
    }
    if (version.name !== rel) {
      events.problem(`ignoring envelope ${sigFile}: it is for "${printable(version.name)}"`)
      return
    }
    const id = versionId(version)
    const target = under(filesDir, version.name)
    let present: boolean
    if (version.kind === VersionKind.Tombstone || isExpired(version, clock.nowMs())) {
      await fs.rm(target, { force: true })
      present = true
    } else if (await fileMatches(target, version.sha256)) {
      present = true
    } else if (await fileMatches(stagedContent(id), version.sha256)) {
      // Crashed between the two renames: finish the commit.
      await ensureParent(target)
      await fs.rename(stagedContent(id), target)
      await fsyncDir(path.dirname(target))
      present = true
    } else {
      events.problem(`content of "${printable(version.name)}" is missing or does not match its signed hash; it will be fetched again`)
      present = false
    }
    index.set(version.name, { name: version.name, version, envelope, id, timestampMs: version.timestampMs, present })
  }

  async function walk (dir: string): Promise<string[]> {
    const out: string[] = []
    for (const ent of await fs.readdir(dir, { withFileTypes: true })) {
      const p = path.join(dir, ent.name)
      if (ent.isDirectory()) out.push(...await walk(p))
      else if (ent.isFile() && ent.name.endsWith(SIG_SUFFIX)) out.push(p)
    }
    return out
  }

  for (const sigFile of await walk(versionsDir)) {
    // One bad entry must not keep the daemon from starting with the others.
    await recover(sigFile).catch(err => events.problem(`cannot recover ${sigFile}: ${describeError(err)}`))
  }
  // Whatever is still staged belongs to no committed version.
  for (const leftover of await fs.readdir(stagingDir)) await fs.rm(path.join(stagingDir, leftover), { force: true, recursive: true })

  /** Runs fn after every earlier operation on the same name: writes to one name never interleave. */
  async function withLock<T> (name: string, fn: () => Promise<T>): Promise<T> {
    const prev = locks.get(name) ?? Promise.resolve()
    const next = prev.then(fn)
    const settled = next.then(() => {}, () => {})
    locks.set(name, settled)
    void settled.then(() => { if (locks.get(name) === settled) locks.delete(name) })
    return await next
  }

  async function commitLocked (version: SignedVersion, content: Uint8Array, opts: CommitOptions): Promise<CommitResult> {
    const id = versionId(version)
    const held = index.get(version.name)
    const replaces = opts.replaces ?? (h => supersedes({ timestampMs: version.timestampMs, id }, h))
    if (!replaces(held)) return { committed: false }
    const envelope = encodeEnvelope(version)
    const target = under(filesDir, version.name)
    const sigTarget = under(versionsDir, version.name, SIG_SUFFIX)
    const tag = `${hex(id)}.${randomBytes(4).toString('hex')}`
    const stagedSig = path.join(stagingDir, `${tag}.sig`)
    const staged = stagedContent(id)
    let pastCommitPoint = false
    try {
      // Both staged files are flushed at once: one disk round instead of two.
      const staging = await Promise.allSettled([
        version.kind === VersionKind.File ? fs.rm(staged, { force: true }).then(async () => await writeNewFileSynced(staged, content)) : undefined,
        writeNewFileSynced(stagedSig, envelope)
      ])
      for (const r of staging) if (r.status === 'rejected') throw r.reason
      const sigDir = await ensureParent(sigTarget)
      const fileDir = await ensureParent(target)
      await fs.rename(stagedSig, sigTarget) // commit point
      pastCommitPoint = true
      if (version.kind === VersionKind.File) await fs.rename(staged, target)
      else await fs.rm(target, { force: true })
      await Promise.all([fsyncDir(sigDir), fsyncDir(fileDir)])
    } catch (err) {
      if (pastCommitPoint) {
        // The envelope is committed; the staged content stays for start-up to roll forward,
        // and until then the version counts as held but missing, so it is fetched again.
        index.set(version.name, { name: version.name, version, envelope, id, timestampMs: version.timestampMs, present: false })
      } else {
        // Best effort: a failing clean-up must not replace the error being reported.
        await Promise.all([fs.rm(stagedSig, { force: true }), fs.rm(staged, { force: true })]).catch(() => {})
      }
      throw new DmError('ERR_STORE_IO', `cannot store "${printable(version.name)}": ${describeError(err)}`, { cause: err })
    }
    index.set(version.name, { name: version.name, version, envelope, id, timestampMs: version.timestampMs, present: true })
    expired.delete(version.name)
    return { committed: true }
  }

  return {
    filesDir,
    get: name => index.get(name),
    entries: () => index.values(),
    size: () => index.size,
    commit: async (version, content, opts = {}) => await withLock(version.name, async () => await commitLocked(version, content, opts)),
    async expire () {
      const now = clock.nowMs()
      const due = [...index.values()].filter(e => e.version.kind === VersionKind.File && isExpired(e.version, now) && !expired.has(e.name))
      for (const e of due) {
        // Under the name's lock, so it cannot interleave with a commit of a newer version.
        await withLock(e.name, async () => {
          if (index.get(e.name) !== e) return
          const target = under(filesDir, e.name)
          await fs.rm(target, { force: true })
          await fsyncDir(path.dirname(target)).catch(() => {})
          expired.add(e.name)
        })
      }
      return due.map(e => e.name)
    },
    async flush () {
      await Promise.all(locks.values())
    },
    async readContent (name) {
      const held = index.get(name)
      if (held === undefined || !held.present || held.version.kind !== VersionKind.File || isExpired(held.version, clock.nowMs())) return undefined
      const data = await fs.readFile(under(filesDir, name)).catch(() => undefined)
      if (data === undefined || !createHash('sha256').update(data).digest().equals(held.version.sha256)) {
        held.present = false
        events.problem(`content of "${printable(name)}" changed on disk; it will be fetched again`)
        return undefined
      }
      return data
    }
  }
}
