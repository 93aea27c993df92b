import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { ROOT } from '../helpers/cluster.ts'
import { apiRequest } from '../../src/api/client.ts'
import { waitFor } from '../helpers/wait.ts'

/*
 * The package as a user gets it: `npm pack` of the working tree (dist/ is
 * built by `npm test` before the tests run), installed globally into a
 * temporary prefix from the npm cache, then used only through its own
 * bin/dm, with its own node_modules, never this checkout's.
 */

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-pkg-'))
const prefix = path.join(tmp, 'prefix')
const dm = path.join(prefix, 'bin', 'dm')
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { name: string, version: string, files: string[], bin: Record<string, string> }
const daemons: ChildProcess[] = []

interface Run { code: number, stdout: string, stderr: string, ms: number }

async function run (cmd: string, args: string[], opts: { cwd?: string, timeoutMs?: number, env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  const started = process.hrtime.bigint()
  return await new Promise(resolve => {
    execFile(cmd, args, { cwd: opts.cwd, timeout: opts.timeoutMs ?? 60_000, maxBuffer: 16 * 1024 * 1024, env: opts.env ?? process.env }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1
      resolve({ code, stdout, stderr, ms: Number(process.hrtime.bigint() - started) / 1e6 })
    })
  })
}

let tarball = ''
let packed: string[] = []
let installStderr = ''

before(async () => {
  assert.ok(fs.existsSync(path.join(ROOT, 'dist/full/dm.js')), 'dist/ is missing: run `npm run build` (npm test builds it first)')
})

after(() => {
  for (const d of daemons) if (d.exitCode === null && d.signalCode === null) d.kill('SIGKILL')
  fs.rmSync(tmp, { recursive: true, force: true })
})

test('npm pack ships bin/, every module the CLI imports, the config example, units and docs, and no sources', async () => {
  // --ignore-scripts: `prepare` would rebuild dist/ from whatever src/ holds right now; the test packs what npm test built.
  const r = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: ROOT })
  assert.equal(r.code, 0, r.stderr)
  const [info] = JSON.parse(r.stdout) as Array<{ filename: string, files: Array<{ path: string }> }>
  tarball = path.join(tmp, info.filename)
  assert.ok(fs.existsSync(tarball))
  packed = info.files.map(f => f.path)

  for (const bin of Object.values(pkg.bin)) assert.ok(packed.includes(bin), `bin ${bin} is packed`)
  // Every module the CLI can load (static and dynamic relative imports from bin/, followed
  // through the compiled output) must be in the package, or the installed dm breaks on import.
  const missing: string[] = []
  const seen = new Set<string>()
  const follow = (file: string, from: string): void => {
    if (seen.has(file)) return
    seen.add(file)
    if (!packed.includes(file)) { missing.push(`${file} (imported by ${from})`); return }
    const text = fs.readFileSync(path.join(ROOT, file), 'utf8')
    const specs = [...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}\/[^'"]+)['"]/g)].map(m => m[1])
    // bin/dm compiles its bundles itself: join(__dirname, '../dist/x/y') names y.js and its code cache y.cache.
    for (const m of text.matchAll(/\bjoin\(__dirname, ['"](\.{1,2}\/[^'"]+)['"]\)/g)) specs.push(`${m[1]}.js`, `${m[1]}.cache`)
    for (const spec of specs) follow(path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)), file)
  }
  for (const bin of Object.values(pkg.bin)) follow(path.posix.normalize(bin), 'package.json "bin"')
  assert.deepEqual(missing, [], 'modules the CLI imports are missing from the package (is dist/ stale? run npm run build)')
  // The daemon is loaded lazily (a dynamic import); its code must be among what was followed.
  assert.ok([...seen].some(f => fs.readFileSync(path.join(ROOT, f), 'utf8').includes('daemon ready')), `the daemon's code is reachable from bin/ (followed: ${[...seen].join(', ')})`)
  for (const f of ['package.json', 'README.md', 'LICENSE', 'config.example.toml', 'contrib/systemd/data-mesher.service', 'contrib/systemd/data-mesher.sysusers.conf', 'docs/PROTOCOL.md']) {
    assert.ok(packed.includes(f), `${f} is packed`)
  }
  const unwanted = packed.filter(f => /^(src|test|bench|scripts|node_modules|\.ci)\//.test(f) || f.endsWith('.ts') || f.endsWith('.tgz'))
  assert.deepEqual(unwanted, [])
})

