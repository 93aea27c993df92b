import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { hex, versionId } from '../../src/format/version.ts'
import { Cluster } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'

/*
 * [[hooks]] with real daemons: 20 versions published back to back on one
 * node; the hook on another node ends having seen the last one, only ever
 * saw whole accepted files, and never ran twice at once for the name.
 */

const HOOK = `#!/bin/sh
lock="$1"; log="$2"
mkdir "$lock" 2>/dev/null || echo overlap >> "$log"
echo "$DM_KIND $DM_NAME $DM_VERSION_ID $(sha256sum "$DM_PATH" | cut -d' ' -f1)" >> "$log"
sleep 0.05
rmdir "$lock"
`

test('a hook runs after accepted versions: sees the last of 20 quick updates, whole files only, never two runs at once', async () => {
  const c = new Cluster()
  try {
    const script = path.join(c.root, 'hook.sh')
    fs.writeFileSync(script, HOOK, { mode: 0o755 })
    const lock = path.join(c.root, 'hook.lock')
    const log = path.join(c.root, 'hook.log')
    const a = await c.add()
    const b = await c.add({ extra: `\n[[hooks]]\nname = "hello.txt"\nexec = ["/bin/sh", ${JSON.stringify(script)}, ${JSON.stringify(lock)}, ${JSON.stringify(log)}]\ntimeout_ms = 10000\n` })
    await a.start()
    await b.start()
    await waitFor('b connected', async () => (await b.connectedPeers()) > 0)

    const published = new Map<string, string>()
    let last = ''
    const t0 = Date.now()
    for (let i = 0; i < 20; i++) {
      const content = Buffer.from(`version ${i}\n`.repeat(100 + i))
      const v = c.sign('hello.txt', content, t0 + i)
      last = hex(versionId(v))
      published.set(last, createHash('sha256').update(content).digest('hex'))
      await a.submit(v, content)
    }
    const lines = await waitFor('the hook saw the last version', () => {
      const l = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n') : []
      return l.at(-1)?.split(' ')[2] === last ? l : undefined
    }, 20_000)
    assert.ok(!lines.includes('overlap'), `two runs at once: ${lines.join(' | ')}`)
    const whole = new Set(published.values())
    for (const line of lines) {
      const [kind, name, id, sha] = line.split(' ')
      assert.equal(kind, 'file')
      assert.equal(name, 'hello.txt')
      assert.ok(published.has(id), `the hook was told of a published version (${id})`)
      // The file may already hold a newer version than the one the run was for (a later run follows), but never a partial one.
      assert.ok(whole.has(sha), `the hook read a whole, accepted file (${sha})`)
    }
    assert.equal(lines.at(-1)?.split(' ')[3], published.get(last), 'the last run read the last version')
    assert.ok(lines.length <= 20, `${lines.length} runs for 20 versions`)
  } finally {
    await c.stop()
  }
})
