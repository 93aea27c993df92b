import { DmError } from '../errors.js'

/** Exit statuses of every `dm` command (README and docs/API.md carry the same table). */
export const EXIT = {
  ok: 0,
  failed: 1,
  usage: 2,
  noDaemon: 3,
  degraded: 4,
  notFound: 5,
  stragglers: 6
} as const

export const EXIT_TABLE: ReadonlyArray<[number, string]> = [
  [EXIT.ok, 'success'],
  [EXIT.failed, 'refused or failed (the line on stderr says why)'],
  [EXIT.usage, 'usage error: unknown command or option, missing argument'],
  [EXIT.noDaemon, 'no daemon reachable on api.socket'],
  [EXIT.degraded, 'dm status: the node is degraded (the reasons are printed)'],
  [EXIT.notFound, 'the name is not held (dm get, dm list NAME)'],
  [EXIT.stragglers, 'dm wait: the version did not reach the share of the fleet asked for in time (the stragglers are listed)']
]

export function exitStatus (err: unknown): number {
  if (!(err instanceof DmError)) return EXIT.failed
  if (err.code === 'ERR_USAGE') return EXIT.usage
  if (err.code === 'ERR_DAEMON_UNREACHABLE') return EXIT.noDaemon
  if (err.code === 'ERR_NOT_FOUND') return EXIT.notFound
  return EXIT.failed
}
