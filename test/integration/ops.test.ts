import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { Cluster, TestNode, DM, ROOT, newSigningKey, runDm, type RunResult } from '../helpers/cluster.ts'
import { waitFor } from '../helpers/wait.ts'
import { assertOneLineError } from '../helpers/cli-error.ts'
import type { StatusInfo } from '../../src/api/wire.ts'

/*
 * Operating the daemon as systemd and an operator do: unit files, readiness,
 * signals, metrics, mistakes at the command line, identity, a fleet restart.
 * Real daemons (bin/dm) as processes on 127.0.0.1; nothing is mocked.
 */

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-ops-'))
const clusters: Cluster[] = []
const spawned: ChildProcess[] = []

after(async () => {
  for (const p of spawned) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL')
  await Promise.all(clusters.map(async c => await c.stop()))
  fs.rmSync(tmp, { recursive: true, force: true })
})

async function newCluster (): Promise<Cluster> {
  const c = new Cluster('dm-ops-')
  clusters.push(c)
  return c
}

function hasCommand (cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0
}

/** A process this file started itself, with its output collected (`out` both streams, `err` stderr alone). */
class Proc {
  out = ''
  err = ''
  readonly exited: Promise<{ code: number | null, signal: NodeJS.Signals | null }>
  constructor (readonly proc: ChildProcess) {
    spawned.push(proc)
    proc.stdout?.on('data', (d: Buffer) => { this.out += d.toString() })
    proc.stderr?.on('data', (d: Buffer) => { this.out += d.toString(); this.err += d.toString() })
    this.exited = new Promise(resolve => proc.once('exit', (code, signal) => resolve({ code, signal })))
  }

  get running (): boolean { return this.proc.exitCode === null && this.proc.signalCode === null }

  /** Lines of stdout that parse as JSON (pino logs, the notify receiver's reports). */
  json (): Array<Record<string, unknown>> {
    return this.out.split('\n').flatMap(l => { try { return [JSON.parse(l)] } catch { return [] } })
  }

  async waitExit (what: string, timeoutMs = 15_000): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
    await waitFor(`${what} to exit`, () => !this.running, timeoutMs)
    return await this.exited
  }
}

/** `dm daemon`, optionally run through a wrapper command (`wrapper` ++ node bin/dm daemon ...). */
function spawnDaemon (configPath: string, env: NodeJS.ProcessEnv = {}, wrapper: string[] = []): Proc {
  const argv = [...wrapper, process.execPath, DM, 'daemon', '--config', configPath, '--log-format', 'json']
  return new Proc(spawn(argv[0], argv.slice(1), {
    cwd: path.dirname(configPath), env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe']
  }))
}

/** Polls `check` while `p` runs; fails at once if it exits (waitFor alone would retry until its deadline). */
async function whileRunning (p: Proc, what: string, check: () => boolean | Promise<boolean>, timeoutMs = 15_000): Promise<void> {
  const r = await waitFor(what, async () => !p.running ? 'exited' : await check() ? 'ok' : false, timeoutMs)
  assert.equal(r, 'ok', `${what}: the process exited (exit ${String(p.proc.exitCode)}, signal ${String(p.proc.signalCode)}):\n${p.out}`)
}

/** Ready when the API answers, as for the cluster helper's nodes: the daemon opens it last. */
async function waitReady (p: Proc, node: TestNode): Promise<void> {
  await whileRunning(p, `${node.name} ready`, async () => await node.api('/v1/status').then(() => true, () => false), 20_000)
}

/** The config reloads (SIGHUP) the daemon reports in its status: how many took, and the last failure. */
async function reloads (node: TestNode): Promise<NonNullable<StatusInfo['config']>> {
  const s = await node.api<StatusInfo>('/v1/status')
  assert.ok(s.config !== undefined, 'status carries config')
  return s.config
}

/** Waits until the daemon reports `count` reloads taken, failing at once if it exits. */
async function waitReloads (p: Proc, node: TestNode, count: number, timeoutMs = 15_000): Promise<void> {
  await whileRunning(p, `${count} config reload(s) taken`, async () => (await reloads(node)).reloads >= count, timeoutMs)
  assert.equal((await reloads(node)).reloads, count)
}

