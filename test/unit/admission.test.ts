import '../../src/polyfill.ts'
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { generateKeyPairSync, createPublicKey } from 'node:crypto'
import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createMeshNode, type MeshNode } from '../../src/net/node.ts'
import { createAdmission, type Admission } from '../../src/net/admission.ts'
import { judgeMembership } from '../../src/net/admit-trust.ts'
import { decodeVerdict, encodeVerdict, PROTOCOL_ADMIT } from '../../src/net/admit-wire.ts'
import { libp2pTransport } from '../../src/net/transport.ts'
import { CertKind, encodeCertificate, signCertificate } from '../../src/format/certificate.ts'
import { rawPublicKey } from '../../src/crypto/keys.ts'
import { networkIdFrom } from '../../src/format/version.ts'
import { DmError } from '../../src/errors.ts'
import { recordingLog } from './helpers.ts'
import type { Transport } from '../../src/sync/transport.ts'
import { waitFor } from '../helpers/wait.ts'

/*
 * Admission between real libp2p nodes in this process (TCP on 127.0.0.1,
 * Noise, Yamux): who is admitted, what an unadmitted peer can reach (nothing),
 * and the log line with its code on both sides.
 */

// Honest exchanges never wait for the frame timeout, so it is generous: a loaded machine must not fail them.
// Only the test of a peer that never answers waits one out, and it uses the short one.
const FRAME_TIMEOUT_MS = 5000
const SHORT_FRAME_TIMEOUT_MS = 500
const DAY = 86_400_000
const PROTOCOL_PROBE = '/data-mesher/probe/1.0.0'

function newNetworkKey (): { privateKey: ReturnType<typeof generateKeyPairSync>['privateKey'], publicKey: Uint8Array } {
  const { privateKey } = generateKeyPairSync('ed25519')
  return { privateKey, publicKey: rawPublicKey(createPublicKey(privateKey)) }
}
const network = newNetworkKey()

interface Peer {
  node: MeshNode
  admission?: Admission
  transport: Transport
  log: ReturnType<typeof recordingLog>
  key: Uint8Array
  /** Streams of PROTOCOL_PROBE the sync side was handed, by peer. */
  delivered: string[]
}

const started: MeshNode[] = []
after(async () => { await Promise.all(started.map(async n => await n.stop())) })

/** A membership certificate for `key`, valid around now unless told otherwise. */
function membershipCert (key: Uint8Array, over: { notBeforeMs?: number, notAfterMs?: number } = {}, issuer = network): Uint8Array {
  const now = Date.now()
  return encodeCertificate(signCertificate({ kind: CertKind.Membership, subject: key, notBeforeMs: now - DAY, notAfterMs: now + DAY, name: 'n', issuer: issuer.publicKey, ...over }, issuer.privateKey))
}

/** A node; `cert` makes it a member (undefined: a node of the open mesh, which runs no admission at all). */
async function peer (cert?: (key: Uint8Array) => Uint8Array, frameTimeoutMs = FRAME_TIMEOUT_MS): Promise<Peer> {
  const privateKey = await generateKeyPair('Ed25519')
  const key = new Uint8Array(privateKey.publicKey.raw)
  const node = await createMeshNode({ identity: { privateKey, peerId: peerIdFromPrivateKey(privateKey) }, listen: ['/ip4/127.0.0.1/tcp/0'], networkId: networkIdFrom('admission-test'), mdns: false, maxConnections: 16 })
  started.push(node)
  const log = recordingLog()
  const admission = cert === undefined ? undefined : createAdmission({ node, networkKey: network.publicKey, certificate: cert(key), frameTimeoutMs, log })
  await admission?.start()
  const transport = libp2pTransport(node, { frameTimeoutMs, admission })
  const delivered: string[] = []
  await transport.handle(PROTOCOL_PROBE, async ch => { delivered.push(ch.peer); await ch.close().catch(() => {}) })
  return { node, admission, transport, log, key, delivered }
}

const codesOf = (p: Peer, msg: string): unknown[] => p.log.lines.filter(l => l.level === 'warn' && l.msg === msg).map(l => l.obj.code)

