import type fs from 'node:fs'
import fsp from 'node:fs/promises'
import path from 'node:path'
import { DmError, type ErrorCode } from '../errors.js'
import { printable } from '../format/names.js'
import { DIR_MODE } from './durable.js'
import { openHeldDir, type HeldDir } from './held-dir.js'

/*
 * What makes a state directory safe to write to as the daemon. Whoever can
 * write into state_dir or one of its directories can swap an entry for a
 * symlink or a file of their own; the daemon never follows links (held-dir.ts),
 * but it refuses such a directory outright rather than work around it.
 */

/** The directories of state_dir, each refused when unsafe; all must share one filesystem (renames between them). */
export const STATE_SUBDIRS = ['files', 'versions', 'staging', 'keep', 'quarantine'] as const

export interface StateDirFinding {
  code: ErrorCode
  path: string
  /** One line, naming the path and the fix. */
  message: string
  /** True when the daemon refuses to start on it; false for a warning. */
  fatal: boolean
}

const mode = (st: fs.Stats): string => (st.mode & 0o7777).toString(8).padStart(4, '0')

/** Why a directory of state_dir may not be used, or undefined when it may. */
export function unsafeDirReason (st: fs.Stats, euid = process.geteuid?.()): string | undefined {
  if (st.isSymbolicLink()) return 'is a symlink; the daemon never follows links under state_dir (point state_dir at the real directory)'
  if (!st.isDirectory()) return 'is not a directory'
  if ((st.mode & 0o002) !== 0) return `is writable by every user (mode ${mode(st)}); run chmod o-w,g-w on it`
  if ((st.mode & 0o020) !== 0) return `is writable by its group (mode ${mode(st)}); run chmod g-w on it`
  if (euid !== undefined && st.uid !== euid && st.uid !== 0) return `is owned by uid ${st.uid}, neither this daemon's user (${euid}) nor root; chown it`
  return undefined
}

export function unsafeDirError (dirPath: string, reason: string): DmError {
  return new DmError('ERR_STATE_DIR_UNSAFE', `state directory ${printable(dirPath)} ${reason}`)
}

export function crossDeviceError (dirPath: string, stateDir: string): DmError {
  return new DmError('ERR_STATE_DIR_CROSS_DEVICE',
    `${printable(dirPath)} is on another filesystem than ${printable(stateDir)}; atomic renames between them are impossible (do not mount over state_dir's directories)`)
}

/** The directories of state_dir, each held open. */
export type StateDirs = Record<typeof STATE_SUBDIRS[number], HeldDir>

/** Holds state_dir and its directories, refusing any that is a symlink, writable by others or on another filesystem. */
export async function openStateDir (stateDir: string): Promise<{ root: HeldDir, dirs: StateDirs }> {
  await fsp.mkdir(stateDir, { recursive: true, mode: DIR_MODE })
  const root = await openHeldDir(stateDir)
  const opened: HeldDir[] = [root]
  try {
    const rootStat = await root.stat()
    const rootReason = unsafeDirReason(rootStat)
    if (rootReason !== undefined) throw unsafeDirError(stateDir, rootReason)
    const dirs: Partial<StateDirs> = {}
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
    return { root, dirs: dirs as StateDirs }
  } catch (err) {
    await Promise.all(opened.map(async d => await d.close().catch(() => {})))
    throw err
  }
}

async function lstatOrUndefined (p: string): Promise<fs.Stats | undefined> {
  try {
    return await fsp.lstat(p)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/**
 * The risks of a state directory, for `dm config check` and the daemon's start
 * to print, each as one line. Fatal ones are those `openStore` refuses; the
 * rest are warnings. A missing state_dir has none (the daemon creates it).
 */
export async function inspectStateDir (stateDir: string): Promise<StateDirFinding[]> {
  const findings: StateDirFinding[] = []
  const fatal = (err: DmError, p: string): void => { findings.push({ code: err.code, path: p, message: err.message, fatal: true }) }
  const root = await lstatOrUndefined(stateDir)
  if (root === undefined) return findings
  const rootReason = unsafeDirReason(root)
  if (rootReason !== undefined) fatal(unsafeDirError(stateDir, rootReason), stateDir)

  const parent = path.dirname(path.resolve(stateDir))
  const parentStat = await lstatOrUndefined(parent)
  if (parentStat !== undefined && (parentStat.mode & 0o002) !== 0 && (parentStat.mode & 0o1000) === 0) {
    findings.push({
      code: 'ERR_STATE_DIR_UNSAFE',
      path: parent,
      message: `${printable(parent)}, the parent of state_dir, is writable by every user without the sticky bit: anyone can replace state_dir before the daemon starts`,
      fatal: false
    })
  }
  if (!root.isDirectory()) return findings

  for (const sub of STATE_SUBDIRS) {
    const p = path.join(stateDir, sub)
    const st = await lstatOrUndefined(p)
    if (st === undefined) continue
    const reason = unsafeDirReason(st)
    if (reason !== undefined) fatal(unsafeDirError(p, reason), p)
    else if (st.dev !== root.dev) fatal(crossDeviceError(p, stateDir), p)
  }

  const identity = path.join(stateDir, 'identity.key')
  const id = await lstatOrUndefined(identity)
  if (id !== undefined && (id.mode & 0o077) !== 0) {
    findings.push({
      code: 'ERR_STATE_DIR_UNSAFE',
      path: identity,
      message: `${printable(identity)} (the node's private identity) is readable by others (mode ${mode(id)}); run chmod 600 on it`,
      fatal: false
    })
  }
  return findings
}
