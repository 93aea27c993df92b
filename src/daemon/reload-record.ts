import type { ConfigInfo } from '../api/wire.js'
import { DmError, describeError } from '../errors.js'

/*
 * What `dm status` says of the config in force: when it was read, how many
 * reloads (SIGHUP) took, and why the last one failed, so an operator (or a
 * test) learns whether a reload took without reading the log.
 */

export interface ReloadRecord {
  info: () => ConfigInfo
  /** A reload that took; `problem` when a part of it (the certificate) did not. */
  took: (problem?: unknown) => void
  /** A reload refused whole: the running config stays. */
  failed: (err: unknown) => void
}

export function createReloadRecord (nowMs: () => number): ReloadRecord {
  let info: ConfigInfo = { loadedAtMs: nowMs(), reloads: 0, lastReloadError: null }
  const errorOf = (err: unknown): NonNullable<ConfigInfo['lastReloadError']> =>
    ({ code: err instanceof DmError ? err.code : 'ERR_CONFIG', reason: describeError(err), atMs: nowMs() })
  return {
    info: () => info,
    took (problem) { info = { loadedAtMs: nowMs(), reloads: info.reloads + 1, lastReloadError: problem === undefined ? null : errorOf(problem) } },
    failed (err) { info = { ...info, lastReloadError: errorOf(err) } }
  }
}
