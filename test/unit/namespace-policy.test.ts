import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CertKind, encodeCertificate, signCertificate, type CertBody } from '../../src/format/certificate.js'
import { encodeAttachments, withCertificates } from '../../src/format/attachments.js'
import { networkIdFrom, newVersion, type SignedVersion } from '../../src/format/version.js'
import { checkHeader, effectiveHeld, isListed, mayStayHeld, type PolicyContext, type Verdict } from '../../src/policy/accept.js'
import { namespaceOf, ownerSegment } from '../../src/policy/namespaces.js'
import { parseConfig } from '../../src/config/load.js'
import { dmError, testKey } from './helpers.js'

const NOW = 1_764_000_000_000
const DAY = 86_400_000
const NET = networkIdFrom('ns-net')
const network = testKey(21)
const issuer = testKey(22)
const alice = testKey(23)
const mallory = testKey(24)

function ctx (over: Partial<PolicyContext> = {}): PolicyContext {
  return {
    networkId: NET,
    allowlist: new Map([['dns/cnames', [alice.publicKey]]]),
    namespaces: new Map([['machines', []], ['deploy/status', [issuer.publicKey]]]),
    networkKey: network.publicKey,
    maxClockSkewMs: 600_000,
    nowMs: NOW,
    ...over
  }
}

function cert (over: Partial<CertBody> = {}, by = network): Uint8Array {
  return encodeCertificate(signCertificate({
    kind: CertKind.Namespace, subject: alice.publicKey, notBeforeMs: NOW - DAY, notAfterMs: NOW + 90 * DAY, name: 'machines', issuer: by.publicKey, ...over
  }, by.privateKey))
}

function make (o: { name?: string, key?: typeof alice, certs?: Uint8Array[], timestampMs?: number } = {}): SignedVersion {
  const key = o.key ?? alice
  const v = newVersion({
    name: o.name ?? `machines/${ownerSegment(key.publicKey)}/status`,
    networkId: NET, privateKey: key.privateKey, signer: key.publicKey, content: Buffer.from('ok'), timestampMs: o.timestampMs ?? NOW - 1000
  })
  return withCertificates(v, o.certs ?? [cert()])
}

function refused (verdict: Verdict, code: string): void {
  assert.equal(verdict.ok, false, `expected ${code}, got acceptance`)
  if (!verdict.ok) assert.equal(verdict.code, code, verdict.reason)
}

test('namespace: the owner with a network-key certificate may write under its own directory, at any depth', () => {
  assert.equal(checkHeader(make(), undefined, ctx()).ok, true)
  assert.equal(checkHeader(make({ name: `machines/${ownerSegment(alice.publicKey)}` }), undefined, ctx()).ok, true, 'upstream form: <ns>/<signer>')
  assert.equal(isListed(ctx(), `machines/${ownerSegment(alice.publicKey)}/a/b`), true)
})

test('namespace: a certificate from a listed issuer counts for its namespace only', () => {
  const fromIssuer = cert({ name: 'deploy/status', issuer: issuer.publicKey }, issuer)
  assert.equal(checkHeader(make({ name: `deploy/status/${ownerSegment(alice.publicKey)}`, certs: [fromIssuer] }), undefined, ctx()).ok, true)
  // The same issuer is not trusted for "machines".
  refused(checkHeader(make({ certs: [cert({ issuer: issuer.publicKey }, issuer)] }), undefined, ctx()), 'ERR_CERT_INVALID')
})

test('namespace: no certificate, an expired, a not-yet-valid, a wrong-namespace, a forged or another key\'s certificate is refused with its code', () => {
  refused(checkHeader(make({ certs: [] }), undefined, ctx()), 'ERR_CERT_MISSING')
  refused(checkHeader(make({ certs: [cert({ notBeforeMs: NOW - 90 * DAY, notAfterMs: NOW - DAY })] }), undefined, ctx()), 'ERR_CERT_EXPIRED')
  refused(checkHeader(make({ certs: [cert({ notBeforeMs: NOW, notAfterMs: NOW + DAY })] }), undefined, ctx()), 'ERR_CERT_EXPIRED')
  refused(checkHeader(make({ certs: [cert({ name: 'deploy/status' })] }), undefined, ctx()), 'ERR_CERT_WRONG_NAMESPACE')
  refused(checkHeader(make({ certs: [cert({}, mallory)] }), undefined, ctx()), 'ERR_CERT_INVALID')
  refused(checkHeader(make({ certs: [cert({ subject: mallory.publicKey })] }), undefined, ctx()), 'ERR_CERT_INVALID')
  refused(checkHeader(make({ certs: [cert({ kind: CertKind.Membership, name: '' })] }), undefined, ctx()), 'ERR_CERT_INVALID')
  refused(checkHeader(make({ certs: [Buffer.from('not a certificate')] }), undefined, ctx()), 'ERR_CERT_INVALID')
  const truncatedArea = { ...make({ certs: [] }), attachments: encodeAttachments([{ type: 1, bytes: cert() }]).subarray(0, 10) }
  refused(checkHeader(truncatedArea, undefined, ctx()), 'ERR_CERT_INVALID')
})

