import { test } from 'node:test'
import assert from 'node:assert/strict'
import path from 'node:path'
import fc from 'fast-check'
import {
  MAX_NAME_BYTES, MAX_SEGMENT_BYTES, MAX_SEGMENTS, assertValidName, nameProblem, printable
} from '../../src/format/names.js'
import { dmError } from './helpers.js'

const VALID: Array<[string, string]> = [
  ['dns/cnames', 'two segments'],
  ['a.b-c_d', 'every allowed punctuation'],
  ['a', 'single character'],
  ['A/Z/0/9', 'upper case and digits'],
  ['.hidden', 'leading dot is only a character'],
  ['...', 'three dots is not a special segment'],
  ['a..b', 'dots inside a segment'],
  ['a/b.sig', 'a .sig suffix is just a name'],
  ['x'.repeat(MAX_SEGMENT_BYTES), 'longest segment'],
  [Array.from({ length: 2 }, () => 'x'.repeat(127)).join('/'), `${MAX_NAME_BYTES} bytes exactly`],
  [Array.from({ length: MAX_SEGMENTS }, () => 'a').join('/'), `${MAX_SEGMENTS} segments`]
]

const INVALID: Array<[string, RegExp, string]> = [
  ['', /empty/, 'empty'],
  ['../x', /"\.\." segment/, 'parent traversal'],
  ['/etc/passwd', /starts with "\/"/, 'absolute path'],
  ['a/../../b', /"\.\." segment/, 'traversal in the middle'],
  ['a//b', /empty segment/, 'double slash'],
  ['a/', /empty segment/, 'trailing slash'],
  ['a\0b', /character outside/, 'NUL byte'],
  ['x'.repeat(300), /300 bytes/, '300-byte name'],
  ['x'.repeat(MAX_SEGMENT_BYTES + 1), /segment longer/, 'segment one byte too long'],
  [Array.from({ length: 2 }, () => 'x'.repeat(127)).join('/') + 'x', /256 bytes/, '256 bytes'],
  [Array.from({ length: MAX_SEGMENTS + 1 }, () => 'a').join('/'), /segments/, 'too deep'],
  ['héllo', /character outside/, 'Latin-1 letter'],
  ['файл', /character outside/, 'Cyrillic'],
  ['日本/語', /character outside/, 'CJK'],
  ['emoji-\u{1f600}', /character outside/, 'emoji'],
  ['a\u202eb', /character outside/, 'right-to-left override'],
  ['.', /"\." segment/, 'dot'],
  ['..', /"\.\." segment/, 'dot dot'],
  ['a/./b', /"\." segment/, 'dot segment in the middle'],
  ['a/..', /"\.\." segment/, 'trailing dot dot'],
  ['a b', /character outside/, 'space'],
  ['a\\b', /character outside/, 'backslash'],
  ['..\\x', /character outside/, 'Windows-style traversal'],
  ['a\nb', /character outside/, 'newline'],
  ['~/x', /character outside/, 'tilde'],
  ['a:b', /character outside/, 'colon']
]

for (const [name, why] of VALID) {
  test(`name valid: ${why} (${printable(name).slice(0, 40)})`, () => {
    assert.equal(nameProblem(name), undefined)
    assert.doesNotThrow(() => assertValidName(name))
  })
}

for (const [name, problem, why] of INVALID) {
  test(`name invalid: ${why}`, () => {
    const p = nameProblem(name)
    assert.ok(p !== undefined, `${JSON.stringify(name)} was accepted`)
    assert.match(p, problem)
    assert.throws(() => assertValidName(name), dmError('ERR_NAME_INVALID'))
  })
}

test('nameProblem tolerates a non-string from untyped input', () => {
  assert.equal(nameProblem(undefined as unknown as string), 'is empty')
  assert.equal(nameProblem(42 as unknown as string), 'is empty')
})

test('the error message escapes control characters', () => {
  assert.throws(() => assertValidName('a\nb\0'), (err: Error) => {
    assert.ok(!err.message.includes('\n'), 'message holds a raw newline')
    assert.ok(!err.message.includes('\0'), 'message holds a raw NUL')
    assert.match(err.message, /a\\nb\\u0000/)
    return true
  })
})

test('printable escapes and bounds its output', () => {
  assert.equal(printable('a\nb'), 'a\\nb')
  assert.equal(printable('"q"'), '\\"q\\"')
  assert.equal(printable('x'.repeat(1000)).length, 300)
})

test('property: every valid name stays strictly inside the base directory', () => {
  const base = path.resolve('/srv/state/files')
  const segment = fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/)
  const candidate = fc.oneof(
    fc.array(segment, { minLength: 1, maxLength: 20 }).map(s => s.join('/')),
    fc.string({ maxLength: 40 }),
    fc.array(fc.constantFrom('.', '..', '/', 'a', '\\', '\0', 'é'), { maxLength: 12 }).map(s => s.join(''))
  )
  fc.assert(fc.property(candidate, name => {
    if (nameProblem(name) !== undefined) return
    const resolved = path.resolve(base, name)
    assert.ok(resolved.startsWith(base + path.sep), `${name} resolves to ${resolved}`)
    assert.equal(path.relative(base, resolved).split(path.sep).join('/'), name, 'the name is not in normal form')
  }), { numRuns: 2000 })
})
