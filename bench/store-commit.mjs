#!/usr/bin/env node
// The store's commit path alone, in process, without the network: N versions
// of SIZE bytes committed into a fresh state directory, C at a time (as a
// catch-up's fetch does), through src/store (openStore, commit). Baseline in
// the same run: the bare file operations such a commit makes (two files
// created, written, fsynced and closed, a link, three renames, one fsync of
// the target directory per C versions), through fs callbacks with no checks.
// Prints wall time, CPU time (user, system) and the main thread's busy time.
//
//   node bench/store-commit.mjs [--versions 1000] [--concurrency 64] [--size 1024] [--runs 5] [--dir DIR]
// --dir: where the temporary state directories go (default: the OS temp dir).
// Creating a file is the expensive step on some filesystems (ext4 without a
// journal skips inodes freed in the last minutes, so churn in the same block
// group makes every create scan): compare the two rows, not runs of days apart.
import crypto from 'node:crypto'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { performance } from 'node:perf_hooks'
import { promisify } from 'node:util'
import { loadLine, machineLine, median, ms, parseArgs, printTable, ratio } from './lib.mjs'

const opts = parseArgs({ versions: 1000, concurrency: 64, size: 1024, runs: 5, dir: '' })
const { tsImport } = await import('tsx/esm/api')
const { openStore } = await tsImport('../src/store/store.ts', import.meta.url)
const { newVersion, networkIdFrom, encodeEnvelope } = await tsImport('../src/format/version.ts', import.meta.url)
const { rawPublicKey } = await tsImport('../src/crypto/keys.ts', import.meta.url)
const { privateKey, publicKey } = crypto.generateKeyPairSync('ed25519')
const signer = rawPublicKey(publicKey)
const networkId = networkIdFrom('bench-store-commit')

console.log(`store commit: ${opts.versions} versions of ${opts.size} B, ${opts.concurrency} at once, ${opts.runs} runs of each`)
console.log(machineLine())
console.log(await loadLine())

/** Runs `one(i)` for every version, `concurrency` at once; returns wall, CPU and main-thread busy time. */
async function measure (one) {
  const elu0 = performance.eventLoopUtilization()
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  let next = 0
  const worker = async () => { while (next < opts.versions) await one(next++) }
  await Promise.all(Array.from({ length: opts.concurrency }, worker))
  const wall = performance.now() - t0
  const cpu = process.cpuUsage(cpu0)
  return { wall, user: cpu.user / 1000, sys: cpu.system / 1000, busy: performance.eventLoopUtilization(elu0).active }
}

/** The store, as a fetch drives it. */
async function storeRun (dir, versions) {
  const store = await openStore(dir, { problem: m => console.error(m) })
  try {
    return await measure(async i => {
      const { version, content } = versions[i]
      if (!(await store.commit(version, content)).committed) throw new Error(`${version.name}: not committed`)
    })
  } finally {
    await store.flush()
    await store.close()
  }
}

const open = promisify(fs.open)
const write = promisify(fs.write)
const fsync = promisify(fs.fsync)
const close = promisify(fs.close)
const link = promisify(fs.link)
const rename = promisify(fs.rename)

/** The same file operations, bare: the floor any commit of this design pays. */
async function bareRun (dir, versions) {
  for (const d of ['staging', 'files', 'keep', 'versions']) fs.mkdirSync(path.join(dir, d))
  const writeNew = async (file, data) => {
    const fd = await open(file, 'wx', 0o640)
    await write(fd, data, 0, data.length, null)
    await fsync(fd)
    await close(fd)
  }
  const dirFd = fs.openSync(path.join(dir, 'files'), 'r')
  try {
    return await measure(async i => {
      const { version, content } = versions[i]
      const staged = path.join(dir, 'staging', `${i}.content`)
      await Promise.all([writeNew(staged, content), writeNew(path.join(dir, 'staging', `${i}.sig`), encodeEnvelope(version))])
      await link(staged, path.join(dir, 'staging', `${i}.keep`))
      await rename(path.join(dir, 'staging', `${i}.sig`), path.join(dir, 'versions', `${version.name}.sig`))
      await rename(path.join(dir, 'staging', `${i}.keep`), path.join(dir, 'keep', version.name))
      await rename(staged, path.join(dir, 'files', version.name))
      if (i % opts.concurrency === opts.concurrency - 1) await fsync(dirFd)
    })
  } finally {
    fs.closeSync(dirFd)
  }
}

const results = { store: [], bare: [] }
for (let r = 0; r < opts.runs; r++) {
  // Alternated, each in a fresh directory, so both see the same machine and filesystem.
  for (const [label, run] of [['store', storeRun], ['bare', bareRun]]) {
    const dir = fs.mkdtempSync(path.join(opts.dir === '' ? os.tmpdir() : opts.dir, 'dm-bench-commit-'))
    try {
      const t = Date.now()
      const versions = Array.from({ length: opts.versions }, (_, i) => {
        const content = crypto.randomBytes(opts.size)
        return { version: newVersion({ name: `file-${String(i).padStart(4, '0')}`, content, networkId, privateKey, signer, timestampMs: t }), content }
      })
      const x = await run(dir, versions)
      results[label].push(x)
      console.log(`run ${r + 1} ${label}: ${ms(x.wall)} wall, ${ms(x.user)} user, ${ms(x.sys)} system, main thread busy ${ms(x.busy)}`)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
}

const col = (label, k) => median(results[label].map(x => x[k]))
printTable([
  ['measure', 'store (median)', 'bare file ops (median)', 'ratio'],
  ...[['wall time', 'wall'], ['user CPU', 'user'], ['system CPU', 'sys'], ['main thread busy', 'busy']]
    .map(([what, k]) => [what, ms(col('store', k)), ms(col('bare', k)), ratio(col('store', k), col('bare', k))])
], `results: ${opts.versions} commits, ${opts.concurrency} at once, ${opts.runs} runs each`)
console.log(`\nper version: store ${(col('store', 'wall') / opts.versions * 1000).toFixed(0)} µs, bare ${(col('bare', 'wall') / opts.versions * 1000).toFixed(0)} µs`)
