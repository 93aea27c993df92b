import assert from 'node:assert/strict'
import type { ErrorCode } from '../../src/errors.ts'

/**
 * The CLI's contract for a mistake: exit status `exit` and exactly one line on
 * stderr, "dm: … (ERR_…)", ending with the error's code and naming `names`
 * (the paths, keys, addresses and names concerned; never the sentence's words).
 */
export function assertOneLineError (r: { code: number | null, stderr: string }, exit: number, code: ErrorCode, ...names: string[]): void {
  assert.equal(r.code, exit, `exit status (stderr: ${r.stderr})`)
  const lines = r.stderr.trimEnd().split('\n')
  assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`)
  assert.match(lines[0], /^dm: /)
  assert.ok(lines[0].endsWith(` (${code})`), `code ${code}: ${lines[0]}`)
  for (const n of names) assert.ok(lines[0].includes(n), `names ${n}: ${lines[0]}`)
}