async function disconnected (a: Peer, b: Peer): Promise<void> {
  await waitFor('disconnected', () => a.node.getConnections(b.node.peerId).length === 0 && b.node.getConnections(a.node.peerId).length === 0, 10_000)
}

test('two members admit each other: each sees the other, and streams flow both ways', async () => {
  const a = await peer(membershipCert)
  const b = await peer(membershipCert)
  await a.node.dial(b.node.getMultiaddrs())
  await waitFor('both admitted', () => a.transport.connectedPeers().includes(b.node.peerId.toString()) && b.transport.connectedPeers().includes(a.node.peerId.toString()))
  const ch = await a.transport.open(b.node.peerId.toString(), PROTOCOL_PROBE)
  await ch.close()
  await waitFor('probe delivered', () => b.delivered.includes(a.node.peerId.toString()))
  assert.deepEqual(codesOf(a, 'peer not admitted'), [])
  assert.deepEqual(codesOf(b, 'peer not admitted'), [])
})

test('a node without a certificate, with an expired one or with another node\'s is refused, logged with its code on both sides, and disconnected', async () => {
  const judge = await peer(membershipCert)
  const cases: Array<[string, (key: Uint8Array) => Uint8Array, string]> = [
    ['none', () => new Uint8Array(0), 'ERR_NOT_ADMITTED'],
    ['expired', key => membershipCert(key, { notBeforeMs: Date.now() - 3 * DAY, notAfterMs: Date.now() - DAY }), 'ERR_CERT_EXPIRED'],
    ['another node\'s', () => membershipCert(judge.key), 'ERR_CERT_INVALID'],
    ['issued by another key', key => membershipCert(key, {}, newNetworkKey()), 'ERR_CERT_INVALID']
  ]
  for (const [what, cert, code] of cases) {
    const intruder = await peer(cert)
    let seenByJudge = false
    judge.admission?.onChange(p => { if (p === intruder.node.peerId.toString()) seenByJudge = true })
    await intruder.node.dial(judge.node.getMultiaddrs()).catch(() => {})
    await waitFor(`${what}: refusal logged on both sides`, () => codesOf(judge, 'peer not admitted').includes(code) && codesOf(intruder, 'this node was not admitted by the peer').includes(code))
    await disconnected(judge, intruder)
    assert.equal(seenByJudge, false, what)
    assert.equal(judge.transport.connectedPeers().includes(intruder.node.peerId.toString()), false, what)
    judge.log.lines.length = 0
  }
})

test('an unadmitted peer reaches no service: its streams are refused, none is opened to it, and membership hears nothing of it', async () => {
  const member = await peer(membershipCert, SHORT_FRAME_TIMEOUT_MS)
  const outsider = await peer() // runs no admission at all, like an old or hostile node
  const identified: string[] = []
  const joins: string[] = []
  member.admission?.node.addEventListener('peer:identify', evt => identified.push(evt.detail.peerId.toString()))
  member.admission?.node.addEventListener('connection:open', evt => joins.push(evt.detail.remotePeer.toString()))
  member.admission?.node.addEventListener('peer:discovery', evt => identified.push(evt.detail.id.toString()))
  const t0 = Date.now()
  await outsider.node.dial(member.node.getMultiaddrs())
  await outsider.node.dialProtocol(member.node.peerId, PROTOCOL_PROBE).catch(() => undefined)
  await assert.rejects(member.transport.open(outsider.node.peerId.toString(), PROTOCOL_PROBE), (err: unknown) => err instanceof DmError && err.code === 'ERR_NOT_ADMITTED')
  await disconnected(member, outsider)
  // Bounded: the exchange deadline is three frame timeouts.
  assert.ok(Date.now() - t0 < 3 * SHORT_FRAME_TIMEOUT_MS + 2000, `disconnected after ${Date.now() - t0} ms`)
  assert.ok(codesOf(member, 'peer not admitted').includes('ERR_NOT_ADMITTED'))
  assert.deepEqual(member.delivered, [], 'the probe stream was never handed to the service')
  assert.deepEqual(identified, [])
  assert.deepEqual(joins, [])
  assert.equal(member.admission?.node.getPeers().length, 0)
  // The filtered dial of membership fails like a dial, with the code.
  await assert.rejects(member.admission!.node.dial(outsider.node.getMultiaddrs()), (err: unknown) => err instanceof DmError && err.code === 'ERR_NOT_ADMITTED')
})

