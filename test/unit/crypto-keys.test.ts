import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawnSync } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import {
  generatePrivateKeyFile, loadPrivateKey, parsePrivateKeyPem, parsePublicKeyBase64, publicKeyToBase64
} from '../../src/crypto/keys.js'
import { sign, verify } from '../../src/crypto/ed25519.js'
import { dmError, tempDir, testKey } from './helpers.js'

const opensslMissing = spawnSync('openssl', ['version']).error !== undefined
  ? 'openssl binary not found on PATH; skipping the interoperability test'
  : false

test('a key written by openssl genpkey loads, and its public key matches openssl\'s', { skip: opensslMissing }, () => {
  const { dir, cleanup } = tempDir()
  try {
    const keyFile = path.join(dir, 'openssl.key')
    execFileSync('openssl', ['genpkey', '-algorithm', 'ed25519', '-out', keyFile])
    fs.chmodSync(keyFile, 0o600)
    const warnings: string[] = []
    const key = loadPrivateKey(keyFile, { warn: m => warnings.push(m) })
    assert.deepEqual(warnings, [])

    const der = execFileSync('openssl', ['pkey', '-in', keyFile, '-pubout', '-outform', 'DER'])
    assert.equal(der.length, 44, 'an Ed25519 SubjectPublicKeyInfo is 44 bytes')
    assert.equal(Buffer.from(key.publicKey).toString('hex'), der.subarray(der.length - 32).toString('hex'))

    // And a signature made here verifies with openssl.
    const msg = Buffer.from('signed by data-mesher, checked by openssl')
    const msgFile = path.join(dir, 'msg')
    const sigFile = path.join(dir, 'sig')
    const pubFile = path.join(dir, 'pub.der')
    fs.writeFileSync(msgFile, msg)
    fs.writeFileSync(sigFile, sign(key.privateKey, msg))
    fs.writeFileSync(pubFile, der)
    const ok = spawnSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', pubFile, '-keyform', 'DER', '-rawin', '-in', msgFile, '-sigfile', sigFile], { encoding: 'utf8' })
    assert.equal(ok.status, 0, ok.stdout + ok.stderr)
    fs.writeFileSync(msgFile, Buffer.concat([msg, Buffer.of(0)]))
    const bad = spawnSync('openssl', ['pkeyutl', '-verify', '-pubin', '-inkey', pubFile, '-keyform', 'DER', '-rawin', '-in', msgFile, '-sigfile', sigFile], { encoding: 'utf8' })
    assert.notEqual(bad.status, 0, 'openssl accepted a signature over a different message')

    // And openssl's signature verifies here.
    fs.writeFileSync(msgFile, msg)
    const theirs = execFileSync('openssl', ['pkeyutl', '-sign', '-inkey', keyFile, '-rawin', '-in', msgFile])
    assert.ok(verify(key.publicKey, msg, theirs))
  } finally {
    cleanup()
  }
})

test('an RSA key is refused with ERR_KEY', () => {
  const { dir, cleanup } = tempDir()
  try {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 1024 })
    const file = path.join(dir, 'rsa.key')
    fs.writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 })
    assert.throws(() => loadPrivateKey(file), dmError('ERR_KEY', /rsa key, not Ed25519/))
  } finally {
    cleanup()
  }
})

test('other non-Ed25519 keys are refused: EC and X25519', () => {
  for (const type of ['ec', 'x25519'] as const) {
    const { privateKey } = type === 'ec'
      ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
      : generateKeyPairSync('x25519')
    const pem = privateKey.export({ format: 'pem', type: 'pkcs8' })
    assert.throws(() => parsePrivateKeyPem(pem), dmError('ERR_KEY', /not Ed25519/), type)
  }
})

