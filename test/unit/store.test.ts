import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { openStore, type Store } from '../../src/store/store.js'
import { FILE_MODE } from '../../src/store/durable.js'
import { VersionKind, encodeEnvelope, hex, networkIdFrom, newVersion, versionId, type SignedVersion } from '../../src/format/version.js'
import { dmError, fdsUnder, tempDir, testKey } from './helpers.js'

const NET = networkIdFrom('store-net')
const key = testKey(31)
const other = testKey(32)

function version (name: string, content: string | undefined, timestampMs: number, signer = key): SignedVersion {
  return newVersion({
    name, networkId: NET, privateKey: signer.privateKey, signer: signer.publicKey,
    content: content === undefined ? undefined : Buffer.from(content), timestampMs
  })
}

/** A temporary state dir and a store on it, collecting reported problems. Every store opened is closed after, and must then hold no descriptor under dir. */
async function withStore (fn: (ctx: { dir: string, store: Store, problems: string[], reopen: () => Promise<Store> }) => Promise<void>): Promise<void> {
  const { dir, cleanup } = tempDir('dm-store-')
  const problems: string[] = []
  const opened: Store[] = []
  const open = async (): Promise<Store> => {
    const s = await openStore(dir, { problem: m => problems.push(m) })
    opened.push(s)
    return s
  }
  try {
    await fn({ dir, store: await open(), problems, reopen: open })
    for (const s of opened) { await s.flush(); await s.close() }
    assert.deepEqual(fdsUnder(dir), [], 'descriptors left open under the state dir once every store is closed')
  } finally {
    cleanup()
  }
}

const read = (dir: string, rel: string): string => fs.readFileSync(path.join(dir, rel), 'utf8')
const staging = (dir: string): string[] => fs.readdirSync(path.join(dir, 'staging'))
/** The contents of what was moved aside, oldest first. */
const quarantined = (dir: string): string[] => fs.readdirSync(path.join(dir, 'quarantine')).sort().map(f => read(dir, `quarantine/${f}`))

test('openStore creates the layout', async () => {
  await withStore(async ({ dir, store }) => {
    for (const d of ['files', 'versions', 'staging']) assert.ok(fs.statSync(path.join(dir, d)).isDirectory(), d)
    assert.equal(store.filesDir, path.join(dir, 'files'))
    assert.equal(store.size(), 0)
  })
})

test('commit writes content and envelope; reopening restores the same index', async () => {
  await withStore(async ({ dir, store, problems, reopen }) => {
    const a = version('dns/cnames', 'hello mesh\n', 1000)
    const b = version('hosts', 'x', 2000)
    assert.deepEqual(await store.commit(a, Buffer.from('hello mesh\n')), { committed: true })
    assert.deepEqual(await store.commit(b, Buffer.from('x')), { committed: true })

    assert.equal(read(dir, 'files/dns/cnames'), 'hello mesh\n')
    assert.ok(fs.readFileSync(path.join(dir, 'versions/dns/cnames.sig')).equals(encodeEnvelope(a)))
    assert.equal(fs.statSync(path.join(dir, 'files/dns/cnames')).mode & 0o777, FILE_MODE & ~process.umask())
    assert.deepEqual(staging(dir), [])

    const entry = store.get('dns/cnames')
    assert.ok(entry !== undefined)
    assert.equal(hex(entry.id), hex(versionId(a)))
    assert.equal(entry.timestampMs, 1000)
    assert.equal(entry.present, true)
    assert.equal((await store.readContent('dns/cnames'))?.toString(), 'hello mesh\n')

    const again = await reopen()
    assert.equal(again.size(), 2)
    const summary = (s: Store): string[] => [...s.entries()].map(e => `${e.version.name} ${hex(e.id)} ${e.timestampMs} ${String(e.present)} ${e.envelope.toString('hex')}`).sort()
    assert.deepEqual(summary(again), summary(store))
    assert.deepEqual(again.get('hosts')?.version, b)
    assert.equal((await again.readContent('hosts'))?.toString(), 'x')
    assert.deepEqual(problems, [])
  })
})

