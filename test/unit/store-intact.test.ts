import { test } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import { openHeldDir } from '../../src/store/held-dir.js'
import { intactSync, readRegularSync, statFingerprint } from '../../src/store/intact.js'
import { openStore } from '../../src/store/store.js'
import { hex, networkIdFrom, newVersion, versionId } from '../../src/format/version.js'
import { fdsUnder, tempDir, testKey } from './helpers.js'

/*
 * The start-up fast path (src/store/intact.ts) says "intact" only for what the
 * careful path would leave as it is; everything else goes to the repair path.
 */

const sha = (s: string): Buffer => createHash('sha256').update(s).digest()

/** files/ and keep/ under a temporary dir, held as the store holds them. */
async function withDirs (fn: (ctx: { dir: string, files: Awaited<ReturnType<typeof openHeldDir>>, keep: Awaited<ReturnType<typeof openHeldDir>> }) => void): Promise<void> {
  const { dir, cleanup } = tempDir('dm-intact-')
  try {
    fs.mkdirSync(path.join(dir, 'files/ns'), { recursive: true })
    fs.mkdirSync(path.join(dir, 'keep/ns'), { recursive: true })
    const files = await openHeldDir(path.join(dir, 'files'))
    const keep = await openHeldDir(path.join(dir, 'keep'))
    try {
      fn({ dir, files, keep })
    } finally {
      await files.close()
      await keep.close()
    }
    assert.deepEqual(fdsUnder(dir), [], 'descriptors left open')
  } finally {
    cleanup()
  }
}

/** files/<name> with `content`, and keep/<name> a hard link to it. */
function place (dir: string, name: string, content: string): void {
  fs.writeFileSync(path.join(dir, 'files', name), content)
  fs.linkSync(path.join(dir, 'files', name), path.join(dir, 'keep', name))
}

test('intactSync: a regular file with the signed size and hash, linked from keep/, is intact; its fingerprint is its stat', async () => {
  await withDirs(({ dir, files, keep }) => {
    for (const name of ['flat', 'ns/nested']) {
      place(dir, name, 'hello')
      assert.equal(intactSync(files, keep, name, 5, sha('hello')), statFingerprint(fs.lstatSync(path.join(dir, 'files', name))), name)
    }
  })
})

test('intactSync: other bytes of the same size, another size, no keep/ link or another inode there, a symlink anywhere: not intact', async () => {
  await withDirs(({ dir, files, keep }) => {
    place(dir, 'edited', 'hellO')
    assert.equal(intactSync(files, keep, 'edited', 5, sha('hello')), undefined, 'same size, other bytes')
    place(dir, 'longer', 'hello!')
    assert.equal(intactSync(files, keep, 'longer', 5, sha('hello')), undefined, 'another size')
    fs.writeFileSync(path.join(dir, 'files/unkept'), 'hello')
    assert.equal(intactSync(files, keep, 'unkept', 5, sha('hello')), undefined, 'no keep/ link')
    fs.writeFileSync(path.join(dir, 'files/copied'), 'hello')
    fs.writeFileSync(path.join(dir, 'keep/copied'), 'hello')
    assert.equal(intactSync(files, keep, 'copied', 5, sha('hello')), undefined, 'keep/ is a copy, not the same inode')
    assert.equal(intactSync(files, keep, 'missing', 5, sha('hello')), undefined, 'missing')

    // A link to an intact file outside files/, at the name or as a directory on the way.
    const outside = path.join(dir, 'outside')
    fs.mkdirSync(outside)
    fs.writeFileSync(path.join(outside, 'x'), 'hello')
    fs.symlinkSync(path.join(outside, 'x'), path.join(dir, 'files/linked'))
    fs.linkSync(path.join(outside, 'x'), path.join(dir, 'keep/linked'))
    assert.equal(intactSync(files, keep, 'linked', 5, sha('hello')), undefined, 'a symlink at the name')
    fs.symlinkSync(outside, path.join(dir, 'files/via'))
    fs.mkdirSync(path.join(dir, 'keep/via'))
    fs.linkSync(path.join(outside, 'x'), path.join(dir, 'keep/via/x'))
    assert.equal(intactSync(files, keep, 'via/x', 5, sha('hello')), undefined, 'a symlinked directory on the way')
  })
})

test('readRegularSync: the bytes of a regular file; nothing for a symlink, a directory or a FIFO', async () => {
  const { dir, cleanup } = tempDir('dm-intact-')
  try {
    const held = await openHeldDir(dir)
    try {
      fs.writeFileSync(path.join(dir, 'plain'), 'env')
      fs.symlinkSync(path.join(dir, 'plain'), path.join(dir, 'link'))
      fs.mkdirSync(path.join(dir, 'dir'))
      execFileSync('mkfifo', [path.join(dir, 'fifo')])
      assert.equal(readRegularSync(held, 'plain')?.toString(), 'env')
      for (const entry of ['link', 'dir', 'fifo', 'missing']) assert.equal(readRegularSync(held, entry), undefined, entry)
    } finally {
      await held.close()
    }
  } finally {
    cleanup()
  }
})

test('at reopen a lost keep/ link is made again without a report, and content edited in place is still caught and reported', async () => {
  const { dir, cleanup } = tempDir('dm-intact-')
  const key = testKey(41)
  const v = (name: string, content: string): ReturnType<typeof newVersion> =>
    newVersion({ name, networkId: networkIdFrom('intact'), privateKey: key.privateKey, signer: key.publicKey, content: Buffer.from(content), timestampMs: 1000 })
  try {
    const problems: string[] = []
    let store = await openStore(dir, { problem: m => problems.push(m) })
    for (const name of ['a', 'b', 'ns/c']) await store.commit(v(name, `content of ${name}`), Buffer.from(`content of ${name}`))
    await store.close()

    fs.unlinkSync(path.join(dir, 'keep/b'))
    fs.writeFileSync(path.join(dir, 'files/ns/c'), 'content of ns/X') // same size, edited in place (keep/ is the same inode)
    store = await openStore(dir, { problem: m => problems.push(m) })
    assert.equal(store.get('a')?.present, true)
    assert.equal(store.get('b')?.present, true)
    assert.equal(fs.statSync(path.join(dir, 'keep/b')).ino, fs.statSync(path.join(dir, 'files/b')).ino, 'keep/ link made again')
    assert.equal(store.get('ns/c')?.present, false, 'edited content not taken as intact')
    assert.equal(fs.existsSync(path.join(dir, 'files/ns/c')), false, 'edited content left under the name')
    assert.equal(problems.length, 1, problems.join('\n'))
    await store.close()
  } finally {
    cleanup()
  }
})

test('a commit replaces a leftover staged file of the same version instead of failing', async () => {
  const { dir, cleanup } = tempDir('dm-intact-')
  const key = testKey(42)
  try {
    const store = await openStore(dir)
    const version = newVersion({ name: 'n', networkId: networkIdFrom('intact'), privateKey: key.privateKey, signer: key.publicKey, content: Buffer.from('right'), timestampMs: 1000 })
    // An earlier attempt at this very version, cut short after staging its content.
    fs.writeFileSync(path.join(dir, 'staging', `${hex(versionId(version))}.content`), 'wro')
    assert.deepEqual(await store.commit(version, Buffer.from('right')), { committed: true })
    assert.equal(fs.readFileSync(path.join(dir, 'files/n'), 'utf8'), 'right')
    assert.deepEqual(fs.readdirSync(path.join(dir, 'staging')), [])
    await store.close()
  } finally {
    cleanup()
  }
})