test('the packed bin/dm needs no node_modules: the bundle is self-contained', async () => {
  assert.ok(tarball !== '', 'npm pack ran')
  const dir = path.join(tmp, 'unpacked')
  fs.mkdirSync(dir)
  const x = await run('tar', ['xzf', tarball, '-C', dir])
  assert.equal(x.code, 0, x.stderr)
  const bin = path.join(dir, 'package', 'bin', 'dm')
  assert.equal(fs.existsSync(path.join(dir, 'package', 'node_modules')), false)
  const config = path.join(dir, 'dm.toml')
  fs.writeFileSync(config, 'state_dir = "state"\n[network]\nlisten = ["/ip4/127.0.0.1/tcp/0"]\n[api]\nsocket = "api.sock"\n')
  // dm id loads the libp2p side of the bundle; dm daemon all of it.
  const id = await run(process.execPath, [bin, 'id', '--config', config, '--json'])
  assert.equal(id.code, 0, id.stderr)
  const p = spawn(process.execPath, [bin, 'daemon', '--config', config], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
  daemons.push(p)
  let log = ''
  p.stdout.on('data', (d: Buffer) => { log += d.toString() })
  p.stderr.on('data', (d: Buffer) => { log += d.toString() })
  const ready = await waitFor('unpacked daemon ready', async () => p.exitCode !== null ? 'exited' : await answers(path.join(dir, 'api.sock')) !== undefined ? 'ok' : false, 20_000)
  assert.equal(ready, 'ok', log)
  const status = await run(process.execPath, [bin, 'status', '--config', config, '--json'])
  assert.equal(status.code, 0, status.stderr)
  assert.equal(JSON.parse(status.stdout).peerId, JSON.parse(id.stdout).peerId)
  p.kill('SIGTERM')
  assert.equal(await waitFor('unpacked daemon exit', () => p.exitCode ?? false, 15_000), 0, log)
})

/** The daemon's status, once its API answers on `socket` (it opens the API last). */
async function answers (socket: string): Promise<{ peerId: string, listen: string[] } | undefined> {
  return await apiRequest<{ peerId: string, listen: string[] }>(socket, 'GET', '/v1/status').catch(() => undefined)
}

test('npm install -g from the tarball, offline from the npm cache', async t => {
  assert.ok(tarball !== '', 'npm pack ran')
  const args = ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', tarball]
  let r = await run('npm', [...args, '--offline'], { timeoutMs: 80_000 })
  if (r.code !== 0) {
    // Something the tarball needs is not in the cache (a fresh machine whose npm ci fetched only the locked versions).
    t.diagnostic(`npm install --offline failed, retrying with --prefer-offline: ${r.stderr.split('\n').find(l => /ERR/.test(l)) ?? r.stderr.slice(0, 300)}`)
    r = await run('npm', [...args, '--prefer-offline'], { timeoutMs: 80_000 })
  }
  assert.equal(r.code, 0, r.stderr)
  installStderr = r.stderr
  t.diagnostic(`installed in ${Math.round(r.ms)} ms`)
  const st = fs.statSync(dm)
  assert.ok(st.isFile())
  assert.ok((st.mode & 0o111) !== 0, 'bin/dm is executable')
  assert.ok(fs.realpathSync(dm).startsWith(path.join(prefix, 'lib', 'node_modules', pkg.name) + path.sep), 'bin/dm links into the installed package')
})

test('installing on Node 20 pulls in no dependency that needs a newer Node', () => {
  assert.ok(fs.existsSync(dm), 'installed')
  const engineWarnings = installStderr.split('\n').filter(l => /EBADENGINE/.test(l) && /package:/.test(l))
  assert.deepEqual(engineWarnings, [])
})

let commands: string[] = []

test('dm --help lists the commands; every dm COMMAND --help exits 0 with its usage', async () => {
  assert.ok(fs.existsSync(dm), 'installed')
  const help = await run(dm, ['--help'])
  assert.equal(help.code, 0, help.stderr)
  assert.match(help.stdout, /^usage: dm COMMAND/m)
  // Command lines: two spaces, the command (one or two words), two or more spaces, its summary.
  commands = help.stdout.split('\n').flatMap(l => {
    const m = /^ {2}([a-z]+(?: [a-z]+)?) {2,}\S/.exec(l)
    return m === null ? [] : [m[1]]
  })
  assert.ok(commands.length >= 10, `commands parsed from the help: ${commands.join(', ')}`)
  for (const must of ['daemon', 'id', 'publish', 'list', 'status', 'keygen', 'config check']) assert.ok(commands.includes(must), `${must} in the help`)

  const results = await Promise.all(commands.map(async cmd => ({ cmd, r: await run(dm, [...cmd.split(' '), '--help']) })))
  for (const { cmd, r } of results) {
    assert.equal(r.code, 0, `dm ${cmd} --help: ${r.stderr}`)
    assert.equal(r.stderr, '', `dm ${cmd} --help wrote to stderr`)
    assert.ok(r.stdout.startsWith(`dm ${cmd}: `), `dm ${cmd} --help starts with its summary:\n${r.stdout}`)
    assert.match(r.stdout, new RegExp(`^usage: dm ${cmd} `, 'm'))
    assert.match(r.stdout, /^ {2}-h, --help {2,}\S/m)
  }

  const version = await run(dm, ['--version'])
  assert.equal(version.code, 0)
  assert.equal(version.stdout.trim(), pkg.version, 'dm --version matches package.json')
  const bare = await run(dm, [])
  assert.equal(bare.code, 2, 'no command is a usage error')
  assert.match(bare.stdout, /^usage: dm COMMAND/m)
  const unknown = await run(dm, ['frobnicate'])
  assert.equal(unknown.code, 2)
  assert.match(unknown.stderr, /^dm: unknown command "frobnicate"$/m)
})

test('dm --help starts quickly (median of 5)', async t => {
  assert.ok(fs.existsSync(dm), 'installed')
  await run(dm, ['--help']) // warm the page cache
  const times: number[] = []
  for (let i = 0; i < 5; i++) {
    const r = await run(dm, ['--help'])
    assert.equal(r.code, 0)
    times.push(r.ms)
  }
  times.sort((a, b) => a - b)
  const median = times[2]
  t.diagnostic(`dm --help start-up: median ${median.toFixed(0)} ms (runs: ${times.map(x => x.toFixed(0)).join(', ')} ms)`)
  // A generous bound: it catches the CLI loading libp2p for --help, not a few milliseconds.
  assert.ok(median < 1500, `median ${median} ms`)
})

test('the installed package runs: keygen, two daemons, publish, replicated', async () => {
  assert.ok(fs.existsSync(dm), 'installed')
  const dir = path.join(tmp, 'mesh')
  fs.mkdirSync(dir)
  const key = path.join(dir, 'publisher.pem')
  const kg = await run(dm, ['keygen', '--out', key])
  assert.equal(kg.code, 0, kg.stderr)
  const pub = kg.stdout.trim()

  const nodes = await Promise.all(['a', 'b'].map(async name => {
    const nodeDir = path.join(dir, name)
    fs.mkdirSync(nodeDir)
    return { name, dir: nodeDir, config: path.join(nodeDir, 'dm.toml'), log: '' }
  }))
  const writeConfig = (n: typeof nodes[0], bootstrap: string[]): void => fs.writeFileSync(n.config, [
    'state_dir = "state"',
    '[network]',
    'id = "packaging-test"',
    'listen = ["/ip4/127.0.0.1/tcp/0"]',
    `bootstrap = ${JSON.stringify(bootstrap)}`,
    '[api]',
    'socket = "api.sock"',
    '[files]',
    `"motd" = [${JSON.stringify(pub)}]`,
    ''
  ].join('\n'))
  writeConfig(nodes[0], [])
  const id = await run(dm, ['id', '--config', nodes[0].config, '--json'])
  assert.equal(id.code, 0, id.stderr)
  const procs: ChildProcess[] = []
  /** Starts a node's daemon; ready when its API answers. */
  const start = async (n: typeof nodes[0]): Promise<{ peerId: string, listen: string[] }> => {
    const check = await run(dm, ['config', 'check', '--config', n.config])
    assert.equal(check.code, 0, check.stderr)
    const p = spawn(dm, ['daemon', '--config', n.config], { cwd: n.dir, stdio: ['ignore', 'pipe', 'pipe'] })
    daemons.push(p)
    procs.push(p)
    p.stdout.on('data', (d: Buffer) => { n.log += d.toString() })
    p.stderr.on('data', (d: Buffer) => { n.log += d.toString() })
    const status = await waitFor(`${n.name} ready`, async () => p.exitCode !== null ? 'exited' : await answers(path.join(n.dir, 'api.sock')) ?? false, 20_000)
    assert.notEqual(status, 'exited', `${n.name} exited:\n${n.log}`)
    return status as { peerId: string, listen: string[] }
  }
  // a listens on a port the kernel picks; b bootstraps from the address a reports.
  const a = await start(nodes[0])
  assert.equal(a.peerId, JSON.parse(id.stdout).peerId, 'dm id names the peer the daemon runs as')
  writeConfig(nodes[1], a.listen)
  await start(nodes[1])
  await waitFor('b connected', async () => {
    const s = await run(dm, ['status', '--config', nodes[1].config, '--json'])
    return s.code === 0 && JSON.parse(s.stdout).peersConnected > 0
  }, 20_000)

  const motd = path.join(dir, 'motd')
  fs.writeFileSync(motd, 'installed from the tarball\n')
  const r = await run(dm, ['publish', motd, '--key', key, '--config', nodes[0].config])
  assert.equal(r.code, 0, r.stderr)
  const replica = path.join(nodes[1].dir, 'state', 'files', 'motd')
  await waitFor('motd on b', () => fs.existsSync(replica) && fs.readFileSync(replica).equals(fs.readFileSync(motd)))
  const list = await run(dm, ['list', '--config', nodes[1].config, '--json'])
  assert.equal(list.code, 0, list.stderr)
  assert.deepEqual(JSON.parse(list.stdout).map((v: { name: string }) => v.name), ['motd'])

  for (const p of procs) p.kill('SIGTERM')
  for (const [i, n] of nodes.entries()) {
    const code = await waitFor(`${n.name} exit`, () => procs[i].exitCode ?? false, 15_000)
    assert.equal(code, 0, n.log)
  }
})
