import { randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { DmError } from '../errors.js'
import { printable } from '../format/names.js'
import { writeFileDurableSync } from './durable.js'

/*
 * One daemon per state directory: state_dir/daemon.lock names the daemon that
 * holds it, as "<pid> <boot id> <process start time>".
 *
 * Why a pid file and not flock: Node has no flock(), and the well-kept npm
 * lock (proper-lockfile) is mkdir-based with mtime staleness: it keeps a timer
 * touching the lock, cannot say which process holds it, and after a crash makes
 * a restart wait out its stale period. A pid file can name the holder in the
 * refusal, and is stale exactly when that process is gone, which the boot id
 * and the start time from /proc tell apart from a reused pid.
 *
 * The lock file appears whole: it is written to a temporary name, then link()ed
 * into place, which fails if the lock exists. A stale lock is removed only if
 * it is still the file judged stale (same inode). Left open: two daemons taking
 * over the same stale lock in the same instant, between that check and the
 * unlink; systemd starts one unit instance at a time.
 */

export const LOCK_FILE = 'daemon.lock'

export interface StateDirLock {
  /** Removes the lock if it is still ours. */
  release: () => void
}

function readOrEmpty (file: string): string {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return ''
    throw err
  }
}

const bootId = (): string => readOrEmpty('/proc/sys/kernel/random/boot_id').trim() || '-'

/** Field 22 of /proc/<pid>/stat: the process start time in clock ticks since boot ('-' without /proc). */
function startTime (pid: number): string | undefined {
  if (!fs.existsSync('/proc/self/stat')) return '-'
  const stat = readOrEmpty(`/proc/${pid}/stat`)
  if (stat === '') return undefined
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
}

function alive (pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Whether the holder recorded in a lock file still runs. Unparseable content counts as not running. */
function holderRunning (content: string): boolean {
  const [pidText, boot, start] = content.trim().split(' ')
  const pid = Number(pidText)
  if (!Number.isSafeInteger(pid) || pid <= 0) return false
  if (boot !== bootId()) return false
  if (!alive(pid)) return false
  const now = startTime(pid)
  // Hidden from /proc (another user under ProtectProc=invisible) but alive: assume it is the holder.
  return now === undefined || now === '-' || now === start
}

/**
 * Takes the lock on `stateDir` (created if missing) for this process, or
 * refuses with ERR_STATE_DIR_LOCKED naming the pid that holds it.
 */
export function lockStateDir (stateDir: string): StateDirLock {
  fs.mkdirSync(stateDir, { recursive: true, mode: 0o750 })
  const file = path.join(stateDir, LOCK_FILE)
  const mine = `${process.pid} ${bootId()} ${startTime(process.pid) ?? '-'}\n`
  const tmp = path.join(stateDir, `.${LOCK_FILE}.${randomBytes(4).toString('hex')}.tmp`)
  writeFileDurableSync(tmp, mine, 0o644)
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        fs.linkSync(tmp, file)
        break
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      const before = fs.lstatSync(file, { throwIfNoEntry: false })
      const held = readOrEmpty(file)
      if (held !== '' && holderRunning(held)) {
        throw new DmError('ERR_STATE_DIR_LOCKED', `state_dir ${printable(stateDir)} is in use by another daemon (pid ${held.trim().split(' ')[0]}); stop it first`)
      }
      if (attempt > 0) throw new DmError('ERR_STATE_DIR_LOCKED', `cannot take the lock ${printable(file)}: it keeps changing`)
      const after = fs.lstatSync(file, { throwIfNoEntry: false })
      if (before !== undefined && after?.ino === before.ino) fs.rmSync(file, { force: true })
    }
  } finally {
    fs.rmSync(tmp, { force: true })
  }
  const ino = fs.lstatSync(file).ino
  return {
    release () {
      const st = fs.lstatSync(file, { throwIfNoEntry: false })
      if (st?.ino === ino && readOrEmpty(file) === mine) fs.rmSync(file, { force: true })
    }
  }
}