test('an admitted peer is disconnected when the revocation list names it, and refused when it comes back', async () => {
  const a = await peer(membershipCert)
  const b = await peer(membershipCert)
  const membershipEvents: string[] = []
  a.admission?.node.addEventListener('peer:identify', evt => membershipEvents.push(evt.detail.peerId.toString()))
  await b.node.dial(a.node.getMultiaddrs())
  await waitFor('admitted', () => a.transport.connectedPeers().length === 1)
  await waitFor('identify replayed once admitted', () => membershipEvents.includes(b.node.peerId.toString()))
  const gone: string[] = []
  a.transport.onPeer((p, connected) => { if (!connected) gone.push(p) })
  a.admission?.setRevoked(key => Buffer.from(key).equals(b.key) ? 'stolen laptop' : undefined)
  assert.deepEqual(a.transport.connectedPeers(), [])
  assert.deepEqual(gone, [b.node.peerId.toString()])
  assert.deepEqual(codesOf(a, 'peer no longer admitted; disconnecting'), ['ERR_REVOKED'])
  await disconnected(a, b)
  await b.node.dial(a.node.getMultiaddrs()).catch(() => {})
  await waitFor('refused at admission', () => codesOf(b, 'this node was not admitted by the peer').includes('ERR_REVOKED'))
  await disconnected(a, b)
})

test('judgeMembership and the verdict frame: codes, bounds and hostile bytes', () => {
  const { privateKey } = generateKeyPairSync('ed25519')
  const key = rawPublicKey(createPublicKey(privateKey))
  const now = Date.now()
  const trust = { networkKey: network.publicKey, nowMs: now }
  assert.equal(judgeMembership(membershipCert(key), key, trust).ok, true)
  const code = (r: ReturnType<typeof judgeMembership>): string => r.ok ? 'ok' : r.code
  assert.equal(code(judgeMembership(new Uint8Array(0), key, trust)), 'ERR_NOT_ADMITTED')
  assert.equal(code(judgeMembership(Buffer.from('garbage'), key, trust)), 'ERR_CERT_INVALID')
  assert.equal(code(judgeMembership(membershipCert(key), undefined, trust)), 'ERR_NOT_ADMITTED')
  assert.equal(code(judgeMembership(membershipCert(key), key, { ...trust, nowMs: now + 2 * DAY })), 'ERR_CERT_EXPIRED')
  assert.equal(code(judgeMembership(membershipCert(key), key, { ...trust, revoked: () => 'lost' })), 'ERR_REVOKED')
  const ns = encodeCertificate(signCertificate({ kind: CertKind.Namespace, subject: key, notBeforeMs: now - DAY, notAfterMs: now + DAY, name: 'machines', issuer: network.publicKey }, network.privateKey))
  assert.equal(code(judgeMembership(ns, key, trust)), 'ERR_CERT_INVALID', 'a namespace certificate is no membership')

  assert.deepEqual(decodeVerdict(encodeVerdict({ ok: true })), { ok: true })
  const long = decodeVerdict(encodeVerdict({ ok: false, code: 'ERR_CERT_EXPIRED', reason: 'é'.repeat(500) }))
  assert.equal(long.ok, false)
  const hostile = (bytes: Uint8Array): string => { try { decodeVerdict(bytes); return 'decoded' } catch (err) { return (err as DmError).code } }
  assert.equal(hostile(Uint8Array.of(2)), 'ERR_DECODE')
  assert.equal(hostile(Uint8Array.of(0, 0)), 'ERR_DECODE')
  assert.equal(hostile(Buffer.concat([Uint8Array.of(1, 0, 3), Buffer.from('bad'), Uint8Array.of(0, 0)])), 'ERR_DECODE', 'a code that is not ERR_*')
  assert.equal(hostile(Uint8Array.of(1, 0xff, 0xff)), 'ERR_DECODE', 'a length beyond the bound')
  assert.equal(PROTOCOL_ADMIT, '/data-mesher/admit/1.0.0')
})