test('namespace: validity is judged at signing time, not at arrival', () => {
  const short = cert({ notBeforeMs: NOW - 2 * DAY, notAfterMs: NOW - DAY })
  const signedInWindow = make({ certs: [short], timestampMs: NOW - 1.5 * DAY })
  assert.equal(checkHeader(signedInWindow, undefined, ctx()).ok, true)
})

test('namespace: one good certificate among several is enough (a renewal riding with the old one)', () => {
  const old = cert({ notBeforeMs: NOW - 90 * DAY, notAfterMs: NOW - DAY })
  assert.equal(checkHeader(make({ certs: [old, cert()] }), undefined, ctx()).ok, true)
})

test('namespace: only the key the path names may write there, whatever certificate it holds', () => {
  const mallorysCert = cert({ subject: mallory.publicKey })
  refused(checkHeader(make({ key: mallory, name: `machines/${ownerSegment(alice.publicKey)}/status`, certs: [mallorysCert] }), undefined, ctx()), 'ERR_SIGNER_NOT_ALLOWED')
})

test('namespace: a malformed owner segment, the bare namespace and an undeclared prefix are not allowed', () => {
  refused(checkHeader(make({ name: 'machines/not-a-key/status' }), undefined, ctx()), 'ERR_NAME_NOT_ALLOWED')
  refused(checkHeader(make({ name: 'machines' }), undefined, ctx()), 'ERR_NAME_NOT_ALLOWED')
  refused(checkHeader(make({ name: `elsewhere/${ownerSegment(alice.publicKey)}` }), undefined, ctx()), 'ERR_NAME_NOT_ALLOWED')
  // Standard base64 of a key that contains + or / is not the canonical spelling.
  const padded = Buffer.from(alice.publicKey).toString('base64url') + '='
  assert.equal(namespaceOf(ctx(), `machines/${padded}`) !== undefined && 'problem' in (namespaceOf(ctx(), `machines/${padded}`) as object), true)
})

test('namespace: without declared namespaces, the same names are unlisted (a mesh without them works as before)', () => {
  refused(checkHeader(make(), undefined, ctx({ namespaces: undefined, networkKey: undefined })), 'ERR_NAME_NOT_ALLOWED')
})

test('namespace: held versions stay held and advertised while their namespace is declared; mayStayHeld re-checks the certificate', () => {
  const v = make()
  const entry = { name: v.name, timestampMs: v.timestampMs, id: new Uint8Array(32), version: v }
  assert.equal(effectiveHeld(ctx(), entry), entry)
  assert.equal(effectiveHeld(ctx({ namespaces: new Map() }), entry), undefined)
  assert.equal(mayStayHeld(ctx(), v), true)
  assert.notEqual(mayStayHeld(ctx({ networkKey: issuer.publicKey }), v), true, 'the network key changed: its certificate no longer holds')
})

test('config: [namespaces] and [network] key parse; nesting, clashes with [files] and issuer-less namespaces are refused', () => {
  const key = Buffer.from(network.publicKey).toString('base64')
  const cfg = parseConfig(`[network]\nkey = "${key}"\ncertificate = "node.cert"\n[namespaces]\nmachines = []\n"deploy/status" = ["${Buffer.from(issuer.publicKey).toString('base64')}"]\n`, '/etc/dm/dm.toml')
  assert.deepEqual(cfg.network.key, network.publicKey)
  assert.equal(cfg.network.certificate, '/etc/dm/node.cert')
  assert.deepEqual([...cfg.namespaces.keys()], ['machines', 'deploy/status'])
  assert.throws(() => parseConfig('[namespaces]\nmachines = []\n'), dmError('ERR_CONFIG'))
  assert.throws(() => parseConfig(`[network]\nkey = "${key}"\n[namespaces]\na = []\n"a/b" = []\n`), dmError('ERR_CONFIG'))
  assert.throws(() => parseConfig(`[network]\nkey = "${key}"\n[namespaces]\na = []\n[files]\n"a/x" = ["${key}"]\n`), dmError('ERR_CONFIG'))
  assert.throws(() => parseConfig('[network]\nkey = "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="\n'), dmError('ERR_CONFIG'))
  assert.throws(() => parseConfig(`[network]\nkey = "${key}"\n[namespaces]\n"../x" = []\n`), dmError('ERR_CONFIG'))
})
