import { test } from 'node:test'
import assert from 'node:assert/strict'
import {
  CERT_TAG, CertKind, certSignedBytes, decodeCertificate, encodeCertificate, signCertificate, verifyCertificate, type CertBody
} from '../../src/format/certificate.js'
import { attachmentsOf, AttachmentType, decodeAttachments, encodeAttachments, withCertificates } from '../../src/format/attachments.js'
import { MAX_ATTACHMENT_BYTES } from '../../src/format/version.js'
import { dmError, testKey } from './helpers.js'

const network = testKey(1)
const node = testKey(2)
const stranger = testKey(3)
const T0 = 1_764_000_000_000
const DAY = 86_400_000

function body (over: Partial<CertBody> = {}): CertBody {
  return { kind: CertKind.Namespace, subject: node.publicKey, notBeforeMs: T0, notAfterMs: T0 + 90 * DAY, name: 'machines', issuer: network.publicKey, ...over }
}
const want = { kind: CertKind.Namespace, subject: node.publicKey, issuers: [network.publicKey], name: 'machines', atMs: T0 + DAY }

test('certificate: encode, decode, verify round trip; the layout is tag, kind, subject, window, name, issuer, signature', () => {
  const c = signCertificate(body(), network.privateKey)
  const bytes = encodeCertificate(c)
  assert.equal(bytes.length, CERT_TAG.length + 1 + 32 + 8 + 8 + 2 + 'machines'.length + 32 + 64)
  assert.deepEqual(bytes.subarray(0, CERT_TAG.length), CERT_TAG)
  assert.equal(bytes[CERT_TAG.length], CertKind.Namespace)
  assert.deepEqual(certSignedBytes(c), bytes.subarray(0, bytes.length - 64))
  const back = decodeCertificate(bytes)
  assert.deepEqual(back, c)
  assert.equal(verifyCertificate(back, want), undefined)
})

test('certificate: every refusal has its code', () => {
  const good = signCertificate(body(), network.privateKey)
  const code = (c: typeof good, over: Partial<typeof want> = {}): string | undefined => verifyCertificate(c, { ...want, ...over })?.code
  assert.equal(code(good, { kind: CertKind.Membership }), 'ERR_CERT_INVALID')
  assert.equal(code(good, { subject: stranger.publicKey }), 'ERR_CERT_INVALID')
  assert.equal(code(good, { issuers: [stranger.publicKey] }), 'ERR_CERT_INVALID')
  // Signed by a stranger who claims the network key as issuer.
  const forged = { ...signCertificate(body(), stranger.privateKey), issuer: network.publicKey }
  assert.equal(code(forged), 'ERR_CERT_INVALID')
  // One changed byte of the window after signing.
  assert.equal(code({ ...good, notAfterMs: good.notAfterMs + 1 }), 'ERR_CERT_INVALID')
  assert.equal(code(good, { name: 'deploy' }), 'ERR_CERT_WRONG_NAMESPACE')
  assert.equal(code(good, { atMs: T0 - 1 }), 'ERR_CERT_EXPIRED')
  assert.equal(code(good, { atMs: T0 + 90 * DAY }), 'ERR_CERT_EXPIRED', 'notAfter is exclusive')
  assert.equal(code(good, { atMs: T0 }), undefined, 'notBefore is inclusive')
  // A listed issuer other than the network key.
  const delegated = signCertificate(body({ issuer: stranger.publicKey }), stranger.privateKey)
  assert.equal(code(delegated, { issuers: [network.publicKey, stranger.publicKey] }), undefined)
})

test('certificate: the decoder refuses malformed bytes with ERR_DECODE', () => {
  const bytes = encodeCertificate(signCertificate(body(), network.privateKey))
  assert.throws(() => decodeCertificate(bytes.subarray(0, bytes.length - 1)), dmError('ERR_DECODE'))
  assert.throws(() => decodeCertificate(Buffer.concat([bytes, Buffer.of(0)])), dmError('ERR_DECODE'))
  const badTag = Buffer.from(bytes); badTag[0] ^= 1
  assert.throws(() => decodeCertificate(badTag), dmError('ERR_DECODE'))
  const badKind = Buffer.from(bytes); badKind[CERT_TAG.length] = 9
  assert.throws(() => decodeCertificate(badKind), dmError('ERR_DECODE'))
  // A namespace that is not a valid name, and a window that ends before it starts.
  const raw = (b: CertBody): Buffer => Buffer.concat([certSignedBytes(b), Buffer.alloc(64)])
  assert.throws(() => decodeCertificate(raw(body({ name: '../etc' }))), dmError('ERR_DECODE'))
  assert.throws(() => decodeCertificate(raw(body({ notAfterMs: T0 }))), dmError('ERR_DECODE'))
  assert.throws(() => decodeCertificate(raw(body({ kind: CertKind.Membership, name: 'has space' }))), dmError('ERR_DECODE'))
  assert.throws(() => signCertificate(body({ notAfterMs: T0 - 1 }), network.privateKey), dmError('ERR_USAGE'))
})

test('attachments: items round trip, unknown types are kept and skipped, a truncated area is ERR_DECODE', () => {
  const area = encodeAttachments([{ type: 99, bytes: Buffer.from('future') }, { type: AttachmentType.Certificate, bytes: Buffer.from('c1') }])
  assert.equal(decodeAttachments(area).length, 2)
  assert.deepEqual(attachmentsOf(area, AttachmentType.Certificate).map(b => Buffer.from(b).toString()), ['c1'])
  assert.throws(() => decodeAttachments(area.subarray(0, area.length - 1)), dmError('ERR_DECODE'))
  assert.throws(() => encodeAttachments([{ type: 1, bytes: Buffer.alloc(MAX_ATTACHMENT_BYTES) }]), dmError('ERR_TOO_LARGE'))
  const v = withCertificates({ attachments: new Uint8Array(area) }, [Buffer.from('c2')])
  assert.deepEqual(attachmentsOf(v.attachments, AttachmentType.Certificate).map(b => Buffer.from(b).toString()), ['c1', 'c2'])
})
