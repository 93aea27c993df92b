import fs from 'node:fs'
import path from 'node:path'
import { describeError } from '../errors.js'
import type { RepairReport, Store } from './store.js'

/*
 * Notices local changes to files/ while the daemon runs: a held file edited,
 * replaced or deleted, or something written where no held version is. Each
 * change is checked by the store against the signed hash (`Store.check`),
 * which restores from keep/ or moves the content aside and marks the entry not
 * present, so anti-entropy fetches it again.
 *
 * fs.watch (recursive; inotify on Linux) gives the paths; events are coalesced
 * for `debounceMs`, then checked one at a time. A periodic pass over every held
 * name (a stat each; a hash only when the stat changed) catches what the
 * watcher missed: events dropped under load, a directory created and filled
 * before its watch was added.
 */

/** Coalescing delay: one check per burst of events on a name (an editor's save is several). */
export const DEFAULT_DEBOUNCE_MS = 200
/** The safety-net pass over every held name. */
export const DEFAULT_RESCAN_INTERVAL_MS = 60_000
/** Paths waiting for a check; beyond this a full pass replaces them. */
const MAX_PENDING = 4096

export interface TamperWatchInit {
  store: Pick<Store, 'filesDir' | 'check' | 'entries' | 'get'>
  /** Each restore or move-aside, for a metric and a warn log; must not block. */
  onEvent: (report: RepairReport) => void
  /** A check that failed (an I/O error), or the watcher failing; must not block. */
  onError?: (message: string) => void
  debounceMs?: number
  rescanIntervalMs?: number
}

export interface TamperWatch {
  start: () => void
  /** Stops watching and waits for the check under way. */
  stop: () => Promise<void>
}

export function createTamperWatch (init: TamperWatchInit): TamperWatch {
  const { store, onEvent } = init
  const onError = init.onError ?? (() => {})
  const debounceMs = init.debounceMs ?? DEFAULT_DEBOUNCE_MS
  const rescanMs = init.rescanIntervalMs ?? DEFAULT_RESCAN_INTERVAL_MS
  const pending = new Set<string>()
  let fullPass = false
  /**
   * One non-recursive watch per directory of files/ that holds names, keyed
   * by its path under files/ ('' for files/ itself). Node's recursive watch
   * on Linux rescans the whole tree on every event, which made a catch-up of
   * 1,000 files quadratic; these are kept in step with the held names instead.
   */
  const watchers = new Map<string, fs.FSWatcher>()
  let debounce: NodeJS.Timeout | undefined
  let rescan: NodeJS.Timeout | undefined
  let running: Promise<void> = Promise.resolve()
  let stopped = true

  async function checkOne (rel: string): Promise<void> {
    try {
      const report = await store.check(rel)
      if (report !== undefined) onEvent(report)
    } catch (err) {
      onError(`cannot check files/${rel}: ${describeError(err)}`)
    }
  }

  /** Checks the pending paths, and the held names below each (a deleted directory takes its files with it). */
  async function drain (): Promise<void> {
    const paths = [...pending]
    pending.clear()
    const everything = fullPass
    fullPass = false
    const names = new Set<string>(paths)
    // A path that is a held name is a file (a name is never also a directory): only other
    // paths can be directories whose names must be checked too. During a catch-up every
    // path is a name just committed, and this stays O(paths), not O(paths x names).
    const dirs = paths.filter(p => store.get(p) === undefined).map(p => p + '/')
    if (everything || dirs.length > 0) {
      for (const e of store.entries()) {
        if (everything || dirs.some(d => e.name.startsWith(d))) names.add(e.name)
      }
    }
    for (const name of names) {
      if (stopped) return
      await checkOne(name)
    }
    syncWatches()
  }

  /** Watches every directory that holds a name (and files/ itself), and no other. */
  function syncWatches (): void {
    if (stopped) return
    const needed = new Set([''])
    for (const e of store.entries()) {
      if (!e.name.includes('/')) continue
      const segs = e.name.split('/')
      for (let i = 1; i < segs.length; i++) needed.add(segs.slice(0, i).join('/'))
    }
    for (const [dir, w] of watchers) if (!needed.has(dir)) { w.close(); watchers.delete(dir) }
    for (const dir of needed) {
      if (watchers.has(dir)) continue
      try {
        const w = fs.watch(path.join(store.filesDir, dir), { persistent: false }, (_event, filename) =>
          onChange(filename === null ? null : dir === '' ? filename.toString() : `${dir}/${filename.toString()}`))
        // A directory removed or replaced: drop its watch; the next pass checks what it held and watches again.
        w.on('error', () => { w.close(); watchers.delete(dir); fullPass = true; schedule() })
        watchers.set(dir, w)
      } catch {
        // Not there (yet): the periodic pass covers it and tries again.
      }
    }
  }

  function schedule (): void {
    if (debounce !== undefined || stopped) return
    debounce = setTimeout(() => {
      debounce = undefined
      running = running.then(drain)
    }, debounceMs)
  }

  function onChange (filename: string | null): void {
    if (filename === null) fullPass = true
    else if (pending.size >= MAX_PENDING) fullPass = true
    else pending.add(filename.split(path.sep).join('/'))
    schedule()
  }

  return {
    start () {
      if (!stopped) return
      stopped = false
      syncWatches()
      if (!watchers.has('')) onError(`cannot watch ${store.filesDir}; relying on the periodic check`)
      rescan = setInterval(() => { fullPass = true; schedule() }, rescanMs)
      rescan.unref()
    },
    async stop () {
      stopped = true
      for (const w of watchers.values()) w.close()
      watchers.clear()
      clearTimeout(debounce)
      clearInterval(rescan)
      debounce = undefined
      await running
    }
  }
}