/** Whether something accepts connections on a Unix socket. */
async function answers (socket: string): Promise<boolean> {
  return await new Promise(resolve => {
    const s = net.connect(socket)
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

/** The value of one sample of Prometheus text exposition, `labels` written as in the output. */
function sample (text: string, name: string, labels = ''): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z_:][\w:]*)(\{[^}]*\})? (\S+)/.exec(line)
    if (m !== null && m[1] === name && (m[2] ?? '') === labels) return Number(m[3])
  }
  return undefined
}

/** Where a daemon serves /metrics: it listens on port 0 and reports the port it got. */
async function metricsAddress (n: TestNode): Promise<string> {
  const at = (await n.api<{ metrics: string | null }>('/v1/status')).metrics
  assert.match(at ?? '', /^127\.0\.0\.1:[1-9]\d*$/)
  return at as string
}

async function scrape (address: string): Promise<string> {
  const res = await fetch(`http://${address}/metrics`)
  assert.equal(res.status, 200)
  return await res.text()
}

// ---------------------------------------------------------------- systemd units

const UNIT_DIR = path.join(ROOT, 'contrib/systemd')

test('systemd-analyze verify accepts the shipped units', async t => {
  if (!hasCommand('systemd-analyze')) { t.skip('systemd-analyze is not installed (apt-get install systemd)'); return }
  const units = fs.readdirSync(UNIT_DIR).filter(f => /\.(service|path)$/.test(f)).map(f => path.join(UNIT_DIR, f))
  assert.ok(units.length >= 3, `units found: ${units.join(' ')}`)
  const r = spawnSync('systemd-analyze', ['verify', ...units], { encoding: 'utf8', timeout: 30_000 })
  assert.equal(r.status, 0, r.stderr)
  // Warnings do not change the exit status; any that name our units count as failures.
  const ours = r.stderr.split('\n').filter(l => /data-mesher|dm-dns-reload/.test(l))
  assert.deepEqual(ours, [], r.stderr)
})

test('the sysusers.d entry creates the data-mesher user and the group consumers join', async t => {
  if (!hasCommand('systemd-sysusers')) { t.skip('systemd-sysusers is not installed'); return }
  const root = fs.mkdtempSync(path.join(tmp, 'sysroot-'))
  fs.mkdirSync(path.join(root, 'etc'))
  const r = spawnSync('systemd-sysusers', [`--root=${root}`, path.join(UNIT_DIR, 'data-mesher.sysusers.conf')], { encoding: 'utf8', timeout: 30_000 })
  assert.equal(r.status, 0, r.stderr)
  const passwd = fs.readFileSync(path.join(root, 'etc/passwd'), 'utf8')
  const group = fs.readFileSync(path.join(root, 'etc/group'), 'utf8')
  const user = passwd.split('\n').find(l => l.startsWith('data-mesher:'))
  const grp = group.split('\n').find(l => l.startsWith('data-mesher:'))
  assert.ok(user !== undefined, passwd)
  assert.ok(grp !== undefined, group)
  // The user's primary group is the data-mesher group the unit's Group= and consumers' SupplementaryGroups= name.
  assert.equal(user.split(':')[3], grp.split(':')[2])
  assert.equal(user.split(':')[5], '/var/lib/data-mesher')
  // A system account: nobody logs in as it.
  assert.match(user.split(':')[6], /nologin|false/)
})

// ---------------------------------------------------------------- readiness and stop

/*
 * A stand-in for systemd's notify socket. Node cannot bind AF_UNIX SOCK_DGRAM,
 * so a small python3 program does. It reports each message as a JSON line; on
 * READY=1 it first calls GET /v1/status on the API socket itself, so the test
 * learns whether the API answered at the moment readiness was announced.
 * systemd-notify sends BARRIER=1 with a pipe fd and waits until it is closed:
 * the receiver closes every fd it gets, after holding it `hold_ms`.
 */
const NOTIFY_RECEIVER = String.raw`
import array, json, os, socket, sys, time
sock_path, api_path, hold_ms = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sock_path)
print(json.dumps({"event": "listening"}), flush=True)

def probe():
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(5)
    try:
        c.connect(api_path)
        c.sendall(b"GET /v1/status HTTP/1.0\r\nHost: localhost\r\n\r\n")
        data = b""
        while True:
            chunk = c.recv(65536)
            if not chunk:
                break
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return {"status": int(head.split(b" ")[1]), "body": body.decode()}
    except Exception as e:
        return {"error": repr(e)}
    finally:
        c.close()

while True:
    msg, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(64 * 4))
    fds = []
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            a = array.array("i")
            a.frombytes(data[:len(data) - len(data) % a.itemsize])
            fds.extend(a)
    fields = dict(l.split("=", 1) for l in msg.decode().split("\n") if "=" in l)
    report = {"event": "message", "fields": fields, "fds": len(fds)}
    if fields.get("READY") == "1":
        report["api"] = probe()
    print(json.dumps(report), flush=True)
    if fds:
        time.sleep(hold_ms / 1000)
        for fd in fds:
            os.close(fd)
        print(json.dumps({"event": "released", "fds": len(fds)}), flush=True)
`

