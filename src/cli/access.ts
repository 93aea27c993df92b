import path from 'node:path'
import type { Config } from '../config/config.js'
import { DmError } from '../errors.js'

/** Whether `p` is `base` or inside it, or one of the directories leading to it (mkdir -p creates those too). */
function related (p: string, base: string): boolean {
  const rel = path.relative(base, p)
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel)) || base.startsWith(p + path.sep)
}

/**
 * Turns EACCES/EPERM on a path the config names into one line naming the key
 * (state_dir, api.socket) and the way out; anything else is returned as is.
 * Used by dm id and dm daemon; the daemon's own start-up can use it too.
 */
export function explainAccessError (err: unknown, config: Config, configPath: string): unknown {
  const e = (err instanceof DmError && err.cause !== undefined ? err.cause : err) as NodeJS.ErrnoException
  if (e === null || typeof e !== 'object' || (e.code !== 'EACCES' && e.code !== 'EPERM') || typeof e.path !== 'string') return err
  const p = path.resolve(e.path)
  const who = `user ${process.getuid?.() ?? '?'}`
  const fix = `set it in ${configPath} to a directory ${who} can write, or run as the daemon's user (README: "Trying it without root")`
  if (related(p, config.stateDir)) return new DmError('ERR_PERMISSION', `state_dir: permission denied on ${p} (${e.syscall ?? 'access'}); ${fix}`, { cause: err })
  if (related(p, path.dirname(config.api.socket))) return new DmError('ERR_PERMISSION', `api.socket: permission denied on ${p} (${e.syscall ?? 'access'}); ${fix}`, { cause: err })
  return err
}
