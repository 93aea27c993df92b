import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { MAX_CONTENT_BYTES } from '../../src/format/version.js'
import { readVerified } from '../../src/store/content-reader.js'
import { openHeldDir } from '../../src/store/held-dir.js'

/* readVerified: what the store serves and repairs from is only ever bytes that hash to the signed SHA-256. */

const sha = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest()

test('readVerified: the bytes when they match, nothing when they differ, are missing, a link or a directory', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-read-'))
  const held = await openHeldDir(dir)
  try {
    const content = Buffer.from('the signed content')
    fs.writeFileSync(path.join(dir, 'good'), content)
    fs.writeFileSync(path.join(dir, 'bad'), 'other content')
    fs.writeFileSync(path.join(dir, 'empty'), '')
    fs.symlinkSync(path.join(dir, 'good'), path.join(dir, 'link'))
    fs.mkdirSync(path.join(dir, 'sub'))
    assert.deepEqual(await readVerified(held, 'good', sha(content)), content)
    assert.deepEqual(await readVerified(held, 'empty', sha(Buffer.alloc(0))), Buffer.alloc(0))
    assert.equal(await readVerified(held, 'bad', sha(content)), undefined)
    assert.equal(await readVerified(held, 'missing', sha(content)), undefined)
    assert.equal(await readVerified(held, 'link', sha(content)), undefined)
    assert.equal(await readVerified(held, 'sub', sha(content)), undefined)
  } finally {
    await held.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})

test('readVerified: a file larger than any signed content is refused, not read into memory', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-read-'))
  const held = await openHeldDir(dir)
  try {
    // Sparse: costs no disk. Its bytes are zeros and the hash asked for is theirs: only the size cap refuses it.
    fs.writeFileSync(path.join(dir, 'huge'), '')
    fs.truncateSync(path.join(dir, 'huge'), MAX_CONTENT_BYTES + 1)
    assert.equal(await readVerified(held, 'huge', sha(Buffer.alloc(MAX_CONTENT_BYTES + 1))), undefined)
  } finally {
    await held.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