test('compare-and-set: an older or equal version is not committed and changes nothing', async () => {
  await withStore(async ({ dir, store }) => {
    const newer = version('f', 'new', 2000)
    const older = version('f', 'old', 1000)
    assert.equal((await store.commit(newer, Buffer.from('new'))).committed, true)
    const sigBefore = fs.readFileSync(path.join(dir, 'versions/f.sig'))
    const statBefore = fs.statSync(path.join(dir, 'files/f'))

    assert.equal((await store.commit(older, Buffer.from('old'))).committed, false)
    assert.equal((await store.commit(newer, Buffer.from('new'))).committed, false, 'the same version, present, is not rewritten')
    assert.equal(read(dir, 'files/f'), 'new')
    assert.equal(fs.statSync(path.join(dir, 'files/f')).ino, statBefore.ino, 'the file was replaced')
    assert.ok(fs.readFileSync(path.join(dir, 'versions/f.sig')).equals(sigBefore))
    assert.equal(hex(store.get('f')!.id), hex(versionId(newer)))
    assert.deepEqual(staging(dir), [])
  })
})

test('the tie-break applies in the store too: equal timestamps, larger id wins', async () => {
  await withStore(async ({ dir, store }) => {
    const a = version('t', 'one', 5000)
    const b = version('t', 'two', 5000, other)
    const [small, big] = Buffer.compare(versionId(a), versionId(b)) < 0 ? [a, b] : [b, a]
    const content = (v: SignedVersion): string => v === a ? 'one' : 'two'
    assert.equal((await store.commit(big, Buffer.from(content(big)))).committed, true)
    assert.equal((await store.commit(small, Buffer.from(content(small)))).committed, false)
    assert.equal(read(dir, 'files/t'), content(big))
  })
})

test('a tombstone removes the file but keeps the entry, across a reopen', async () => {
  await withStore(async ({ dir, store, reopen }) => {
    await store.commit(version('d/x', 'data', 1000), Buffer.from('data'))
    const tomb = version('d/x', undefined, 2000)
    assert.equal(tomb.kind, VersionKind.Tombstone)
    assert.equal((await store.commit(tomb, new Uint8Array(0))).committed, true)
    assert.equal(fs.existsSync(path.join(dir, 'files/d/x')), false)
    assert.ok(fs.readFileSync(path.join(dir, 'versions/d/x.sig')).equals(encodeEnvelope(tomb)))
    const e = store.get('d/x')
    assert.equal(e?.version.kind, VersionKind.Tombstone)
    assert.equal(e?.present, true)
    assert.equal(await store.readContent('d/x'), undefined)

    // An older file version cannot resurrect it.
    assert.equal((await store.commit(version('d/x', 'zombie', 1500), Buffer.from('zombie'))).committed, false)
    assert.equal(fs.existsSync(path.join(dir, 'files/d/x')), false)

    const again = await reopen()
    assert.equal(again.get('d/x')?.version.kind, VersionKind.Tombstone)
    assert.equal(hex(again.get('d/x')!.id), hex(versionId(tomb)))
    // A newer file version replaces the tombstone.
    assert.equal((await again.commit(version('d/x', 'back', 3000), Buffer.from('back'))).committed, true)
    assert.equal(read(dir, 'files/d/x'), 'back')
  })
})

test('a tombstone reopened over a file left on disk removes the file', async () => {
  await withStore(async ({ dir, store, reopen }) => {
    await store.commit(version('z', 'data', 1000), Buffer.from('data'))
    await store.commit(version('z', undefined, 2000), new Uint8Array(0))
    fs.writeFileSync(path.join(dir, 'files/z'), 'stray')
    await reopen()
    assert.equal(fs.existsSync(path.join(dir, 'files/z')), false)
  })
})

test('nested names create subdirectories under files/ and versions/', async () => {
  await withStore(async ({ dir, store }) => {
    await store.commit(version('a/b/c/d', 'deep', 1), Buffer.from('deep'))
    assert.ok(fs.statSync(path.join(dir, 'files/a/b/c')).isDirectory())
    assert.equal(read(dir, 'files/a/b/c/d'), 'deep')
    assert.ok(fs.statSync(path.join(dir, 'versions/a/b/c/d.sig')).isFile())
  })
})

test('a file tampered with on disk is reported and marked not present; the same version can restore it', async () => {
  await withStore(async ({ dir, store, problems, reopen }) => {
    const v = version('conf', 'original', 1000)
    await store.commit(v, Buffer.from('original'))
    fs.writeFileSync(path.join(dir, 'files/conf'), 'tampered')

    // Noticed by a read on the running store. Edited in place, the local copy
    // (the same inode) is spoilt too: the content is moved aside, not left under the name.
    assert.equal(await store.readContent('conf'), undefined)
    assert.equal(store.get('conf')?.present, false)
    assert.equal(problems.length, 1)
    assert.equal(fs.existsSync(path.join(dir, 'files/conf')), false, 'unverified content left in files/')
    assert.deepEqual(quarantined(dir), ['tampered'])

    // A reopen still knows the version, and that its content is missing.
    problems.length = 0
    const again = await reopen()
    assert.equal(again.get('conf')?.present, false)
    assert.equal(hex(again.get('conf')!.id), hex(versionId(v)), 'the entry (its version) is kept')
    assert.equal(problems.length, 1)

    // Committing the same version again repairs it.
    assert.equal((await again.commit(v, Buffer.from('original'))).committed, true)
    assert.equal(read(dir, 'files/conf'), 'original')
    assert.equal(again.get('conf')?.present, true)
  })
})

