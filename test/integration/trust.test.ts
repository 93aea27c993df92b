import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { Cluster, newSigningKey } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'
import { DmError } from '../../src/errors.ts'
import { CertKind, encodeCertificate, signCertificate } from '../../src/format/certificate.ts'
import { withCertificates } from '../../src/format/attachments.ts'
import { ownerSegment } from '../../src/policy/namespaces.ts'
import { admit, privateMesh } from '../helpers/private-mesh.ts'

/*
 * Upstream's test list, between real daemons on a private mesh: an upload
 * spreads, a tombstone spreads, a namespaced file with a certificate spreads,
 * and a namespaced upload without one (or with an expired or wrong-namespace
 * one) is refused everywhere.
 */

let c: Cluster
after(async () => { await c?.stop() })

const DAY = 86_400_000

test('trust: uploads, tombstones and certified namespaced files spread; uncertified namespaced uploads are refused everywhere', async () => {
  c = new Cluster('dm-trust-')
  const network = newSigningKey(c.root, 'network')
  const machine = newSigningKey(c.root, 'machine')
  for (let i = 0; i < 3; i++) {
    const n = await c.add()
    n.setOptions({ extra: privateMesh(network, admit(n, network), '[namespaces]\nmachines = []\ndeploy = []') })
  }
  await Promise.all(c.nodes.map(async n => await n.start()))
  await Promise.all(c.nodes.map(async n => await waitFor(`${n.name} connected`, async () => (await n.connectedPeers()) > 0)))
  const [n0, n1, n2] = c.nodes

  const hello = Buffer.from('hello fleet')
  await n0.submit(c.sign('hello.txt', hello), hello)
  await c.waitAll('hello.txt', hello)
  await n1.submit(c.sign('hello.txt', undefined), Buffer.alloc(0))
  await waitFor('tombstone everywhere', () => c.nodes.every(n => n.file('hello.txt') === undefined))

  const now = Date.now()
  const cert = (over: { name?: string, notBeforeMs?: number, notAfterMs?: number } = {}): Uint8Array => encodeCertificate(signCertificate({
    kind: CertKind.Namespace, subject: machine.publicKey, notBeforeMs: now - DAY, notAfterMs: now + DAY, name: 'machines', issuer: network.publicKey, ...over
  }, network.privateKey))
  const name = `machines/${ownerSegment(machine.publicKey)}/status`
  const sign = (content: Buffer, certs: Uint8Array[]): ReturnType<typeof c.sign> => withCertificates(c.sign(name, content, Date.now(), machine), certs)

  const refusedWith = async (content: Buffer, certs: Uint8Array[]): Promise<string> => {
    try { await n2.submit(sign(content, certs), content) } catch (err) { return err instanceof DmError ? err.code : String(err) }
    return 'accepted'
  }
  assert.equal(await refusedWith(Buffer.from('no cert'), []), 'ERR_CERT_MISSING')
  assert.equal(await refusedWith(Buffer.from('expired'), [cert({ notBeforeMs: now - 3 * DAY, notAfterMs: now - DAY })]), 'ERR_CERT_EXPIRED')
  assert.equal(await refusedWith(Buffer.from('wrong ns'), [cert({ name: 'deploy' })]), 'ERR_CERT_WRONG_NAMESPACE')

  const good = Buffer.from('{"state":"ok"}')
  await n2.submit(sign(good, [cert()]), good)
  await c.waitAll(name, good)
  // None of the refused uploads reached any node (the certified one is what every node holds).
  for (const n of [n0, n1, n2]) assert.deepEqual(n.file(name), good)
})