interface Notified { daemon: Proc, receiver: Proc, node: TestNode }

async function startNotified (name: string, holdBarrierMs: number, wrapper: string[] = [], files: Record<string, string[]> = {}): Promise<Notified> {
  const dir = fs.mkdtempSync(path.join(tmp, `${name}-`))
  const node = new TestNode('n', 0, dir, { files })
  const script = path.join(dir, 'notify-receiver.py')
  fs.writeFileSync(script, NOTIFY_RECEIVER)
  const notifySocket = path.join(dir, 'notify.sock')
  const receiver = new Proc(spawn('python3', [script, notifySocket, node.socket, String(holdBarrierMs)], { stdio: ['ignore', 'pipe', 'pipe'] }))
  await waitFor('notify receiver listening', () => {
    if (!receiver.running) throw new Error(`receiver exited: ${receiver.out}`)
    return receiver.json().some(e => e.event === 'listening')
  })
  const daemon = spawnDaemon(node.configPath, { NOTIFY_SOCKET: notifySocket }, wrapper)
  return { daemon, receiver, node }
}

/** Child processes of `pid`, from /proc/<n>/stat (field 4 is the parent pid). */
function childrenOf (pid: number): number[] {
  return fs.readdirSync('/proc').filter(d => /^\d+$/.test(d)).flatMap(d => {
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8')
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid ? [Number(d)] : []
    } catch { return [] }
  })
}

/**
 * Waits until the daemon's readiness handshake is over (its signal handlers
 * are installed before it, see the SIGHUP test below). Waits for
 * systemd-notify to be gone, then for two API round trips, which take several
 * turns of the daemon's event loop after that child's exit was handled.
 */
async function notifySettled (n: Notified): Promise<void> {
  await waitFor('systemd-notify to exit', () => n.receiver.json().some(e => e.event === 'released') && childrenOf(n.daemon.proc.pid!).length === 0)
  for (let i = 0; i < 2; i++) await n.node.api('/v1/status')
}

function readyReport (n: Notified): Record<string, any> | undefined {
  return n.receiver.json().find(e => e.event === 'message' && (e.fields as Record<string, string>).READY === '1')
}

async function waitReadyReport (n: Notified): Promise<Record<string, any>> {
  await whileRunning(n.daemon, 'READY=1 on the notify socket', () => readyReport(n) !== undefined, 20_000)
  return readyReport(n)!
}

test('Type=notify: READY=1 is sent only once the API socket answers', { skip: hasCommand('python3') && hasCommand('systemd-notify') ? false : 'needs python3 and systemd-notify' }, async () => {
  const notified = await startNotified('notify', 0)
  const ready = await waitReadyReport(notified)
  assert.equal(ready.api.status, 200, `the API did not answer when READY=1 arrived: ${JSON.stringify(ready.api)}`)
  assert.match(JSON.parse(ready.api.body).peerId, /^12D3KooW/)
  assert.match(ready.fields.STATUS, /^serving \d+ files$/)
  // systemd-notify's barrier: the daemon's notify call completes only once the manager has processed READY=1.
  try {
    await notifySettled(notified)
    // A notify call that failed would have printed a warning: stderr stays empty (the JSON log is on stdout).
    assert.equal(notified.daemon.err, '', notified.daemon.out)
  } finally {
    notified.daemon.proc.kill('SIGKILL')
    notified.receiver.proc.kill('SIGKILL')
  }
})

test('SIGTERM: exit status 0, the state directory unlocked, the API socket gone', async () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'sigterm-'))
  const node = new TestNode('n', 0, dir, { files: {} })
  const daemon = spawnDaemon(node.configPath)
  await waitReady(daemon, node)
  const lock = path.join(node.dir, 'state', 'daemon.lock')
  assert.ok(fs.existsSync(lock), 'a running daemon holds the state directory lock')
  // A second answered request: the event loop has turned since the API opened, so the signal handlers are in place.
  assert.match((await node.api<{ peerId: string }>('/v1/status')).peerId, /^12D3KooW/)
  daemon.proc.kill('SIGTERM')
  const { code, signal } = await daemon.waitExit('daemon after SIGTERM', 15_000)
  assert.equal(signal, null, daemon.out)
  assert.equal(code, 0, daemon.out)
  // The lock is released by the last step of the daemon's stop (it was taken first): the whole stop ran.
  assert.equal(fs.existsSync(lock), false, 'the state directory lock is released')
  assert.ok(!fs.existsSync(node.socket) || !(await answers(node.socket)), 'the API socket still answers')
})