test('a deleted file is restored from the local copy at reopen; with the copy gone too, it is not present', async () => {
  await withStore(async ({ dir, store, problems, reopen }) => {
    await store.commit(version('gone', 'g', 1), Buffer.from('g'))
    fs.rmSync(path.join(dir, 'files/gone'))
    const again = await reopen()
    assert.equal(again.get('gone')?.present, true)
    assert.equal(read(dir, 'files/gone'), 'g')
    assert.equal(problems.length, 1)

    fs.rmSync(path.join(dir, 'files/gone'))
    fs.rmSync(path.join(dir, 'keep/gone'))
    problems.length = 0
    const third = await reopen()
    assert.equal(third.get('gone')?.present, false)
    assert.equal(problems.length, 1)
  })
})

test('roll-forward: a crash between the two renames is finished at open', async () => {
  await withStore(async ({ dir, store, problems, reopen }) => {
    const v1 = version('a/b', 'one', 1000)
    await store.commit(v1, Buffer.from('one'))
    const v2 = version('a/b', 'two', 2000)
    // The state after "rename the envelope into versions/" and before "rename the content into files/".
    fs.writeFileSync(path.join(dir, 'versions/a/b.sig'), encodeEnvelope(v2))
    fs.writeFileSync(path.join(dir, 'staging', `${hex(versionId(v2))}.content`), 'two')

    const again = await reopen()
    assert.equal(read(dir, 'files/a/b'), 'two')
    const e = again.get('a/b')
    assert.equal(hex(e!.id), hex(versionId(v2)))
    assert.equal(e?.present, true)
    assert.deepEqual(staging(dir), [])
    assert.deepEqual(problems, [])
  })
})

test('roll-forward refuses staged content that does not match the envelope', async () => {
  await withStore(async ({ dir, store, problems, reopen }) => {
    await store.commit(version('a/b', 'one', 1000), Buffer.from('one'))
    const v2 = version('a/b', 'two', 2000)
    fs.writeFileSync(path.join(dir, 'versions/a/b.sig'), encodeEnvelope(v2))
    fs.writeFileSync(path.join(dir, 'staging', `${hex(versionId(v2))}.content`), 'evil')

    const again = await reopen()
    // Neither the staged 'evil' nor the old 'one' matches the envelope: nothing stays under the name.
    assert.equal(fs.existsSync(path.join(dir, 'files/a/b')), false, 'unverified content left in files/')
    assert.deepEqual(quarantined(dir), ['one'])
    assert.equal(again.get('a/b')?.present, false)
    assert.equal(problems.length, 1)
    assert.deepEqual(staging(dir), [])
  })
})

test('leftover staging files and directories are removed at open', async () => {
  await withStore(async ({ dir, store, reopen }) => {
    await store.commit(version('keep', 'k', 1), Buffer.from('k'))
    fs.writeFileSync(path.join(dir, 'staging', 'deadbeef.content'), 'x')
    fs.writeFileSync(path.join(dir, 'staging', 'deadbeef.0123.sig'), 'y')
    fs.mkdirSync(path.join(dir, 'staging', 'junk', 'deeper'), { recursive: true })
    fs.writeFileSync(path.join(dir, 'staging', 'junk', 'deeper', 'f'), 'z')
    await reopen()
    assert.deepEqual(staging(dir), [])
    assert.equal(read(dir, 'files/keep'), 'k')
  })
})

