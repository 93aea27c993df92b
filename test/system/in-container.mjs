// Runs inside the container that test/system/systemd.test.ts boots, as root,
// under the container's Node 24, as a oneshot unit that powers the container
// off when it ends. It deploys the package the way the README's "Deploying on a
// fleet" section says, with systemd 252 as PID 1, then checks the units.
// Results go to /dm-results/results.json as { checks: { name: { ok, detail } },
// figures, journal }; the host test asserts on them. A check that was never
// reached is absent, and the host reports it as failed.
import { execFile } from 'node:child_process'
import fs from 'node:fs'

const TARBALL = process.argv[2]
const OUT = '/dm-results/results.json'
const CONFIG = '/etc/data-mesher/dm.toml'
const FILES = '/var/lib/data-mesher/files'
const CONSUMER_LOG = '/var/log/dm-consumer.log'
const SLOW_MARK = '/run/dm-consumer-slow'
const results = { checks: {}, figures: {}, journal: '' }

function check (name, ok, detail = '') {
  results.checks[name] = { ok: Boolean(ok), detail: String(detail) }
  console.log(`${ok ? 'ok' : 'FAIL'} ${name} ${ok ? '' : detail}`)
}

/** Runs a command to completion (never throws): { code, stdout, stderr, ms }. */
function run (cmd, args = [], { env, timeoutMs = 60_000 } = {}) {
  const t0 = performance.now()
  return new Promise(resolve => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout: timeoutMs, maxBuffer: 8 << 20 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : 1
      resolve({ code, stdout, stderr, ms: Math.round(performance.now() - t0) })
    })
  })
}