test('a SIGHUP right after READY=1 reloads the config instead of killing the daemon', {
  skip: hasCommand('python3') && hasCommand('systemd-notify') ? false : 'needs python3 and systemd-notify',
}, async () => {
  // The receiver holds the barrier for 1.5 s: a slow manager, which widens the window the bug needs.
  const n = await startNotified('hup-race', 1500)
  try {
    await waitReadyReport(n)
    n.daemon.proc.kill('SIGHUP')
    await waitReloads(n.daemon, n.node, 1, 10_000)
  } finally {
    n.daemon.proc.kill('SIGKILL')
    n.receiver.proc.kill('SIGKILL')
  }
})

// ---------------------------------------------------------------- the unit's syscall filter

/*
 * Runs a command under the seccomp allowlist that the unit's SystemCallFilter=
 * lines describe, built as systemd builds it: the sets expanded by
 * `systemd-analyze syscall-filter`, lines without "~" adding, lines with "~"
 * removing, and any other system call killing the process (SIGSYS), systemd's
 * default without SystemCallErrorNumber=. Needs libseccomp's Python binding
 * (Debian: python3-seccomp). A stand-in for running the unit under PID 1,
 * which this environment has not.
 */
const SECCOMP_WRAPPER = String.raw`
import os, subprocess, sys, seccomp
unit, argv = sys.argv[1], sys.argv[3:]
# Every set at once: "@name", its "# description", its members (names or @sets), a blank line.
sets, current = {}, None
for line in subprocess.run(["systemd-analyze", "syscall-filter"], capture_output=True, text=True, check=True).stdout.split("\n"):
    if line.startswith("@"):
        current = sets.setdefault(line.strip(), [])
    elif line.startswith(" ") and current is not None and not line.strip().startswith("#"):
        current.append(line.strip())
def expand(name, seen):
    if not name.startswith("@"):
        return {name}
    if name not in sets:
        sys.exit(f"unknown system call set {name}")
    res = set()
    for member in sets[name]:
        if member not in seen:
            seen.add(member)
            res |= expand(member, seen)
    return res
allowed = set()
lines = [l.split("=", 1)[1].strip() for l in open(unit) if l.startswith("SystemCallFilter=")]
if not lines or lines[0].startswith("~"):
    sys.exit("the unit has no SystemCallFilter= allowlist")
for value in lines:
    deny = value.startswith("~")
    names = set()
    for token in value.lstrip("~").split():
        names |= expand(token.split(":")[0], set())
    allowed = allowed - names if deny else allowed | names
f = seccomp.SyscallFilter(defaction=seccomp.KILL_PROCESS)
for name in sorted(allowed):
    try:
        f.add_rule(seccomp.ALLOW, name)
    except Exception:
        pass  # not a system call of this architecture
f.load()
os.execvp(argv[0], argv)
`

/** A python3 that has libseccomp's binding, if any. */
function seccompPython (): string | undefined {
  for (const py of ['/usr/bin/python3', 'python3']) {
    if (spawnSync(py, ['-c', 'import seccomp'], { stdio: 'ignore' }).status === 0) return py
  }
  return undefined
}

const seccompSkip = !hasCommand('systemd-analyze') || !hasCommand('systemd-notify')
  ? 'needs systemd-analyze and systemd-notify'
  : seccompPython() === undefined ? 'needs libseccomp for python3 (apt-get install python3-seccomp)' : false