test('unreadable or misplaced envelopes are reported and ignored', async () => {
  await withStore(async ({ dir, store, problems, reopen }) => {
    await store.commit(version('good', 'g', 1), Buffer.from('g'))
    fs.writeFileSync(path.join(dir, 'versions/garbage.sig'), 'not an envelope')
    const misplaced = version('elsewhere', 'e', 1)
    fs.writeFileSync(path.join(dir, 'versions/here.sig'), encodeEnvelope(misplaced))
    fs.writeFileSync(path.join(dir, 'versions/notes.txt'), 'ignored: not .sig')
    const again = await reopen()
    assert.deepEqual([...again.entries()].map(e => e.version.name), ['good'])
    assert.equal(problems.length, 2, problems.join('\n'))
    assert.ok(problems.some(p => /garbage\.sig/.test(p)))
    assert.ok(problems.some(p => /here\.sig: it is for "elsewhere"/.test(p)))
  })
})

test('concurrent commits for one name end with the newest on disk and in the index', async () => {
  await withStore(async ({ dir, store, reopen }) => {
    const vs = [1000, 3000, 2000, 5000, 4000].map(t => version('race', `v${t}`, t))
    const results = await Promise.all(vs.map(async v => await store.commit(v, Buffer.from(`v${v.timestampMs}`))))
    // Content is staged concurrently, so which older ones commit depends on which staging ends first;
    // the newest always commits, and nothing older replaces it.
    assert.equal(results[3].committed, true, 'the newest version commits')
    assert.equal(read(dir, 'files/race'), 'v5000')
    assert.equal(store.get('race')?.timestampMs, 5000)
    assert.deepEqual(staging(dir), [])
    const again = await reopen()
    assert.equal(again.get('race')?.timestampMs, 5000)

    // Newer first, then older, concurrently: the older is refused.
    const [n, o] = await Promise.all([
      again.commit(version('race2', 'new', 2), Buffer.from('new')),
      again.commit(version('race2', 'old', 1), Buffer.from('old'))
    ])
    // Whichever staged first takes the lock first: the older may commit before the newer replaces it,
    // but the newer always commits and the older never replaces it.
    assert.equal(n.committed, true)
    assert.equal(read(dir, 'files/race2'), 'new')
    assert.equal(again.get('race2')?.timestampMs, 2)
  })
})

test('concurrent commits for different names all land', async () => {
  await withStore(async ({ dir, store }) => {
    const names = Array.from({ length: 20 }, (_, i) => `n/${i}`)
    await Promise.all(names.map(async (n, i) => await store.commit(version(n, `c${i}`, i + 1), Buffer.from(`c${i}`))))
    assert.equal(store.size(), 20)
    for (const [i, n] of names.entries()) assert.equal(read(dir, `files/${n}`), `c${i}`)
  })
})

test('a name whose path an older layout left as a file or directory is refused once, with nothing committed (ERR_NAME_COLLISION)', async () => {
  await withStore(async ({ dir, store, problems, reopen }) => {
    // The old allowlist had "x" (a file), the new one "x/y"; and the other way round.
    await store.commit(version('x', 'old x', 1000), Buffer.from('old x'))
    await store.commit(version('p/q', 'old p/q', 1000), Buffer.from('old p/q'))
    const xy = version('x/y', 'two', 2000)
    const p = version('p', 'p file', 2000)
    for (let round = 0; round < 3; round++) {
      await assert.rejects(store.commit(xy, Buffer.from('two')), dmError('ERR_NAME_COLLISION'))
      await assert.rejects(store.commit(p, Buffer.from('p file')), dmError('ERR_NAME_COLLISION'))
    }
    assert.equal(problems.length, 2, 'each collision is reported once, not at every retry')
    // No half-commit: no envelope without its content, nothing staged, old state intact.
    assert.equal(store.get('x/y'), undefined)
    assert.equal(store.get('p'), undefined)
    assert.equal(fs.existsSync(path.join(dir, 'versions/x/y.sig')), false)
    assert.equal(fs.existsSync(path.join(dir, 'versions/p.sig')), false)
    assert.deepEqual(staging(dir), [])
    assert.equal(read(dir, 'files/x'), 'old x')
    assert.equal(read(dir, 'files/p/q'), 'old p/q')
    const again = await reopen()
    assert.equal(again.get('x/y'), undefined)
    assert.equal(again.get('x')?.present, true)

    // The documented way out: remove the old name's envelope and content (daemon stopped), then it commits.
    for (const f of ['versions/x.sig', 'files/x', 'keep/x']) fs.rmSync(path.join(dir, f))
    const fixed = await reopen()
    assert.equal((await fixed.commit(xy, Buffer.from('two'))).committed, true)
    assert.equal(read(dir, 'files/x/y'), 'two')
  })
})