async function must (cmd, args, opts) {
  const r = await run(cmd, args, opts)
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`)
  return r
}

async function waitFor (what, fn, timeoutMs = 15_000) {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const v = await fn()
    if (v) return v
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 50))
  }
}

async function show (unit, ...props) {
  const r = await must('systemctl', ['show', unit, ...props.map(p => `--property=${p}`)])
  return Object.fromEntries(r.stdout.trim().split('\n').map(l => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]))
}

const readOr = (file, absent) => { try { return fs.readFileSync(file, 'utf8') } catch { return absent } }

async function main () {
  // README step 1: install. No network in the container: npm must not try the registry.
  const npmEnv = { npm_config_offline: 'true', npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' }
  const install = await run('npm', ['install', '-g', TARBALL], { env: npmEnv, timeoutMs: 120_000 })
  results.figures.npmInstallMs = install.ms
  const dmPath = (await run('/bin/sh', ['-c', 'command -v dm'])).stdout.trim()
  check('npm install -g puts dm on the PATH systemd uses', install.code === 0 && dmPath === '/usr/local/bin/dm', `${install.code} ${dmPath} ${install.stderr}`)
  const pkg = `${(await must('npm', ['root', '-g'])).stdout.trim()}/data-mesher`
  const unitDir = `${pkg}/contrib/systemd`

  // README step 5, first half: the system user, from the sysusers file.
  await must('systemd-sysusers', [`${unitDir}/data-mesher.sysusers.conf`])
  const user = (await run('getent', ['passwd', 'data-mesher'])).stdout.trim().split(':')
  const group = (await run('getent', ['group', 'data-mesher'])).stdout.trim().split(':')
  check('systemd-sysusers creates the data-mesher user and group', user.length === 7 && group.length === 4 && user[3] === group[2], `${user.join(':')} / ${group.join(':')}`)
  const [uid, gid] = [Number(user[2]), Number(group[2])]

  // Step 2: a signing key (README: on the publisher's machine; here the same one).
  const pub = (await must('dm', ['keygen', '--out', '/root/admin.pem'])).stdout.trim()
  // Step 3: the config. dns/cnames is left out, to be added by a reload.
  fs.mkdirSync('/etc/data-mesher', { recursive: true })
  const config = ['[network]', 'id = "system-test"', 'listen = ["/ip4/0.0.0.0/tcp/7946"]', '', '[files]', `"motd" = [${JSON.stringify(pub)}]`, ''].join('\n')
  fs.writeFileSync(CONFIG, config)
  await must('dm', ['config', 'check', '--config', CONFIG])
  // Step 4: dm id as root, before the service ever ran: it creates state_dir and identity.key as root.
  const idBefore = JSON.parse((await must('dm', ['id', '--config', CONFIG, '--json'])).stdout).peerId

  // The consumer the path unit starts calls unbound-control; this stand-in logs
  // what a reload would read, and is slow once when asked to, so that a version
  // can land while it runs.
  fs.writeFileSync('/usr/local/sbin/unbound-control', `#!/bin/sh
f=${FILES}/dns/cnames
echo "start $(cat "$f" 2>/dev/null || echo ABSENT)" >>${CONSUMER_LOG}
if [ -e ${SLOW_MARK} ]; then rm -f ${SLOW_MARK}; sleep 2; fi
echo end >>${CONSUMER_LOG}
`, { mode: 0o755 })

  // Step 5: the units, daemon-reload, enable --now. With Type=notify, start
  // returns only once the daemon said READY=1, which it does when its API answers.
  for (const u of ['data-mesher.service', 'dm-dns-reload.path', 'dm-dns-reload.service']) fs.copyFileSync(`${unitDir}/${u}`, `/etc/systemd/system/${u}`)
  await must('systemctl', ['daemon-reload'])
  const start = await run('systemctl', ['enable', '--now', 'data-mesher'], { timeoutMs: 100_000 })
  const status = await run('dm', ['status', '--json'])
  check('dm id run as root before the service leaves nothing the service cannot own: it starts with the same peer id',
    status.code === 0 && JSON.parse(status.stdout).peerId === idBefore, `${status.code} ${status.stdout} ${status.stderr}`)
  const afterStart = await show('data-mesher', 'Type', 'ActiveState', 'SubState', 'MainPID', 'NRestarts')
  results.figures.startMs = start.ms
  check('Type=notify: systemctl start returns once the daemon is ready, and its API answers at once',
    start.code === 0 && afterStart.Type === 'notify' && afterStart.ActiveState === 'active' && afterStart.SubState === 'running' && status.code === 0,
    `start ${start.code} ${start.stderr} ${JSON.stringify(afterStart)} status ${status.code} ${status.stderr}`)
  const pid = Number(afterStart.MainPID)
  if (!(pid > 0)) throw new Error('no main pid')

  const docs = (await show('data-mesher', 'Documentation')).Documentation.split(/\s+/).filter(Boolean)
  const real = docs.filter(d => d.startsWith('file:') && fs.existsSync(d.slice('file:'.length)))
  check('Documentation= names a file the package installed', real.length > 0, docs.join(' '))

  // Hardening, as seen on the running daemon.
  const proc = Object.fromEntries(fs.readFileSync(`/proc/${pid}/status`, 'utf8').trim().split('\n').map(l => l.split(/:\s*/, 2)))
  const zeroCaps = ['CapInh', 'CapPrm', 'CapEff', 'CapBnd', 'CapAmb'].every(k => /^0+$/.test(proc[k]))
  check('the daemon runs as data-mesher, no capabilities, no_new_privs, seccomp filter',
    proc.Uid.split(/\s+/).every(u => Number(u) === uid) && zeroCaps && proc.NoNewPrivs === '1' && proc.Seccomp === '2',
    `Uid ${proc.Uid} CapEff ${proc.CapEff} CapBnd ${proc.CapBnd} NoNewPrivs ${proc.NoNewPrivs} Seccomp ${proc.Seccomp}`)
  // Its mount namespace: as root there (so file modes are no obstacle), the
  // system is read-only and /root, /tmp and /var/tmp are not the host's; as its
  // user, its own directories are writable.
  fs.writeFileSync('/tmp/dm-host-probe', '')
  fs.writeFileSync('/var/tmp/dm-host-probe', '')
  const inside = (script, ...as) => run('nsenter', ['-t', String(pid), '-m', ...as, '--', '/bin/sh', '-c', script])
  const asDaemon = ['-S', String(uid), '-G', String(gid)]
  const probes = {
    'root cannot write /etc': (await inside('touch /etc/dm-probe')).code !== 0,
    'root cannot write /usr/local': (await inside('touch /usr/local/dm-probe')).code !== 0,
    'root cannot write /var/lib': (await inside('touch /var/lib/dm-probe')).code !== 0,
    'no /root/admin.pem': (await inside('test -e /root/admin.pem')).code !== 0,
    'private /tmp': (await inside('test -e /tmp/dm-host-probe')).code !== 0,
    'private /var/tmp': (await inside('test -e /var/tmp/dm-host-probe')).code !== 0,
    'daemon writes state_dir': (await inside('touch /var/lib/data-mesher/dm-probe && rm /var/lib/data-mesher/dm-probe', ...asDaemon)).code === 0,
    'daemon writes /run/data-mesher': (await inside('touch /run/data-mesher/dm-probe && rm /run/data-mesher/dm-probe', ...asDaemon)).code === 0
  }
  const outside = (await run('/bin/sh', ['-c', 'touch /etc/dm-probe && rm /etc/dm-probe && test -e /root/admin.pem'])).code === 0
  check('ProtectSystem=strict, ProtectHome, PrivateTmp hold in the daemon\'s namespace; its own dirs are writable',
    outside && Object.values(probes).every(Boolean), `outside the namespace, root writes /etc: ${outside}; ${JSON.stringify(probes)}`)
  const security = await run('systemd-analyze', ['security', '--no-pager', 'data-mesher.service'])
  const exposure = /Overall exposure level for data-mesher\.service: ([\d.]+) (\S+)/.exec(security.stdout)
  results.figures.exposure = exposure === null ? security.stdout.slice(-300) + security.stderr : `${exposure[1]} ${exposure[2]}`
  check('systemd-analyze security rates the unit at most 2.0 (0 best, 10 worst)', exposure !== null && Number(exposure[1]) <= 2.0, results.figures.exposure)

  // Step 6: a publish lands, owned by the service user, readable by the group only.
  fs.writeFileSync('/root/motd', 'hello from systemd\n')
  const pubMotd = await run('dm', ['publish', '/root/motd', '--name', 'motd', '--key', '/root/admin.pem'])
  const motd = `${FILES}/motd`
  const st = fs.existsSync(motd) ? fs.statSync(motd) : null
  check('dm publish lands in files/ as data-mesher:data-mesher 0640',
    pubMotd.code === 0 && readOr(motd, '') === 'hello from systemd\n' && st.uid === uid && st.gid === gid && (st.mode & 0o777) === 0o640,
    `${pubMotd.code} ${pubMotd.stderr} ${st === null ? 'absent' : `${st.uid}:${st.gid} ${(st.mode & 0o777).toString(8)}`}`)

  // Reload: dns/cnames is refused until it is in [files] and the daemon re-read them.
  await must('systemctl', ['enable', '--now', 'dm-dns-reload.path'])
  const zone = v => { fs.writeFileSync('/root/zone', `zone ${v}\n`); return run('dm', ['publish', '/root/zone', '--name', 'dns/cnames', '--key', '/root/admin.pem']) }
  const refused = await zone('v1')
  fs.writeFileSync(CONFIG, config.replace('[files]\n', `[files]\n"dns/cnames" = [${JSON.stringify(pub)}]\n`))
  const reload = await run('systemctl', ['reload', 'data-mesher'])
  let accepted
  await waitFor('dns/cnames to be accepted after the reload', async () => (accepted = await zone('v1')).code === 0, 10_000).catch(() => {})
  const afterReload = await show('data-mesher', 'MainPID', 'ActiveState', 'NRestarts')
  check('systemctl reload re-reads [files] without a restart (ExecReload needs no /bin/kill)',
    refused.code === 1 && reload.code === 0 && accepted.code === 0 && Number(afterReload.MainPID) === pid && afterReload.ActiveState === 'active',
    `before ${refused.code}, reload ${reload.code} ${reload.stderr}, after ${accepted.code} ${accepted.stderr}, ${JSON.stringify(afterReload)}; /bin/kill ${fs.existsSync('/bin/kill') ? 'exists' : 'absent'}`)

  // The path unit starts its consumer, which reads the new version.
  const log = () => readOr(CONSUMER_LOG, '').split('\n').filter(Boolean)
  await waitFor('the consumer to read zone v1', () => log().includes('start zone v1'), 10_000).catch(() => {})
  check('the path unit starts its consumer when a version lands', log().includes('start zone v1'), log().join(' | '))

  // A version that lands while the consumer runs: the repeat loop in
  // dm-dns-reload.service reloads again (systemd itself does not re-trigger).
  fs.writeFileSync(SLOW_MARK, '')
  await must('/bin/sh', ['-c', `: >${CONSUMER_LOG}`])
  const v2 = await zone('v2')
  await waitFor('the slow consumer to start on v2', () => log().includes('start zone v2'), 10_000).catch(() => {})
  const v3 = await zone('v3')
  const sawV3 = await waitFor('the consumer to read v3', () => log().includes('start zone v3') && log().at(-1) === 'end', 15_000).catch(() => false)
  const lines = log()
  const alternates = lines.every((l, i) => l.startsWith('start ') === (i % 2 === 0))
  check('a version that lands during the reload is reloaded too, and runs never overlap',
    v2.code === 0 && v3.code === 0 && fs.existsSync(SLOW_MARK) === false && sawV3 && alternates, `${v2.code} ${v3.code} ${lines.join(' | ')}`)

  // A tombstone removes the file; the consumer runs and sees it absent.
  await must('/bin/sh', ['-c', `: >${CONSUMER_LOG}`])
  const del = await run('dm', ['delete', 'dns/cnames', '--key', '/root/admin.pem'])
  await waitFor('the consumer to see the tombstone', () => log().includes('start ABSENT'), 10_000).catch(() => {})
  check('a tombstone removes the file and starts the consumer', del.code === 0 && !fs.existsSync(`${FILES}/dns/cnames`) && log().includes('start ABSENT'), `${del.code} ${del.stderr} ${log().join(' | ')}`)

  // systemctl stop: SIGTERM, a clean exit 0, well within TimeoutStopSec.
  const stop = await run('systemctl', ['stop', 'data-mesher'], { timeoutMs: 60_000 })
  const afterStop = await show('data-mesher', 'ActiveState', 'Result', 'ExecMainCode', 'ExecMainStatus')
  results.figures.stopMs = stop.ms
  check('systemctl stop is clean: exit status 0, result success, within 10 s',
    stop.code === 0 && afterStop.ActiveState === 'inactive' && afterStop.Result === 'success' && afterStop.ExecMainCode === '1' && afterStop.ExecMainStatus === '0' && stop.ms < 10_000,
    `${stop.code} ${stop.ms} ms ${JSON.stringify(afterStop)}`)

  // Node outside systemd's PATH: the unit fails to start, and the drop-in its
  // comment gives (taken from the installed unit, word for word) fixes it.
  const unitText = fs.readFileSync('/etc/systemd/system/data-mesher.service', 'utf8')
  const dropIn = /systemctl edit data-mesher`:\n((?:# {3}.*\n)+)/.exec(unitText)?.[1].replace(/^# {3}/gm, '') ?? ''
  const nodeDir = /^Environment=PATH=([^:\n]+):/m.exec(dropIn)?.[1]
  if (nodeDir === undefined) throw new Error(`no PATH drop-in in the unit's comments: ${JSON.stringify(dropIn)}`)
  fs.mkdirSync(nodeDir, { recursive: true })
  fs.renameSync('/usr/local/bin/node', `${nodeDir}/node`)
  const without = await run('systemctl', ['start', 'data-mesher'], { timeoutMs: 100_000 })
  fs.mkdirSync('/etc/systemd/system/data-mesher.service.d')
  fs.writeFileSync('/etc/systemd/system/data-mesher.service.d/override.conf', dropIn)
  await must('systemctl', ['daemon-reload'])
  await must('systemctl', ['reset-failed', 'data-mesher'])
  const withDropIn = await run('systemctl', ['start', 'data-mesher'], { timeoutMs: 100_000 })
  const statusMoved = await run(`${nodeDir}/node`, ['/usr/local/bin/dm', 'status', '--json'])
  check('with node outside systemd\'s PATH the unit fails, and the drop-in its comment gives makes it start',
    without.code !== 0 && withDropIn.code === 0 && statusMoved.code === 0,
    `without ${without.code}, with ${withDropIn.code} ${withDropIn.stderr}, status ${statusMoved.code}; drop-in:\n${dropIn}`)
  await run('systemctl', ['stop', 'data-mesher'])
  results.figures.failedUnits = (await run('systemctl', ['list-units', '--failed', '--plain', '--no-legend'])).stdout.trim()
}

try {
  await main()
} catch (err) {
  check('driver', false, err.stack)
} finally {
  results.journal = (await run('journalctl', ['--no-pager', '-o', 'short-monotonic', '-u', 'data-mesher', '-u', 'dm-dns-reload.service', '-u', 'dm-dns-reload.path'])).stdout.split('\n').slice(-150).join('\n')
  fs.writeFileSync(OUT, JSON.stringify(results, null, 2))
}