test('the daemon runs under data-mesher.service\'s SystemCallFilter: start, ready, reload, publish, stop', { skip: seccompSkip }, async () => {
  const script = path.join(tmp, 'seccomp-wrapper.py')
  fs.writeFileSync(script, SECCOMP_WRAPPER)
  const unit = path.join(UNIT_DIR, 'data-mesher.service')
  const key = newSigningKey(tmp, 'seccomp-publisher')
  const n = await startNotified('seccomp', 0, [seccompPython()!, script, unit, '--'], { 'motd': [key.base64] })
  try {
    const ready = await waitReadyReport(n)
    assert.equal(ready.api.status, 200, JSON.stringify(ready.api))
    await waitReady(n.daemon, n.node)
    await notifySettled(n)
    const motd = path.join(n.node.dir, 'motd')
    fs.writeFileSync(motd, 'written under seccomp\n')
    const r = await runDm(['publish', motd, '--key', key.path, '--config', n.node.configPath])
    assert.equal(r.code, 0, `${r.stderr}\n${n.daemon.out}`)
    assert.deepEqual(n.node.file('motd'), fs.readFileSync(motd))
    n.daemon.proc.kill('SIGHUP')
    await waitReloads(n.daemon, n.node, 1)
    n.daemon.proc.kill('SIGTERM')
    const { code, signal } = await n.daemon.waitExit('filtered daemon')
    assert.equal(signal, null, `killed by ${String(signal)} (SIGSYS: a system call outside the unit's filter):\n${n.daemon.out}`)
    assert.equal(code, 0, n.daemon.out)
  } finally {
    n.daemon.proc.kill('SIGKILL')
    n.receiver.proc.kill('SIGKILL')
  }
})

// ---------------------------------------------------------------- SIGHUP reload

