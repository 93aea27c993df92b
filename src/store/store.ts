import path from 'node:path'
import { DmError, describeError } from '../errors.js'
import { nameProblem, printable } from '../format/names.js'
import { VersionKind, isExpired, signatureIsValid, type SignedVersion } from '../format/version.js'
import { systemClock } from '../util/clock.js'
import { createCommitter } from './commit.js'
import { createContentReader } from './content-reader.js'
import { openParentIfSafe, unlinkEntry } from './held-dir.js'
import { loadState } from './load.js'
import { createNameLocks } from './name-locks.js'
import { createQuarantine } from './quarantine.js'
import { createRepair } from './repair.js'
import type { StagedContent } from './staged.js'
import { openStateDir } from './state-dir.js'
import type { CommitOptions, CommitResult, RepairReport, Store, StoreEvents } from './store-api.js'
import { createStoreState } from './store-state.js'

export type { CommitOptions, CommitResult, HeldEntry, RepairReport, Store, StoreEvents } from './store-api.js'

/*
 * The local store. On disk, under state_dir:
 *   files/<name>          the content of the held version (what consumers read)
 *   keep/<name>           a second hard link to that content: restores files/<name>
 *                         if it is deleted or replaced (not if edited in place)
 *   versions/<name>.sig   its signed envelope (the persisted index)
 *   staging/              temporary files; same filesystem, so rename is atomic
 *   quarantine/           content and envelopes that failed a check, moved aside
 *
 * This module wires the parts: state-dir.ts holds the directories, load.ts
 * reads them back at open, repair.ts and quarantine.ts mend what does not
 * verify, commit.ts writes (commit order there), content-reader.ts serves
 * content, name-locks.ts serialises each name. Every path is reached through
 * held directories (held-dir.ts): no symlink under state_dir is ever followed.
 */

export async function openStore (stateDir: string, events: StoreEvents = { problem: () => {} }): Promise<Store> {
  const { root, dirs } = await openStateDir(stateDir)
  const filesDir = path.join(stateDir, 'files')
  const state = createStoreState(dirs, events.clock ?? systemClock)
  const { index, fingerprints, expired, withdrawn, clock } = state
  const verify = events.verify ?? ((v: SignedVersion) => signatureIsValid(v) ? true : 'its signature is not valid')
  // Writes to one name are serialised: commits, checks, expiries and withdrawals.
  const { run: withLock, flush } = createNameLocks()
  const moveAside = createQuarantine(dirs.quarantine)
  const settle = createRepair(state, moveAside)

  try {
    // I/O errors here are fatal: a store that cannot read its state must not start as if empty.
    await loadState(state, { problem: events.problem, verify, settle, moveAside })
  } catch (err) {
    await Promise.all([root, ...Object.values(dirs)].map(async d => await d.close().catch(() => {})))
    throw err instanceof DmError ? err : new DmError('ERR_STORE_IO', `cannot open the store in ${printable(stateDir)}: ${describeError(err)}`, { cause: err })
  }

  const { commitLocked, stage } = createCommitter(state, events.problem)

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

  const { readContent, openContent } = createContentReader(state, check, events.problem)

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
    flush,
    async close () {
      await Promise.all([root, ...Object.values(dirs)].map(async d => await d.close()))
    },
    readContent
  }
}
