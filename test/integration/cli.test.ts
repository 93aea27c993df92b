import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { Cluster, runDm } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'

/*
 * Keys off the nodes, end to end: sign on a machine with no daemon and no
 * config, copy the files, publish on a node that has no key; the version
 * spreads. Then delete the same way, and read back with dm get / dm list.
 */

test('offline sign, then dm publish --sig on a node: it spreads; an offline tombstone deletes it everywhere', async () => {
  const c = await Cluster.start(2)
  const offline = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-offline-'))
  try {
    const [a, b] = c.nodes
    // The "laptop": only the key and the file, no config, no daemon.
    const file = path.join(offline, 'cnames')
    const content = Buffer.from('www CNAME web1\n')
    fs.writeFileSync(file, content)
    const sig = path.join(offline, 'cnames.sig')
    const signed = await runDm(['sign', file, '--name', 'dns/cnames', '--key', c.key.path, '--network', 'test-net', '--ttl', '1d', '--out', sig], { cwd: offline })
    assert.equal(signed.code, 0, signed.stderr)

    // The node: the copied files, no key.
    const published = await runDm(['publish', file, '--sig', sig, '--config', a.configPath])
    assert.equal(published.code, 0, published.stderr)
    await c.waitAll('dns/cnames', content)

    const got = await runDm(['get', 'dns/cnames', '--config', b.configPath])
    assert.equal(got.code, 0, got.stderr)
    assert.equal(got.stdout, content.toString())
    const detail = JSON.parse((await runDm(['list', 'dns/cnames', '--json', '--config', b.configPath])).stdout) as { state: string, expiresAtMs: number, signer: string }
    assert.equal(detail.state, 'present')
    assert.equal(detail.signer, c.key.base64)
    assert.ok(detail.expiresAtMs > Date.now() + 23 * 3600_000, '--ttl 1d was signed in')

    // A signature for other content is refused before anything is sent.
    fs.writeFileSync(file, 'something else\n')
    const mismatch = await runDm(['publish', file, '--sig', sig, '--config', a.configPath])
    assert.equal(mismatch.code, 1)
    assert.match(mismatch.stderr, /^dm: /)

    const tomb = path.join(offline, 'cnames.tomb')
    assert.equal((await runDm(['sign', '--tombstone', 'dns/cnames', '--key', c.key.path, '--network', 'test-net', '--out', tomb], { cwd: offline })).code, 0)
    const deleted = await runDm(['publish', '--sig', tomb, '--config', b.configPath])
    assert.equal(deleted.code, 0, deleted.stderr)
    assert.match(deleted.stdout, /^deleted "dns\/cnames"/)
    await waitFor('the file gone on both nodes', () => c.nodes.every(n => n.file('dns/cnames') === undefined))
    await waitFor('tombstoned on a', async () => JSON.parse((await runDm(['list', 'dns/cnames', '--json', '--config', a.configPath])).stdout).state === 'tombstoned')
    assert.equal((await runDm(['get', 'dns/cnames', '--config', a.configPath])).code, 5)
  } finally {
    fs.rmSync(offline, { recursive: true, force: true })
    await c.stop()
  }
})