test('SIGHUP reloads [files] without a restart; a broken config keeps the running one', async () => {
  const c = await newCluster()
  const node = await c.add({ files: { 'hello.txt': [c.key.base64] } })
  await node.start()
  const pid = node.proc!.pid
  const late = path.join(c.root, 'late.txt')
  fs.writeFileSync(late, 'arrived late\n')

  assertOneLineError(await runDm(['publish', late, '--key', c.key.path, '--config', node.configPath]), 1, 'ERR_NAME_NOT_ALLOWED', '"late.txt"')
  const started = await reloads(node)
  assert.deepEqual({ ...started, loadedAtMs: 0 }, { loadedAtMs: 0, reloads: 0, lastReloadError: null })
  const content = Buffer.from('signed directly')
  await assert.rejects(node.submit(c.sign('late.txt', content), content), (err: { code?: string }) => err.code === 'ERR_NAME_NOT_ALLOWED')

  node.setOptions({ files: { 'hello.txt': [c.key.base64], 'late.txt': [c.key.base64] } })
  process.kill(pid!, 'SIGHUP')
  await waitFor('late.txt accepted after SIGHUP', async () => (await runDm(['publish', late, '--key', c.key.path, '--config', node.configPath])).code === 0, 15_000)
  assert.equal(node.proc!.pid, pid)
  assert.equal(node.proc!.exitCode, null, 'not restarted')
  assert.deepEqual(node.file('late.txt'), fs.readFileSync(late))
  const reloaded = await reloads(node)
  assert.equal(reloaded.reloads, 1)
  assert.equal(reloaded.lastReloadError, null)
  assert.ok(reloaded.loadedAtMs > started.loadedAtMs, 'the config in force was read again')

  // A broken file on SIGHUP: reported with its code, and the allowlist in force stays (late.txt is still accepted).
  fs.writeFileSync(node.configPath, '[files\n"late.txt" = oops\n')
  process.kill(pid!, 'SIGHUP')
  const failed = await waitFor('the failed reload reported', async () => { const r = await reloads(node); return r.lastReloadError !== null ? r : undefined })
  assert.equal(failed.lastReloadError?.code, 'ERR_CONFIG')
  assert.equal(failed.reloads, 1, 'a failed reload does not count')
  assert.equal(failed.loadedAtMs, reloaded.loadedAtMs, 'the config in force is the one read before')
  assert.equal(node.proc!.exitCode, null, 'still running')
  // Straight to the API, as the CLI would read the broken file too.
  const take2 = Buffer.from('arrived late, take two')
  await node.submit(c.sign('late.txt', take2), take2)
  assert.deepEqual(node.file('late.txt'), take2)
  assert.equal(node.proc!.pid, pid)
  node.writeConfig()
  // dm status (which reads the file, now whole again) warns of the failed reload, with its code; the node stays ok.
  const shown = await runDm(['status', '--config', node.configPath])
  assert.equal(shown.code, 0, shown.stderr)
  assert.match(shown.stderr, /^dm: warning: .* \(ERR_CONFIG\)$/m)
  assert.match(shown.stdout, /^config\s+.*\(1 reload\b/m)
})

// ---------------------------------------------------------------- metrics

test('metrics: a replicated version, the peer, the delay, the bytes and refusals show on /metrics', async () => {
  const c = await newCluster()
  const src = await c.add()
  // [metrics] through `extra`: it lands right before [api], which starts the next table.
  const dst = await c.add({ extra: '[metrics]\nlisten = "127.0.0.1:0"' })
  // A daemon that cannot start exits: node.start() fails then, without waiting out its deadline.
  await Promise.all([src.start(), dst.start()])
  await waitFor('connected', async () => (await dst.connectedPeers()) === 1)
  const metricsAt = await metricsAddress(dst)
  assert.equal((await src.api<{ metrics: string | null }>('/v1/status')).metrics, null, 'no [metrics]: none served')

  const content = Buffer.from('measured ' + Date.now())
  await src.submit(c.sign('hello.txt', content), content)
  await c.waitAll('hello.txt', content)

  const text = await waitFor('metrics reflect the accepted version', async () => {
    const t = await scrape(metricsAt)
    return (sample(t, 'dm_versions_accepted_total') ?? 0) >= 1 ? t : undefined
  })
  assert.equal(sample(text, 'dm_peers_connected'), 1)
  assert.ok((sample(text, 'dm_peers_known') ?? 0) >= 1)
  assert.ok((sample(text, 'dm_propagation_delay_seconds_count') ?? 0) >= 1, 'a version from a peer records its propagation delay')
  const age = sample(text, 'dm_file_version_age_seconds', '{name="hello.txt"}')
  assert.ok(age !== undefined && age >= 0 && age < 60, `age of hello.txt: ${String(age)}`)
  assert.ok((sample(text, 'dm_sync_bytes_total', '{direction="in"}') ?? 0) > 0, 'sync bytes in')
  assert.ok((sample(text, 'dm_sync_bytes_total', '{direction="out"}') ?? 0) > 0, 'sync bytes out')
  assert.ok(sample(text, 'dm_process_resident_memory_bytes') !== undefined, 'default process metrics, dm_ prefixed')

  const reason = '{reason="ERR_NAME_NOT_ALLOWED"}'
  const before = sample(text, 'dm_versions_refused_total', reason) ?? 0
  const unlisted = Buffer.from('nobody listed me')
  await assert.rejects(dst.submit(c.sign('unlisted.txt', unlisted), unlisted))
  const afterRefusal = await scrape(metricsAt)
  assert.equal(sample(afterRefusal, 'dm_versions_refused_total', reason), before + 1)

  assert.equal((await fetch(`http://${metricsAt}/`)).status, 404)
})

test('metrics: a non-loopback listen address set explicitly is allowed, with a warning from dm config check; a malformed one is refused', async () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'metrics-public-'))
  const node = new TestNode('n', 0, dir, { files: {}, extra: '[metrics]\nlisten = "0.0.0.0:9464"' })
  const check = await runDm(['config', 'check', '--config', node.configPath])
  assert.equal(check.code, 0, check.stderr)
  assert.ok(check.stderr.includes('metrics.listen'), check.stderr)
  node.setOptions({ extra: '[metrics]\nlisten = "9464"' })
  assertOneLineError(await runDm(['config', 'check', '--config', node.configPath]), 1, 'ERR_CONFIG', 'metrics.listen')
  // The daemon refuses the same file before it binds anything.
  assertOneLineError(await runDm(['daemon', '--config', node.configPath]), 1, 'ERR_CONFIG', 'metrics.listen')
  node.setOptions({ extra: '[metrics]\nlisten = "127.0.0.1:9464"' })
  const ok = await runDm(['config', 'check', '--config', node.configPath])
  assert.equal(ok.code, 0, ok.stderr)
  assert.equal(ok.stderr.includes('metrics.listen'), false, 'no warning for loopback')
})

// ---------------------------------------------------------------- bad local input

