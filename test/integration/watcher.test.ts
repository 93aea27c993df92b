import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import { Cluster } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'

let c: Cluster
after(async () => { await c?.stop() })

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

test('an inotify watcher on a replica only ever sees complete, accepted versions', async () => {
  c = new Cluster()
  const files = { 'big.bin': [c.key.base64] }
  const src = await c.add({ files })
  const dst = await c.add({ files })
  await Promise.all(c.nodes.map(async n => await n.start()))
  await waitFor('connected', async () => (await dst.connectedPeers()) > 0)

  fs.mkdirSync(dst.filesDir, { recursive: true })
  const published = new Set<string>()
  const seen: Array<{ name: string, hash: string | undefined }> = []
  const watcher = fs.watch(dst.filesDir, (_event, name) => {
    let data: Buffer | undefined
    try { data = fs.readFileSync(`${dst.filesDir}/${String(name)}`) } catch {}
    seen.push({ name: String(name), hash: data === undefined ? undefined : sha(data) })
  })
  try {
    let last: Buffer = Buffer.alloc(0)
    const t = Date.now()
    for (let i = 0; i < 15; i++) {
      last = randomBytes(512 * 1024 + i)
      published.add(sha(last))
      await src.submit(c.sign('big.bin', last, t + i), last)
    }
    await c.waitAll('big.bin', last)
    await waitFor('an event for the final version', () => seen.some(s => s.hash === sha(last)))
  } finally {
    watcher.close()
  }
  assert.ok(seen.length > 0)
  for (const s of seen) {
    assert.equal(s.name, 'big.bin', `event for an unexpected name ${s.name}`)
    assert.ok(s.hash !== undefined && published.has(s.hash), 'every read after an event is a complete published version')
  }
})
