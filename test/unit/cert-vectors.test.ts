import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import * as ed from '@noble/ed25519'
import { sha512 } from '@noble/hashes/sha2.js'
import { REPO_ROOT } from './helpers.js'
import { CertKind, decodeCertificate, encodeCertificate, verifyCertificate } from '../../src/format/certificate.js'
import { decodeEnvelope, hex, networkIdFrom, versionId } from '../../src/format/version.js'
import { checkHeader } from '../../src/policy/accept.js'

ed.hashes.sha512 = sha512
const V = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'test/vectors/cert-v1.json'), 'utf8'))
const b = (h: string): Uint8Array => new Uint8Array(Buffer.from(h, 'hex'))

test('cert vectors: each certificate decodes, re-encodes byte for byte, and its signature verifies (noble, independently)', () => {
  for (const c of V.certificates) {
    const cert = decodeCertificate(b(c.certificateHex))
    assert.equal(cert.kind, c.kindByte)
    assert.equal(cert.name, c.name)
    assert.equal(hex(encodeCertificate(cert)), c.certificateHex)
    assert.equal(hex(cert.subject), V.subject.publicKeyHex)
    assert.ok(ed.verify(b(c.signatureHex), b(c.signedBytesHex), b(V.issuer.publicKeyHex)), c.description)
    assert.equal(verifyCertificate(cert, { kind: c.kindByte, subject: cert.subject, issuers: [b(V.issuer.publicKeyHex)], atMs: c.notBeforeMs }), undefined)
  }
})

test('cert vectors: the namespaced version is accepted by a policy with that network key, and refused without its attachment', () => {
  const nv = V.namespacedVersion
  const v = decodeEnvelope(b(nv.envelopeHex))
  assert.equal(v.name, nv.name)
  assert.equal(v.name, `machines/${V.subject.ownerSegment}/status`)
  assert.equal(hex(v.attachments), nv.attachmentsHex)
  assert.equal(hex(versionId(v)), nv.versionIdHex)
  const ctx = { networkId: networkIdFrom(nv.network), allowlist: new Map(), namespaces: new Map([['machines', []]]), networkKey: b(V.issuer.publicKeyHex), maxClockSkewMs: 0, nowMs: nv.timestampMs }
  assert.equal(checkHeader(v, undefined, ctx).ok, true)
  const stripped = checkHeader({ ...v, attachments: new Uint8Array(0) }, undefined, ctx)
  assert.equal(stripped.ok ? 'accepted' : stripped.code, 'ERR_CERT_MISSING')
  assert.equal(V.certificates[0].kindByte, CertKind.Namespace)
})