test('bad local input: one clear line on stderr and a non-zero exit', async t => {
  const c = await newCluster()
  const node = await c.add({ files: { 'hello.txt': [c.key.base64] } })
  await node.start()
  const file = path.join(c.root, 'hello.txt')
  fs.writeFileSync(file, 'hello\n')
  const publish = async (...args: string[]): Promise<RunResult> => await runDm(['publish', ...args])

  await t.test('a broken config: dm daemon and dm publish name the file and line', async () => {
    const broken = path.join(c.root, 'broken.toml')
    fs.writeFileSync(broken, 'state_dir = "state"\n[network\nid = "x"\n')
    assertOneLineError(await runDm(['daemon', '--config', broken]), 1, 'ERR_CONFIG', 'broken.toml', 'line 2')
    assertOneLineError(await publish(file, '--key', c.key.path, '--config', broken), 1, 'ERR_CONFIG', 'broken.toml', 'line 2')
    assertOneLineError(await runDm(['config', 'check', '--config', broken]), 1, 'ERR_CONFIG', 'broken.toml', 'line 2')
  })

  await t.test('a config file that does not exist', async () => {
    assertOneLineError(await publish(file, '--key', c.key.path, '--config', path.join(c.root, 'nope.toml')), 1, 'ERR_CONFIG', 'nope.toml')
  })

  await t.test('a missing key file', async () => {
    assertOneLineError(await publish(file, '--key', path.join(c.root, 'missing.pem'), '--config', node.configPath), 1, 'ERR_KEY', 'missing.pem')
  })

  await t.test('a key of the wrong type (RSA)', async () => {
    const rsa = path.join(c.root, 'rsa.pem')
    if (hasCommand('openssl')) {
      const r = spawnSync('openssl', ['genpkey', '-algorithm', 'rsa', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', rsa], { encoding: 'utf8' })
      assert.equal(r.status, 0, r.stderr)
    } else {
      const { generateKeyPairSync } = await import('node:crypto')
      fs.writeFileSync(rsa, generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'pem', type: 'pkcs8' }))
    }
    fs.chmodSync(rsa, 0o600)
    assertOneLineError(await publish(file, '--key', rsa, '--config', node.configPath), 1, 'ERR_KEY', 'rsa.pem')
  })

  await t.test('a file over 10 MiB: refused before it is read; the daemon holds nothing new', async () => {
    const before = await node.api<unknown[]>('/v1/versions')
    const big = path.join(c.root, 'big.bin')
    fs.writeFileSync(big, '')
    fs.truncateSync(big, 10 * 1024 * 1024 + 1)
    assertOneLineError(await publish(big, '--name', 'hello.txt', '--key', c.key.path, '--config', node.configPath), 1, 'ERR_TOO_LARGE', 'big.bin')
    assert.deepEqual(await node.api<unknown[]>('/v1/versions'), before)
    assert.equal(node.file('hello.txt'), undefined)
  })

  await t.test('a name not listed in [files]', async () => {
    const other = path.join(c.root, 'other.txt')
    fs.writeFileSync(other, 'x')
    assertOneLineError(await publish(other, '--key', c.key.path, '--config', node.configPath), 1, 'ERR_NAME_NOT_ALLOWED', '"other.txt"', '[files]')
    assert.equal(node.file('other.txt'), undefined)
  })

  await t.test('no daemon running: exit 3', async () => {
    const idle = new TestNode('idle', 0, c.root, { files: { 'hello.txt': [c.key.base64] } })
    assertOneLineError(await publish(file, '--key', c.key.path, '--config', idle.configPath), 3, 'ERR_DAEMON_UNREACHABLE', idle.socket)
    assertOneLineError(await runDm(['status', '--config', idle.configPath]), 3, 'ERR_DAEMON_UNREACHABLE', idle.socket)
  })

  await t.test('the API socket is created mode 0660', async () => {
    const st = fs.statSync(node.socket)
    assert.ok(st.isSocket())
    assert.equal((st.mode & 0o777).toString(8), '660')
  })

  const second = new TestNode('second', 0, c.root, { files: { 'hello.txt': [c.key.base64] } })
  // Its own state and port, the first daemon's socket.
  fs.writeFileSync(second.configPath, fs.readFileSync(second.configPath, 'utf8').replace('socket = "api.sock"', `socket = ${JSON.stringify(node.socket)}`))
  await t.test('a second daemon on the same API socket refuses to start and exits, and the first keeps serving', async () => {
    const secondDaemon = new Proc(spawn(process.execPath, [DM, 'daemon', '--config', second.configPath], { stdio: ['ignore', 'pipe', 'pipe'] }))
    try {
      const { code } = await secondDaemon.waitExit('the refused second daemon', 20_000)
      assertOneLineError({ code, stderr: secondDaemon.err }, 1, 'ERR_SOCKET_IN_USE', node.socket)
    } finally {
      secondDaemon.proc.kill('SIGKILL')
    }
    assert.ok(await answers(node.socket))
    assert.equal((await node.api<{ peerId: string }>('/v1/status')).peerId, node.peerId)
  })

  await t.test('a stale socket left by a killed daemon does not stop a restart', async () => {
    await node.stop(true)
    assert.ok(fs.statSync(node.socket).isSocket(), 'SIGKILL leaves the socket file behind')
    assert.equal(await answers(node.socket), false)
    assertOneLineError(await publish(file, '--key', c.key.path, '--config', node.configPath), 3, 'ERR_DAEMON_UNREACHABLE', node.socket)
    await node.start()
    const r = await publish(file, '--key', c.key.path, '--config', node.configPath)
    assert.equal(r.code, 0, r.stderr)
    assert.equal((fs.statSync(node.socket).mode & 0o777).toString(8), '660')
  })
})