test('corrupt or non-private PEM is refused with ERR_KEY', () => {
  const good = testKey(1).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString()
  const body = good.split('\n')[1]
  const corrupt = good.replace(body, body.slice(0, 10) + '!!!!' + body.slice(14))
  const truncated = good.replace(body, body.slice(0, 20))
  const publicPem = testKey(1).privateKey.export({ format: 'pem', type: 'pkcs8' }).toString().replace(/PRIVATE/g, 'PUBLIC')
  for (const [what, pem] of [['corrupt base64', corrupt], ['truncated', truncated], ['public key label', publicPem], ['empty', ''], ['not PEM', 'hello']] as const) {
    assert.throws(() => parsePrivateKeyPem(pem, 'k'), dmError('ERR_KEY', /^k: /), what)
  }
  const { dir, cleanup } = tempDir()
  try {
    const file = path.join(dir, 'bad.key')
    fs.writeFileSync(file, corrupt, { mode: 0o600 })
    assert.throws(() => loadPrivateKey(file), dmError('ERR_KEY', /not a readable PEM private key/))
  } finally {
    cleanup()
  }
})

test('a missing file or a directory is refused with ERR_KEY', () => {
  const { dir, cleanup } = tempDir()
  try {
    assert.throws(() => loadPrivateKey(path.join(dir, 'nope.key')), dmError('ERR_KEY', /no such file/))
    assert.throws(() => loadPrivateKey(dir), dmError('ERR_KEY', /not a regular file/))
  } finally {
    cleanup()
  }
})

test('a key readable by others triggers the warn callback; a 0600 key does not', () => {
  const { dir, cleanup } = tempDir()
  try {
    const file = path.join(dir, 'k.key')
    const pem = testKey(2).privateKey.export({ format: 'pem', type: 'pkcs8' })
    fs.writeFileSync(file, pem)
    fs.chmodSync(file, 0o644)
    const warnings: string[] = []
    const key = loadPrivateKey(file, { warn: m => warnings.push(m) })
    assert.equal(warnings.length, 1)
    assert.match(warnings[0], /mode 0644/)
    assert.match(warnings[0], /chmod 600/)
    assert.deepEqual(key.publicKey, testKey(2).publicKey, 'the key still loads')

    fs.chmodSync(file, 0o640)
    loadPrivateKey(file, { warn: m => warnings.push(m) })
    assert.equal(warnings.length, 2, 'group-readable warns too')

    fs.chmodSync(file, 0o600)
    loadPrivateKey(file, { warn: m => warnings.push(m) })
    assert.equal(warnings.length, 2, '0600 must not warn')
  } finally {
    cleanup()
  }
})

test('generatePrivateKeyFile writes a 0600 PKCS#8 key and refuses to overwrite', () => {
  const { dir, cleanup } = tempDir()
  try {
    const file = path.join(dir, 'identity.key')
    const made = generatePrivateKeyFile(file)
    assert.equal(fs.statSync(file).mode & 0o777, 0o600)
    const text = fs.readFileSync(file, 'utf8')
    assert.match(text, /^-----BEGIN PRIVATE KEY-----\n/)
    assert.equal(made.publicKey.length, 32)
    assert.deepEqual(loadPrivateKey(file).publicKey, made.publicKey)

    assert.throws(() => generatePrivateKeyFile(file), dmError('ERR_KEY', /already exists/))
    assert.equal(fs.readFileSync(file, 'utf8'), text, 'the existing key was changed')

    assert.throws(() => generatePrivateKeyFile(path.join(dir, 'no', 'such', 'dir.key')), dmError('ERR_KEY', /cannot write/))
    const other = generatePrivateKeyFile(path.join(dir, 'second.key'))
    assert.notDeepEqual(other.publicKey, made.publicKey)
  } finally {
    cleanup()
  }
})

test('public keys: base64 round trip and every refusal', () => {
  const raw = testKey(3).publicKey
  const b64 = publicKeyToBase64(raw)
  assert.equal(b64.length, 44)
  assert.deepEqual(parsePublicKeyBase64(b64), raw)
  const cases: Array<[unknown, RegExp]> = [
    [b64.replace(/=$/, ''), /not standard base64/],
    [b64.slice(0, 40), /decodes to 30 bytes/],
    [Buffer.alloc(33).toString('base64'), /decodes to 33 bytes/],
    ['', /decodes to 0 bytes/],
    [b64.slice(0, 43).replace(/./, '-') + '=', /not standard base64/],
    [' ' + b64, /not standard base64/],
    [b64 + '\n', /not standard base64/],
    [42, /not a string/]
  ]
  for (const [text, why] of cases) {
    const r = parsePublicKeyBase64(text as string)
    assert.equal(typeof r, 'string', `${String(text)} was accepted`)
    assert.match(r as string, why)
  }
})
