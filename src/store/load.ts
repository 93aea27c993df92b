import type fs from 'node:fs'
import fsp from 'node:fs/promises'
import { describeError } from '../errors.js'
import { printable } from '../format/names.js'
import { VersionKind, decodeEnvelope, isExpired, versionId, type SignedVersion } from '../format/version.js'
import { OPEN_READ, isAbsent, openSubdir, unlinkEntry, type HeldDir } from './held-dir.js'
import { intactSync, readRegularSync } from './intact.js'
import type { MoveAside } from './quarantine.js'
import type { Settle } from './repair.js'
import { SIG_SUFFIX, type StoreState } from './store-state.js'

/*
 * Start-up: the index is read back from versions/, every envelope checked
 * again, and files/, keep/ and staging/ brought in line with it (a commit
 * interrupted between its renames is rolled forward). Whatever does not
 * verify is moved aside, never served.
 */

export interface LoadInit {
  /** Reports a problem found (and dealt with); must not block. */
  problem: (message: string) => void
  /** True, or why the envelope is refused (StoreEvents.verify). */
  verify: (version: SignedVersion) => true | string
  settle: Settle
  moveAside: MoveAside
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

/** Fills state.index from state_dir and repairs what it finds; throws on an I/O error. */
export async function loadState (state: StoreState, init: LoadInit): Promise<void> {
  const { dirs, index, fingerprints, clock } = state
  const { problem, verify, settle, moveAside } = init

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
        problem(`envelope versions/${printable(rel)} is not a regular file; moved to ${where}`)
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
      problem(`envelope versions/${printable(rel)}: ${refused}; refused at start, moved to ${where}`)
      // Its content is unverified now: the scan of files/ moves it aside too.
      return
    }
    // Present until settle() finds otherwise (and reports it).
    index.set(version.name, { name: version.name, version, envelope, id: versionId(version), timestampMs: version.timestampMs, present: true })
  }

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
    if (report !== undefined) problem(report.reason)
  }
  // Whatever else is in files/ is unverified: moved aside, never left under a name consumers read.
  await walk(dirs.files, '', async (dir, ent, rel) => {
    const held = index.get(rel)
    if (held?.present === true && held.version.kind === VersionKind.File && !isExpired(held.version, clock.nowMs())) return
    if (held === undefined || held.version.kind === VersionKind.Tombstone || isExpired(held.version, clock.nowMs())) {
      const where = await moveAside(dir, ent.name, rel)
      problem(`files/${printable(rel)} is not a held version; moved to ${where}`)
    }
  })
  // keep/ holds links to present held files only.
  await walk(dirs.keep, '', async (dir, ent, rel) => {
    const held = index.get(rel)
    if (held?.present !== true || held.version.kind !== VersionKind.File || isExpired(held.version, clock.nowMs())) await unlinkEntry(dir, ent.name)
  })
  // Whatever is still staged belongs to no committed version.
  for (const leftover of await fsp.readdir(dirs.staging.at('.'))) await fsp.rm(dirs.staging.at(leftover), { force: true, recursive: true })
}
