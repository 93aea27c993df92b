/*
 * Issue 9, defect 1: with a small-order public key in [files], anyone could
 * forge a version (R a small-order point, S = 0, any message) and it was
 * accepted and replicated. Each test here failed on the code before the fix.
 */
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { ConfigError, parseConfig } from '../../src/config/load.js'
import { verify as verifyCommand } from '../../src/cli/sign.js'
import { parse } from '../../src/cli/command.js'
import { EMPTY_SHA256, VersionKind, encodeEnvelope, networkIdFrom, sha256, type SignedVersion } from '../../src/format/version.js'
import { checkHeader, checkVersion, type PolicyContext } from '../../src/policy/accept.js'
import { tempDir } from './helpers.js'

const IDENTITY = 'AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='
const ALL_ZERO = 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA='
/** The identity written with y = p + 1: the same point, a non-canonical encoding. */
const IDENTITY_NON_CANONICAL = Buffer.from('ee' + 'ff'.repeat(30) + '7f', 'hex').toString('base64')

const NETWORK = networkIdFrom('forgery-test')
const NOW = 1_764_000_000_000
const content = Buffer.from('attacker ALL=(ALL) NOPASSWD: ALL\n')

/** What anyone can build without any private key: R = identity, S = 0. */
function forged (signerBase64: string): SignedVersion {
  const identity = Buffer.alloc(32); identity[0] = 1
  return {
    kind: VersionKind.File,
    networkId: NETWORK,
    name: 'sudoers.d/fleet',
    timestampMs: NOW,
    expiresAtMs: 0,
    size: content.length,
    sha256: sha256(content),
    signer: new Uint8Array(Buffer.from(signerBase64, 'base64')),
    signature: new Uint8Array(Buffer.concat([identity, Buffer.alloc(32)])),
    attachments: new Uint8Array(0)
  }
}

/** A node whose allowlist holds the key anyway (as a config written before the fix did). */
function context (signerBase64: string): PolicyContext {
  return {
    networkId: NETWORK,
    allowlist: new Map([['sudoers.d/fleet', [new Uint8Array(Buffer.from(signerBase64, 'base64'))]]]),
    maxClockSkewMs: 600_000,
    nowMs: NOW
  }
}

for (const [label, key] of [['the identity', IDENTITY], ['the identity, non-canonical', IDENTITY_NON_CANONICAL]]) {
  test(`acceptance policy: a version forged for ${label} key is ERR_BAD_SIGNATURE, by header or with content`, () => {
    const v = forged(key)
    const header = checkHeader(v, undefined, context(key))
    assert.equal(header.ok, false)
    assert.equal(header.ok ? undefined : header.code, 'ERR_BAD_SIGNATURE')
    assert.equal(header.ok ? undefined : header.retryable, false)
    const full = checkVersion(v, content, undefined, context(key))
    assert.equal(full.ok ? undefined : full.code, 'ERR_BAD_SIGNATURE')
  })
}

test('acceptance policy: a forged tombstone (deleting a file everywhere) is ERR_BAD_SIGNATURE too', () => {
  const v = { ...forged(IDENTITY), kind: VersionKind.Tombstone, size: 0, sha256: EMPTY_SHA256 }
  const verdict = checkHeader(v, { timestampMs: NOW - 1000, id: new Uint8Array(32) }, context(IDENTITY))
  assert.equal(verdict.ok ? undefined : verdict.code, 'ERR_BAD_SIGNATURE')
})

for (const [label, key, fault] of [
  ['all-zero', ALL_ZERO, 'key-small-order'],
  ['identity', IDENTITY, 'key-small-order'],
  ['non-canonical identity', IDENTITY_NON_CANONICAL, 'key-non-canonical']
]) {
  test(`config: the ${label} key in [files] is refused (ERR_CONFIG, ${fault})`, () => {
    const toml = `[files]\n"sudoers.d/fleet" = ["${key}"]\n`
    assert.throws(() => parseConfig(toml, 'dm.toml'), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.equal(err.code, 'ERR_CONFIG')
      assert.equal(err.problems.length, 1)
      assert.ok(err.problems[0].includes(`(${fault})`), err.problems[0])
      return true
    })
  })
}

test('dm verify: a forged envelope fails with ERR_BAD_SIGNATURE (exit 1), naming the fault', async () => {
  const { dir, cleanup } = tempDir()
  const write = process.stdout.write
  let out = ''
  try {
    const file = path.join(dir, 'fleet')
    const sig = path.join(dir, 'fleet.sig')
    fs.writeFileSync(file, content)
    fs.writeFileSync(sig, encodeEnvelope(forged(IDENTITY)))
    process.stdout.write = ((chunk: string) => { out += chunk; return true }) as typeof process.stdout.write
    const status = await verifyCommand.run(parse(verifyCommand, [file, sig]))
    process.stdout.write = write
    assert.equal(status, 1)
    assert.match(out, /^FAIL ERR_BAD_SIGNATURE: .*\(key-small-order\)$/m)
  } finally {
    process.stdout.write = write
    cleanup()
  }
})
