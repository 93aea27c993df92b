import { DmError } from '../errors.js'

/** Longest name in bytes. Keeps `<state_dir>/versions/<name>.sig` well under PATH_MAX. */
export const MAX_NAME_BYTES = 255
/** Longest segment; leaves room for the `.sig` suffix under NAME_MAX (255). */
export const MAX_SEGMENT_BYTES = 200
/** Deepest nesting, so a name cannot make the store build deep directory trees. */
export const MAX_SEGMENTS = 16

const SEGMENT = /^[A-Za-z0-9._-]+$/

/**
 * Why `name` is not a valid file name, or undefined when it is.
 *
 * A name is `/`-separated segments of `[A-Za-z0-9._-]`; no segment is empty,
 * `.` or `..`. So it never starts with `/`, never contains NUL, and joined
 * under the files directory it can never resolve outside it.
 */
export function nameProblem (name: string): string | undefined {
  if (typeof name !== 'string' || name.length === 0) return 'is empty'
  const bytes = Buffer.byteLength(name, 'utf8')
  if (bytes > MAX_NAME_BYTES) return `is ${bytes} bytes long (at most ${MAX_NAME_BYTES})`
  if (name.startsWith('/')) return 'starts with "/" (names are relative to the files directory)'
  const segments = name.split('/')
  if (segments.length > MAX_SEGMENTS) return `has ${segments.length} segments (at most ${MAX_SEGMENTS})`
  for (const segment of segments) {
    if (segment.length === 0) return 'has an empty segment ("//" or a trailing "/")'
    if (segment === '.' || segment === '..') return `has a "${segment}" segment`
    if (segment.length > MAX_SEGMENT_BYTES) return `has a segment longer than ${MAX_SEGMENT_BYTES} bytes`
    if (!SEGMENT.test(segment)) return `has a character outside [A-Za-z0-9._-] in segment "${printable(segment)}"`
  }
  return undefined
}

export function assertValidName (name: string): void {
  const problem = nameProblem(name)
  if (problem !== undefined) throw new DmError('ERR_NAME_INVALID', `invalid name "${printable(name)}": ${problem}`)
}

/** The name with control characters escaped, safe to print in one log line. */
export function printable (s: string): string {
  // eslint-disable-next-line no-control-regex
  return JSON.stringify(String(s).slice(0, 300)).slice(1, -1)
}
