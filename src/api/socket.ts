import fs from 'node:fs'
import path from 'node:path'
import { DmError } from '../errors.js'

/*
 * Who may plant or swap the API socket (docs/SECURITY.md, "the local API").
 * The daemon serves only from a directory nobody else can write; the client
 * talks only to a socket owned by root or by the daemon's user, in such a
 * directory. Only node:fs here: the client loads this on every call.
 */

/** Socket mode: the daemon's user and group may call the API, nobody else. */
export const SOCKET_MODE = 0o660
/** Mode of a socket directory the daemon creates itself. */
export const SOCKET_DIR_MODE = 0o750

const myUid = (): number => process.getuid?.() ?? 0
const myGid = (): number => process.getgid?.() ?? 0
const octal = (st: fs.Stats): string => (st.mode & 0o7777).toString(8).padStart(4, '0')

function statOrUndefined (p: string): fs.Stats | undefined {
  try { return fs.statSync(p) } catch { return undefined }
}

/**
 * Why someone other than root or us could replace entries in `dir`, or
 * undefined. Group write is allowed only for our own group (the API's callers).
 */
function dirRisk (dir: string, st: fs.Stats, owners: Set<number>): string | undefined {
  if (!st.isDirectory()) return `${dir} is not a directory`
  if (!owners.has(st.uid)) return `${dir} is owned by uid ${st.uid}, not by root or uid ${myUid()}`
  if ((st.mode & 0o002) !== 0) return `${dir} is writable by every user (mode ${octal(st)})`
  if ((st.mode & 0o020) !== 0 && st.gid !== myGid()) return `${dir} is writable by group ${st.gid} (mode ${octal(st)})`
  return undefined
}

/**
 * Creates the socket's directory privately if missing, then refuses one that
 * others could write, or that sits below a directory others could rename
 * (unless sticky, as /tmp). Throws ERR_SOCKET_UNSAFE naming the directory.
 */
export function prepareSocketDir (socketPath: string): void {
  const dir = path.dirname(path.resolve(socketPath))
  fs.mkdirSync(dir, { recursive: true, mode: SOCKET_DIR_MODE })
  const owners = new Set([0, myUid()])
  const real = fs.realpathSync(dir)
  const risk = dirRisk(real, fs.statSync(real), owners)
  if (risk !== undefined) throw new DmError('ERR_SOCKET_UNSAFE', `api.socket: ${risk}; another user could replace the socket (use a directory only the daemon's user can write, e.g. mode 0750)`)
  for (let up = path.dirname(real); ; up = path.dirname(up)) {
    const st = fs.statSync(up)
    const sticky = (st.mode & 0o1000) !== 0
    if (!owners.has(st.uid) || ((st.mode & 0o022) !== 0 && !sticky)) {
      throw new DmError('ERR_SOCKET_UNSAFE', `api.socket: ${up} (above the socket directory) can be changed by another user (owner uid ${st.uid}, mode ${octal(st)})`)
    }
    if (up === path.dirname(up)) break
  }
}

/** What occupies the socket path: nothing, a socket, a symbolic link or another kind of file. */
export function socketPathKind (socketPath: string): 'none' | 'socket' | 'link' | 'other' {
  let st: fs.Stats
  try {
    st = fs.lstatSync(socketPath)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'none'
    throw err
  }
  return st.isSocket() ? 'socket' : st.isSymbolicLink() ? 'link' : 'other'
}

export interface TrustOptions {
  /** The config's state_dir: its owner is the daemon's user. */
  stateDir?: string
}

/**
 * Refuses, before connecting, a socket another user could have put there:
 * owned by someone other than root, us or the owner of state_dir, or in a
 * directory every user can write. A missing socket is left to connect() to
 * report as "no daemon".
 */
export function assertSocketTrusted (socketPath: string, opts: TrustOptions = {}): void {
  let real: string
  try {
    real = fs.realpathSync(socketPath)
  } catch {
    return
  }
  const st = fs.statSync(real)
  if (!st.isSocket()) throw new DmError('ERR_SOCKET_UNSAFE', `${socketPath} is not a socket; check api.socket in the config`)
  const owners = new Set([0, myUid()])
  const daemonUser = opts.stateDir !== undefined ? statOrUndefined(opts.stateDir)?.uid : undefined
  if (daemonUser !== undefined) owners.add(daemonUser)
  if (!owners.has(st.uid)) {
    throw new DmError('ERR_SOCKET_UNSAFE', `${socketPath} is owned by uid ${st.uid}, not by root or the daemon's user (the owner of state_dir); refusing to talk to it`)
  }
  const dir = path.dirname(real)
  const dirSt = fs.statSync(dir)
  if ((dirSt.mode & 0o002) !== 0) {
    throw new DmError('ERR_SOCKET_UNSAFE', `${dir} is writable by every user, so anyone could have replaced ${path.basename(real)}; the daemon never serves there`)
  }
}
