import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { generateKeyPair, privateKeyToProtobuf } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { runDm } from '../helpers/cluster.js'
import { CertKind, decodeCertificate } from '../../src/format/certificate.js'
import { readEnvelopeFile } from '../../src/cli/sign.js'
import { parseConfig } from '../../src/config/load.js'
import { checkHeader } from '../../src/policy/accept.js'
import { ownerSegment } from '../../src/policy/namespaces.js'
import { tempDir } from './helpers.js'

test('dm network keygen, cert issue, sign --cert: the envelope passes the policy of a config with that key', async t => {
  const { dir, cleanup } = tempDir('dm-cert-cli-')
  t.after(cleanup)
  const p = (f: string): string => path.join(dir, f)
  const gen = await runDm(['network', 'keygen', '--out', p('network.pem')])
  assert.equal(gen.code, 0, gen.stderr)
  const keyLine = gen.stdout.split('\n').find(l => l.startsWith('key = ')) as string
  assert.ok(keyLine !== undefined, gen.stdout)
  assert.equal((fs.statSync(p('network.pem')).mode & 0o777), 0o600)
  assert.equal((await runDm(['network', 'keygen', '--out', p('network.pem')])).code, 1, 'never overwrites')

  const signer = (await runDm(['keygen', '--out', p('signer.pem')])).stdout.trim()
  const issued = await runDm(['cert', 'issue', '--network-key', p('network.pem'), '--key-pub', signer, '--namespace', 'machines', '--validity', '30d', '--out', p('signer.cert')])
  assert.equal(issued.code, 0, issued.stderr)
  const owner = ownerSegment(Buffer.from(signer, 'base64'))
  assert.ok(issued.stdout.includes(`machines/${owner}/`), issued.stdout)
  const cert = decodeCertificate(fs.readFileSync(p('signer.cert')))
  assert.equal(cert.kind, CertKind.Namespace)
  assert.equal(cert.name, 'machines')
  assert.equal(Math.round((cert.notAfterMs - cert.notBeforeMs) / 86_400_000), 30)

  fs.writeFileSync(p('status'), 'ok\n')
  const toml = `[network]\nid = "cli-net"\n${keyLine}\n[namespaces]\nmachines = []\n`
  fs.writeFileSync(p('dm.toml'), toml)
  const check = await runDm(['config', 'check', '--config', p('dm.toml')])
  assert.equal(check.code, 0, check.stderr)
  assert.match(check.stdout, /^mesh: private: network key /m)
  assert.match(check.stderr, /^dm: warning: network\.certificate: /m, 'a private mesh node with no certificate of its own is warned')

  const name = `machines/${owner}/status`
  const signed = await runDm(['sign', p('status'), '--key', p('signer.pem'), '--name', name, '--cert', p('signer.cert'), '--config', p('dm.toml'), '--out', p('status.sig')])
  assert.equal(signed.code, 0, signed.stderr)
  const cfg = parseConfig(toml)
  const policy = { networkId: readEnvelopeFile(p('status.sig')).networkId, allowlist: cfg.files, namespaces: cfg.namespaces, networkKey: cfg.network.key, maxClockSkewMs: 60_000, nowMs: Date.now() }
  assert.equal(checkHeader(readEnvelopeFile(p('status.sig')), undefined, policy).ok, true)
  // The same without --cert is refused by the same policy.
  assert.equal((await runDm(['sign', p('status'), '--key', p('signer.pem'), '--name', name, '--config', p('dm.toml'), '--out', p('bare.sig')])).code, 0)
  const bare = checkHeader(readEnvelopeFile(p('bare.sig')), undefined, policy)
  assert.equal(bare.ok ? 'accepted' : bare.code, 'ERR_CERT_MISSING')
  // A certificate for another key is refused at the keyboard.
  await runDm(['keygen', '--out', p('other.pem')])
  const wrong = await runDm(['sign', p('status'), '--key', p('other.pem'), '--name', name, '--cert', p('signer.cert'), '--network', 'cli-net', '--out', p('wrong.sig')])
  assert.equal(wrong.code, 1)
  assert.equal(fs.existsSync(p('wrong.sig')), false)

  const shown = await runDm(['cert', 'show', p('signer.cert')])
  assert.equal(shown.code, 0, shown.stderr)
  assert.match(shown.stdout, /kind\s+namespace/)
  assert.match(shown.stdout, /valid now/)
})

test('dm network admit: by peer id and by identity file, the same subject; an open mesh is said so', async t => {
  const { dir, cleanup } = tempDir('dm-admit-cli-')
  t.after(cleanup)
  const p = (f: string): string => path.join(dir, f)
  await runDm(['network', 'keygen', '--out', p('network.pem')])
  const identity = await generateKeyPair('Ed25519')
  fs.writeFileSync(p('identity.key'), privateKeyToProtobuf(identity), { mode: 0o600 })
  const peerId = peerIdFromPrivateKey(identity).toString()
  const byId = await runDm(['network', 'admit', '--network-key', p('network.pem'), '--peer-id', peerId, '--name', 'web-1', '--out', p('a.cert')])
  assert.equal(byId.code, 0, byId.stderr)
  const byFile = await runDm(['network', 'admit', '--network-key', p('network.pem'), '--identity-key', p('identity.key'), '--out', p('b.cert')])
  assert.equal(byFile.code, 0, byFile.stderr)
  const a = decodeCertificate(fs.readFileSync(p('a.cert')))
  const b = decodeCertificate(fs.readFileSync(p('b.cert')))
  assert.equal(a.kind, CertKind.Membership)
  assert.equal(a.name, 'web-1')
  assert.deepEqual(a.subject, identity.publicKey.raw)
  assert.deepEqual(b.subject, a.subject)
  assert.equal(Math.round((a.notAfterMs - a.notBeforeMs) / 86_400_000), 90, 'upstream\'s 90 days by default')
  assert.equal((await runDm(['network', 'admit', '--network-key', p('network.pem'), '--out', p('c.cert')])).code, 2, 'needs a node')
  assert.equal((await runDm(['network', 'admit', '--network-key', p('network.pem'), '--peer-id', peerId, '--name', 'has space', '--out', p('d.cert')])).code, 2)

  fs.writeFileSync(p('open.toml'), '[network]\nid = "x"\n')
  const check = await runDm(['config', 'check', '--config', p('open.toml')])
  assert.match(check.stdout, /^mesh: open/m)
})