test('an I/O failure while staging throws ERR_STORE_IO and leaves the previous version intact', async () => {
  await withStore(async ({ dir, store, reopen }) => {
    const v1 = version('x/y', 'one', 1000)
    await store.commit(v1, Buffer.from('one'))
    const sigBefore = fs.readFileSync(path.join(dir, 'versions/x/y.sig'))
    const v2 = version('x/y', 'two', 2000)
    // A directory where the staged content goes: the exclusive create fails with EEXIST.
    fs.mkdirSync(path.join(dir, 'staging', `${hex(versionId(v2))}.content`))
    await assert.rejects(store.commit(v2, Buffer.from('two')), dmError('ERR_STORE_IO', /cannot store "x\/y"/))
    assert.equal(hex(store.get('x/y')!.id), hex(versionId(v1)), 'the index moved to the failed version')
    assert.ok(fs.readFileSync(path.join(dir, 'versions/x/y.sig')).equals(sigBefore), 'the envelope was replaced')
    assert.equal(read(dir, 'files/x/y'), 'one')

    // The lock for the name is released: once the obstacle is gone, the commit succeeds.
    fs.rmdirSync(path.join(dir, 'staging', `${hex(versionId(v2))}.content`))
    assert.equal((await store.commit(v2, Buffer.from('two'))).committed, true)
    assert.equal(read(dir, 'files/x/y'), 'two')
    assert.equal(hex((await reopen()).get('x/y')!.id), hex(versionId(v2)))
  })
})

test('a failure while cleaning up is still reported as ERR_STORE_IO', async () => {
  await withStore(async ({ dir, store }) => {
    const v = version('q', 'data', 1)
    // A directory where the staged content goes: both the write and the clean-up fail.
    fs.mkdirSync(path.join(dir, 'staging', `${hex(versionId(v))}.content`, 'sub'), { recursive: true })
    await assert.rejects(store.commit(v, Buffer.from('data')), dmError('ERR_STORE_IO'))
    assert.equal(store.get('q'), undefined)
  })
})

test('a name that would leave the files directory is refused before anything is written', async () => {
  await withStore(async ({ dir, store }) => {
    const v = { ...version('ok', 'x', 1), name: '../escape' }
    await assert.rejects(store.commit(v, Buffer.from('x')), dmError('ERR_NAME_INVALID'))
    assert.equal(fs.existsSync(path.join(dir, 'escape')), false)
    assert.equal(fs.existsSync(path.join(dir, 'files', '..', 'escape')), false)
    assert.equal(store.size(), 0)
  })
})

test('openContent streams the held content in chunks; a file changed on disk fails the read at its end and is repaired', async () => {
  await withStore(async ({ dir, store }) => {
    const content = 'abcdefghij'.repeat(1000)
    const v = version('big.txt', content, 1000)
    await store.commit(v, Buffer.from(content))
    const chunks: Buffer[] = []
    for await (const c of await store.openContent('big.txt', 4096) ?? []) chunks.push(Buffer.from(c))
    assert.deepEqual(chunks.map(c => c.length), [4096, 4096, 1808])
    assert.equal(Buffer.concat(chunks).toString(), content)

    // Same size, different bytes: every chunk reads, then the hash check at the end throws.
    fs.writeFileSync(path.join(dir, 'files', 'big.txt'), 'X'.repeat(content.length))
    const changed = await store.openContent('big.txt', 4096)
    await assert.rejects(async () => { for await (const _ of changed ?? []) { /* drain */ } }, dmError('ERR_CONTENT_MISMATCH'))
    assert.equal(await store.openContent('nothing-held', 4096), undefined)
  })
})

test('content opened but never read holds no descriptor (a fetch stream reset before the first chunk)', async () => {
  // withStore fails the test if any descriptor under the state dir outlives the store.
  await withStore(async ({ store }) => {
    await store.commit(version('served', 'some bytes', 1000), Buffer.from('some bytes'))
    for (let i = 0; i < 20; i++) assert.ok(await store.openContent('served', 4096) !== undefined)
  })
})

test('a collision refused while the other directories open concurrently leaves none of them open', async () => {
  await withStore(async ({ store }) => {
    await store.commit(version('x', 'old x', 1000), Buffer.from('old x'))
    await store.commit(version('d/e/f', 'deep', 1000), Buffer.from('deep'))
    // files/x is a file, so files/x/... is refused; keep/ and versions/ open (and create) deeper paths meanwhile.
    for (let i = 0; i < 20; i++) {
      await assert.rejects(store.commit(version(`x/a${i}/b/c`, 'n', 2000), Buffer.from('n')), dmError('ERR_NAME_COLLISION'))
    }
  })
})
