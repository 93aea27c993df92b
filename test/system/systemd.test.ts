import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import { execFileSync, spawn } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { ROOT } from '../helpers/cluster.ts'

/*
 * The shipped units under a real systemd as PID 1: a minimal Debian root
 * (scripts/systemd-root.sh, cached) booted with systemd-nspawn, on a throwaway
 * overlay and a private network. Inside, test/system/in-container.mjs runs as a
 * oneshot unit: it installs the `npm pack` tarball and the units as the README
 * says, checks them, writes its results and powers the container off. Each
 * check below reads one result. Needs root, systemd-nspawn and debootstrap
 * (scripts/install-system-deps.sh). Run with `npm run test:systemd`.
 */

const CHECKS = [
  'dm id run as root before the service leaves nothing the service cannot own: it starts with the same peer id',
  'npm install -g puts dm on the PATH systemd uses',
  'systemd-sysusers creates the data-mesher user and group',
  'Type=notify: systemctl start returns once the daemon is ready, and its API answers at once',
  'Documentation= names a file the package installed',
  'the daemon runs as data-mesher, no capabilities, no_new_privs, seccomp filter',
  'ProtectSystem=strict, ProtectHome, PrivateTmp hold in the daemon\'s namespace; its own dirs are writable',
  'systemd-analyze security rates the unit at most 2.0 (0 best, 10 worst)',
  'dm publish lands in files/ as data-mesher:data-mesher 0640',
  'systemctl reload re-reads [files] without a restart (ExecReload needs no /bin/kill)',
  'the path unit starts its consumer when a version lands',
  'a version that lands during the reload is reloaded too, and runs never overlap',
  'a tombstone removes the file and starts the consumer',
  'systemctl stop is clean: exit status 0, result success, within 10 s',
  'with node outside systemd\'s PATH the unit fails, and the drop-in its comment gives makes it start'
]
const BOOT_DEADLINE_MS = 240_000

const missingTool = ['systemd-nspawn', 'debootstrap'].find(c => !spawnOk('sh', ['-c', `command -v ${c}`]))
const skip = process.getuid?.() !== 0
  ? 'needs root'
  : missingTool !== undefined ? `needs ${missingTool} (bash scripts/install-system-deps.sh)` : false

function spawnOk (cmd: string, args: string[]): boolean {
  try { execFileSync(cmd, args, { stdio: 'ignore' }); return true } catch { return false }
}

interface Results { checks: Record<string, { ok: boolean, detail: string }>, figures: Record<string, unknown>, journal: string }
let results: Results = { checks: {}, figures: {}, journal: '' }
let consoleLog = ''
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-systemd-'))

before(async () => {
  if (skip !== false) return
  const t0 = Date.now()
  const root = execFileSync('bash', [path.join(ROOT, 'scripts/systemd-root.sh')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], timeout: 600_000 }).trim()
  const rootMs = Date.now() - t0

  const input = path.join(tmp, 'in')
  const output = path.join(tmp, 'out')
  fs.mkdirSync(input)
  fs.mkdirSync(output)
  // --ignore-scripts: pack the dist/ that `npm run test:systemd` just built.
  const packed = JSON.parse(execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', input], { cwd: ROOT, encoding: 'utf8' })) as Array<{ filename: string }>
  fs.copyFileSync(path.join(ROOT, 'test/system/in-container.mjs'), path.join(input, 'in-container.mjs'))
  const unit = path.join(tmp, 'dm-system-test.service')
  fs.writeFileSync(unit, [
    '[Unit]',
    'Description=data-mesher system test (test/system/in-container.mjs)',
    'After=multi-user.target',
    'SuccessAction=poweroff',
    'FailureAction=poweroff',
    '[Service]',
    'Type=oneshot',
    'TimeoutStartSec=200',
    'StandardOutput=journal+console',
    `ExecStart=/usr/local/bin/node /dm-test/in-container.mjs /dm-test/${packed[0].filename}`,
    ''
  ].join('\n'))

  // nspawn cleans up a propagation directory under /run/systemd/nspawn, which must be a mount of its own.
  if (!spawnOk('mountpoint', ['-q', '/run/systemd/nspawn'])) {
    fs.mkdirSync('/run/systemd/nspawn', { recursive: true })
    execFileSync('mount', ['-t', 'tmpfs', 'tmpfs', '/run/systemd/nspawn'])
  }
  const t1 = Date.now()
  const nspawn = spawn('systemd-nspawn', [
    '--quiet', '--register=no', '--keep-unit', // no host system bus to register with
    '--volatile=overlay', // the cached root stays pristine: writes go to a tmpfs
    '--private-network', // loopback only: port 7946 is the container's own
    '--directory', root,
    '--bind-ro', `${input}:/dm-test`,
    '--bind', `${output}:/dm-results`,
    '--bind-ro', `${unit}:/etc/systemd/system/dm-system-test.service`,
    '--boot', 'systemd.wants=dm-system-test.service'
  ], { stdio: ['ignore', 'pipe', 'pipe'] })
  nspawn.stdout.on('data', (d: Buffer) => { consoleLog += d.toString() })
  nspawn.stderr.on('data', (d: Buffer) => { consoleLog += d.toString() })
  const killer = setTimeout(() => nspawn.kill('SIGKILL'), BOOT_DEADLINE_MS)
  const code = await new Promise<number | null>(resolve => nspawn.on('exit', c => resolve(c)))
  clearTimeout(killer)
  const resultFile = path.join(output, 'results.json')
  assert.ok(fs.existsSync(resultFile), `the container wrote no results (nspawn exit ${code}); console:\n${consoleLog.slice(-4000)}`)
  results = JSON.parse(fs.readFileSync(resultFile, 'utf8')) as Results
  results.figures.rootMs = rootMs
  results.figures.containerMs = Date.now() - t1
})

after(() => {
  fs.rmSync(tmp, { recursive: true, force: true })
})

test('the in-container driver ran to the end', { skip }, t => {
  t.diagnostic(`figures: ${JSON.stringify(results.figures)}`)
  assert.equal(results.checks.driver, undefined, `${results.checks.driver?.detail}\njournal:\n${results.journal}`)
})

for (const name of CHECKS) {
  test(name, { skip }, () => {
    const c = results.checks[name]
    assert.ok(c !== undefined, `not reached; journal:\n${results.journal}`)
    assert.ok(c.ok, `${c.detail}\njournal:\n${results.journal}`)
  })
}

test('every check the driver made is asserted here', { skip }, () => {
  assert.deepEqual(Object.keys(results.checks).filter(k => k !== 'driver' && !CHECKS.includes(k)), [])
})