// ---------------------------------------------------------------- identity

test('dm id works before the daemon ever ran, creates identity.key 0600, and never changes', async () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'id-'))
  const node = new TestNode('n', 0, dir, { files: {} })
  const stateDir = path.join(node.dir, 'state')
  assert.equal(fs.existsSync(stateDir), false)

  const first = await runDm(['id', '--config', node.configPath, '--json'])
  assert.equal(first.code, 0, first.stderr)
  const { peerId, addrs } = JSON.parse(first.stdout) as { peerId: string, addrs: string[] }
  assert.match(peerId, /^12D3KooW/)
  assert.deepEqual(addrs, [`/ip4/127.0.0.1/tcp/${node.port}/p2p/${peerId}`])
  const key = path.join(stateDir, 'identity.key')
  assert.equal((fs.statSync(key).mode & 0o777).toString(8), '600')
  const keyBytes = fs.readFileSync(key)

  const plain = await runDm(['id', '--config', node.configPath])
  assert.equal(plain.code, 0, plain.stderr)
  assert.equal(plain.stdout.split('\n')[0], peerId)
  assert.equal(JSON.parse((await runDm(['id', '--config', node.configPath, '--json'])).stdout).peerId, peerId)

  node.peerId = peerId
  await node.start()
  try {
    assert.equal((await node.api<{ peerId: string }>('/v1/status')).peerId, peerId)
  } finally {
    await node.stop()
  }
  assert.equal(JSON.parse((await runDm(['id', '--config', node.configPath, '--json'])).stdout).peerId, peerId)
  assert.deepEqual(fs.readFileSync(key), keyBytes)
  assert.equal((fs.statSync(key).mode & 0o777).toString(8), '600')
})

// ---------------------------------------------------------------- fleet restart

test('every node restarted at once: files intact and identical, and the mesh reforms', async () => {
  const c = await newCluster()
  for (let i = 0; i < 3; i++) await c.add()
  await Promise.all(c.nodes.map(async n => await n.start()))
  await Promise.all(c.nodes.map(async n => await waitFor(`${n.name} connected`, async () => (await n.connectedPeers()) > 0)))

  const hello = Buffer.from('before the restart ' + Date.now())
  const zone = Buffer.from('www IN CNAME web1\n')
  await c.nodes[1].submit(c.sign('hello.txt', hello), hello)
  await c.nodes[2].submit(c.sign('dns/cnames', zone), zone)
  await c.waitAll('hello.txt', hello)
  await c.waitAll('dns/cnames', zone)
  // The file lands on disk a moment before the index lists it (it flaked at load 11): wait for both entries.
  const listed = await waitFor('n0 lists both versions', async () => {
    const l = await c.nodes[0].api<Array<{ name: string, present: boolean }>>('/v1/versions')
    return l.length === 2 && l.every(e => e.present) ? l : undefined
  })

  await Promise.all(c.nodes.map(async n => await n.stop()))
  for (const n of c.nodes) assert.equal(n.proc!.exitCode, 0, n.log)
  await Promise.all(c.nodes.map(async n => await n.start()))

  for (const n of c.nodes) {
    assert.deepEqual(n.file('hello.txt'), hello, `${n.name} hello.txt`)
    assert.deepEqual(n.file('dns/cnames'), zone, `${n.name} dns/cnames`)
    assert.deepEqual(await n.api<unknown[]>('/v1/versions'), listed, `${n.name} index`)
  }
  await Promise.all(c.nodes.map(async n => await waitFor(`${n.name} reconnected`, async () => (await n.connectedPeers()) > 0)))
  const after = Buffer.from('after the restart ' + Date.now())
  await c.nodes[2].submit(c.sign('hello.txt', after), after)
  await c.waitAll('hello.txt', after)
})
