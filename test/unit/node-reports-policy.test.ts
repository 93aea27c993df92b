import { test } from 'node:test'
import assert from 'node:assert/strict'
import { CertKind, encodeCertificate, signCertificate, type CertBody } from '../../src/format/certificate.js'
import { withCertificates } from '../../src/format/attachments.js'
import { networkIdFrom, newVersion, versionId, type SignedVersion } from '../../src/format/version.js'
import { checkHeader, effectiveHeld, mayStayHeld, type PolicyContext, type Verdict } from '../../src/policy/accept.js'
import { nodeReportName } from '../../src/policy/node-reports.js'
import { ownerSegment } from '../../src/policy/namespaces.js'
import { ConfigError, parseConfig } from '../../src/config/load.js'
import { testKey } from './helpers.js'

/* The reserved `_dm/nodes` namespace: a node writes its own report with its admission certificate. */

const NOW = 1_764_000_000_000
const DAY = 86_400_000
const NET = networkIdFrom('nodes-net')
const network = testKey(31)
const node = testKey(32)
const other = testKey(33)

function ctx (over: Partial<PolicyContext> = {}): PolicyContext {
  return { networkId: NET, allowlist: new Map(), namespaces: new Map(), networkKey: network.publicKey, maxClockSkewMs: 600_000, nowMs: NOW, ...over }
}

function cert (over: Partial<CertBody> = {}, by = network): Uint8Array {
  return encodeCertificate(signCertificate({
    kind: CertKind.Membership, subject: node.publicKey, notBeforeMs: NOW - DAY, notAfterMs: NOW + DAY, name: 'web-1', issuer: by.publicKey, ...over
  }, by.privateKey))
}

function report (o: { name?: string, key?: typeof node, certs?: Uint8Array[], timestampMs?: number } = {}): SignedVersion {
  const key = o.key ?? node
  const v = newVersion({ name: o.name ?? nodeReportName(node.publicKey), networkId: NET, privateKey: key.privateKey, signer: key.publicKey, content: Buffer.from('{}'), timestampMs: o.timestampMs ?? NOW - 1000 })
  return withCertificates(v, o.certs ?? [cert()])
}

function refused (verdict: Verdict, code: string): void {
  assert.equal(verdict.ok, false, `expected ${code}, got acceptance`)
  if (!verdict.ok) assert.equal(verdict.code, code, verdict.reason)
}

test('node reports: a node\'s own identity key with its membership certificate may write _dm/nodes/<its key>', () => {
  assert.equal(nodeReportName(node.publicKey), `_dm/nodes/${ownerSegment(node.publicKey)}`)
  assert.equal(checkHeader(report(), undefined, ctx()).ok, true)
  assert.equal(mayStayHeld(ctx(), report()), true)
})

test('node reports: another key\'s path, no certificate, an expired, namespace-kind or foreign-issued certificate are refused with their codes', () => {
  refused(checkHeader(report({ key: other, certs: [cert({ subject: other.publicKey })] }), undefined, ctx()), 'ERR_SIGNER_NOT_ALLOWED')
  refused(checkHeader(report({ certs: [] }), undefined, ctx()), 'ERR_CERT_MISSING')
  refused(checkHeader(report({ certs: [cert({ notBeforeMs: NOW - 3 * DAY, notAfterMs: NOW - 2 * DAY })] }), undefined, ctx()), 'ERR_CERT_EXPIRED')
  refused(checkHeader(report({ certs: [cert({ kind: CertKind.Namespace, name: '_dm/nodes' })] }), undefined, ctx()), 'ERR_CERT_INVALID')
  refused(checkHeader(report({ certs: [cert({}, other)] }), undefined, ctx()), 'ERR_CERT_INVALID')
  refused(checkHeader(report({ certs: [cert({ subject: other.publicKey })] }), undefined, ctx()), 'ERR_CERT_INVALID')
  // Judged at signing time: signed inside the window, accepted after it ended.
  const short = cert({ notBeforeMs: NOW - 3 * DAY, notAfterMs: NOW - DAY })
  assert.equal(checkHeader(report({ certs: [short], timestampMs: NOW - 2 * DAY }), undefined, ctx()).ok, true)
})

test('node reports: refused on an open mesh, with a malformed owner or a sub-path, whatever [files] lists', () => {
  refused(checkHeader(report(), undefined, ctx({ networkKey: undefined })), 'ERR_NAME_NOT_ALLOWED')
  refused(checkHeader(report({ name: `${nodeReportName(node.publicKey)}/extra` }), undefined, ctx()), 'ERR_NAME_NOT_ALLOWED')
  refused(checkHeader(report({ name: '_dm/nodes/web-1' }), undefined, ctx()), 'ERR_NAME_NOT_ALLOWED')
  // A [files] entry cannot hand the name to another key (the config refuses one anyway).
  const listed = ctx({ allowlist: new Map([[nodeReportName(node.publicKey), [other.publicKey]]]) })
  refused(checkHeader(report({ key: other, certs: [cert({ subject: other.publicKey })] }), undefined, listed), 'ERR_SIGNER_NOT_ALLOWED')
})

test('node reports: a revoked node (or its key revoked as a signer) is refused, and its held report no longer counts', () => {
  const revokedNode = ctx({ revocations: { signers: [], nodes: [{ key: node.publicKey, reason: 'stolen', revokedAtMs: NOW }] } })
  refused(checkHeader(report(), undefined, revokedNode), 'ERR_REVOKED')
  const revokedSigner = ctx({ revocations: { signers: [{ key: node.publicKey, reason: 'stolen', revokedAtMs: NOW }], nodes: [] } })
  refused(checkHeader(report(), undefined, revokedSigner), 'ERR_REVOKED')
  const v = report()
  const held = { name: v.name, version: v, timestampMs: v.timestampMs, id: versionId(v) }
  assert.equal(effectiveHeld(ctx(), held), held)
  assert.equal(effectiveHeld(revokedNode, held), undefined)
  // A revoked node's key signing an ordinary file is judged by the signers section only.
  const file = { ...held, name: 'dns/cnames' }
  const listed = { ...revokedNode, allowlist: new Map([['dns/cnames', [node.publicKey]]]) }
  assert.equal(effectiveHeld(listed, file), file)
})

test('node reports: the config refuses names and namespaces under _dm/, naming the key', () => {
  const problems = (table: string): string[] => {
    try {
      parseConfig(`[network]\nid = "x"\nkey = "${Buffer.from(network.publicKey).toString('base64')}"\ncertificate = "c"\n${table}\n`, 'test.toml')
    } catch (err) {
      if (err instanceof ConfigError) return err.problems
      throw err
    }
    assert.fail('the config was accepted')
  }
  assert.ok(problems(`[files]\n"_dm/nodes/x" = ["${Buffer.from(node.publicKey).toString('base64')}"]`).some(p => p.startsWith('files."_dm/nodes/x"')))
  assert.ok(problems('[namespaces]\n"_dm" = []').some(p => p.startsWith('namespaces."_dm"')))
})
