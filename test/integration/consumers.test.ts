import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { hex, versionId } from '../../src/format/version.ts'
import { Cluster, type TestNode } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'

/*
 * What consumers of a replica see, with real daemons: versions published back
 * to back on a, received by b. An inotify watcher on b's files/ only ever
 * reads complete, accepted versions; a [[hooks]] entry on b ends having seen
 * the last one, only ever saw whole accepted files, and never ran twice at
 * once for the name. One pair serves both: each test uses its own name.
 */

const HOOK = `#!/bin/sh
lock="$1"; log="$2"
mkdir "$lock" 2>/dev/null || echo overlap >> "$log"
echo "$DM_KIND $DM_NAME $DM_VERSION_ID $(sha256sum "$DM_PATH" | cut -d' ' -f1)" >> "$log"
sleep 0.05
rmdir "$lock"
`

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex')

let c: Cluster
let a: TestNode
let b: TestNode
let lock: string
let log: string

before(async () => {
  c = new Cluster()
  const script = path.join(c.root, 'hook.sh')
  fs.writeFileSync(script, HOOK, { mode: 0o755 })
  lock = path.join(c.root, 'hook.lock')
  log = path.join(c.root, 'hook.log')
  const files = { 'hello.txt': [c.key.base64], 'big.bin': [c.key.base64] }
  a = await c.add({ files })
  b = await c.add({ files, extra: `\n[[hooks]]\nname = "hello.txt"\nexec = ["/bin/sh", ${JSON.stringify(script)}, ${JSON.stringify(lock)}, ${JSON.stringify(log)}]\ntimeout_ms = 10000\n` })
  await a.start()
  await b.start()
  await waitFor('b connected', async () => (await b.connectedPeers()) > 0)
})
after(async () => { await c?.stop() })

test('an inotify watcher on a replica only ever sees complete, accepted versions', async () => {
  const [src, dst] = [a, b]
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

test('a hook runs after accepted versions: sees the last of 20 quick updates, whole files only, never two runs at once', async () => {
  const published = new Map<string, string>()
  let last = ''
  const t0 = Date.now()
  for (let i = 0; i < 20; i++) {
    const content = Buffer.from(`version ${i}\n`.repeat(100 + i))
    const v = c.sign('hello.txt', content, t0 + i)
    last = hex(versionId(v))
    published.set(last, sha(content))
    await a.submit(v, content)
  }
  const lines = await waitFor('the hook saw the last version', () => {
    const l = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : []
    return l.at(-1)?.split(' ')[2] === last ? l : undefined
  }, 20_000)
  assert.ok(!lines.includes('overlap'), `two runs at once: ${lines.join(' | ')}`)
  const whole = new Set(published.values())
  for (const line of lines) {
    const [kind, name, id, fileSha] = line.split(' ')
    assert.equal(kind, 'file')
    assert.equal(name, 'hello.txt')
    assert.ok(published.has(id), `the hook was told of a published version (${id})`)
    // The file may already hold a newer version than the one the run was for (a later run follows), but never a partial one.
    assert.ok(whole.has(fileSha), `the hook read a whole, accepted file (${fileSha})`)
  }
  assert.equal(lines.at(-1)?.split(' ')[3], published.get(last), 'the last run read the last version')
  assert.ok(lines.length <= 20, `${lines.length} runs for 20 versions`)
})
