import { MAX_REPORTED_REFUSALS, REPORT_ID_HEX, type ReportedRefusal } from '../format/node-report.js'
import { hex, versionId, type SignedVersion } from '../format/version.js'
import { isNodeReportName } from '../policy/node-reports.js'

/*
 * The refusals a node report shows: the most recent distinct
 * (name, version, code), and a count per code since start. Bounded: a flood
 * of refused versions pushes older entries out and grows only the counts.
 */

/** Refusals that are routine (a duplicate, an older version) or about other nodes' reports (N² noise): not recorded. */
const ROUTINE = new Set(['ERR_ALREADY_HELD', 'ERR_STALE'])

export interface RefusalLog {
  /** Records a refusal; returns whether it was news (not routine, not the same as one already listed). */
  record: (v: SignedVersion, code: string, atMs: number) => boolean
  /** The most recent first, at most MAX_REPORTED_REFUSALS. */
  recent: () => ReportedRefusal[]
  counts: () => Record<string, number>
}

export function createRefusalLog (): RefusalLog {
  /** key "code name id" -> entry; Map order is insertion order, so the last is the most recent. */
  const recent = new Map<string, ReportedRefusal>()
  const counts: Record<string, number> = {}
  return {
    record (v, code, atMs) {
      if (ROUTINE.has(code) || isNodeReportName(v.name)) return false
      counts[code] = (counts[code] ?? 0) + 1
      const id = hex(versionId(v)).slice(0, REPORT_ID_HEX)
      const key = `${code} ${v.name} ${id}`
      const known = recent.delete(key)
      recent.set(key, { name: v.name, id, code, atMs })
      if (recent.size > MAX_REPORTED_REFUSALS) recent.delete(recent.keys().next().value as string)
      return !known
    },
    recent: () => [...recent.values()].reverse(),
    counts: () => ({ ...counts })
  }
}
