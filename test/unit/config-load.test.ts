import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { ConfigError, checkAddresses, loadConfig, parseConfig } from '../../src/config/load.js'
import { DEFAULT_API_SOCKET, DEFAULT_STATE_DIR, defaultConfig } from '../../src/config/config.js'
import { DmError } from '../../src/errors.js'
import { tempDir, testKey } from './helpers.js'

const K1 = Buffer.from(testKey(21).publicKey).toString('base64')
const K2 = Buffer.from(testKey(22).publicKey).toString('base64')
const PEER = '12D3KooWLPNruZ6cv4uxGsLL6dV9CXpuMK5yixXh7uVLyaHRbVAn'

/** Parses and returns the ConfigError's problems; fails if the config was accepted. */
function problems (toml: string): string[] {
  try {
    parseConfig(toml, '/etc/dm/dm.toml')
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`)
    assert.ok(err instanceof DmError)
    assert.equal(err.code, 'ERR_CONFIG')
    assert.equal(err.source, '/etc/dm/dm.toml')
    // The message is every problem, one per line, each prefixed with the source.
    assert.deepEqual(err.message.split('\n'), err.problems.map(p => `/etc/dm/dm.toml: ${p}`))
    return err.problems
  }
  assert.fail('config was accepted')
}

function onlyProblem (toml: string, re: RegExp): string {
  const ps = problems(toml)
  assert.equal(ps.length, 1, `expected one problem, got: ${ps.join(' | ')}`)
  assert.match(ps[0], re)
  return ps[0]
}

test('an empty config gives the defaults', () => {
  const cfg = parseConfig('', '/etc/dm/dm.toml')
  assert.deepEqual(cfg, defaultConfig())
  assert.equal(cfg.stateDir, DEFAULT_STATE_DIR)
  assert.equal(cfg.api.socket, DEFAULT_API_SOCKET)
})

test('a full valid config parses to the expected values', () => {
  const toml = `
state_dir = "/srv/dm"
log_level = "debug"
max_clock_skew_ms = 5000

[network]
id = "prod-fleet"
listen = ["/ip4/0.0.0.0/tcp/7000", "/ip6/::/tcp/7000"]
bootstrap = ["/dns4/seed.example.com/tcp/7946/p2p/${PEER}", "/ip4/10.0.0.1/tcp/7946/p2p/${PEER}"]
mdns = true
push_pull_interval_ms = 15000
push_fanout = 4
target_peers = 12

[api]
socket = "/run/dm/api.sock"

[metrics]
listen = "127.0.0.1:9464"

[files]
"dns/cnames" = ["${K1}", "${K2}"]
"a.b-c_d" = ["${K2}"]
`
  const cfg = parseConfig(toml, '/etc/dm/dm.toml')
  assert.equal(cfg.stateDir, '/srv/dm')
  assert.equal(cfg.logLevel, 'debug')
  assert.equal(cfg.maxClockSkewMs, 5000)
  assert.deepEqual(cfg.network, {
    id: 'prod-fleet',
    listen: ['/ip4/0.0.0.0/tcp/7000', '/ip6/::/tcp/7000'],
    bootstrap: [`/dns4/seed.example.com/tcp/7946/p2p/${PEER}`, `/ip4/10.0.0.1/tcp/7946/p2p/${PEER}`],
    mdns: true,
    profile: 'lan',
    certificate: ''
  })
  assert.equal(cfg.tuning.pushPullIntervalMs, 15000)
  assert.equal(cfg.tuning.pushFanout, 4)
  assert.equal(cfg.tuning.targetPeers, 12)
  assert.equal(cfg.tuning.maxConnections, 12 * 8 + 32, 'maxConnections follows target_peers')
  assert.equal(cfg.api.socket, '/run/dm/api.sock')
  assert.equal(cfg.metrics.listen, '127.0.0.1:9464')
  assert.deepEqual([...cfg.files.keys()], ['dns/cnames', 'a.b-c_d'])
  assert.deepEqual(cfg.files.get('dns/cnames'), [testKey(21).publicKey, testKey(22).publicKey])
  assert.deepEqual(cfg.files.get('a.b-c_d'), [testKey(22).publicKey])
})

test('bad TOML is one problem naming the line', () => {
  onlyProblem('state_dir = "/x"\n[network\nid = "y"\n', /^bad TOML at line 2/)
  onlyProblem('a = = 1', /^bad TOML/)
})

test('unknown keys are named, at every level', () => {
  const ps = problems('stat_dir = "/x"\n[network]\nidd = "n"\n[api]\nsock = "/s"\n[metrics]\nport = 1\n')
  assert.equal(ps.length, 4)
  assert.match(ps[0], /unknown key "stat_dir"/)
  assert.match(ps[0], /known: state_dir,/)
  assert.match(ps[1], /unknown key "network\.idd"/)
  assert.match(ps[2], /unknown key "api\.sock"/)
  assert.match(ps[3], /unknown key "metrics\.port"/)
})

test('signer keys: not base64, not 32 bytes, duplicates, empty list, not a list', () => {
  onlyProblem(`[files]\n"a" = ["not base64!"]\n`, /files\."a"\[0\]: key is not standard base64/)
  onlyProblem(`[files]\n"a" = ["${Buffer.alloc(31).toString('base64')}"]\n`, /files\."a"\[0\]: key decodes to 31 bytes, not 32/)
  onlyProblem(`[files]\n"a" = ["${K1}", "${K2}", "${K1}"]\n`, new RegExp(`files\\."a"\\[2\\]: duplicate signer ${K1.replace(/[+/]/g, '\\$&')}`))
  onlyProblem('[files]\n"a" = []\n', /files\."a": must be a non-empty list/)
  onlyProblem(`[files]\n"a" = "${K1}"\n`, /files\."a": must be a non-empty list/)
  onlyProblem('[files]\n"a" = [1]\n', /files\."a"\[0\]: key is not a string/)
})

test('bad file names are refused, including traversal', () => {
  for (const name of ['../x', '/etc/passwd', 'a//b', 'a/', 'a/../b', '.', 'héllo', 'a b']) {
    onlyProblem(`[files]\n${JSON.stringify(name)} = ["${K1}"]\n`, /bad name:/)
  }
  // An unquoted dotted key is a TOML sub-table, which is not a signer list.
  onlyProblem(`[files]\na.b = ["${K1}"]\n`, /files\."a": must be a non-empty list/)
})

test('"a" and "a/b" conflict: "a" would have to be a file and a directory', () => {
  const p = onlyProblem(`[files]\n"a" = ["${K1}"]\n"a/b" = ["${K1}"]\n`, /files\."a": is a file, but files\."a\/b" needs it as a directory/)
  assert.ok(p.length > 0)
  onlyProblem(`[files]\n"x/y/z" = ["${K1}"]\n"x" = ["${K1}"]\n`, /files\."x": is a file, but files\."x\/y\/z"/)
  // Siblings and shared prefixes that are not path prefixes are fine.
  assert.equal(parseConfig(`[files]\n"a/b" = ["${K1}"]\n"a/c" = ["${K1}"]\n"ab" = ["${K1}"]\n"a.b/c" = ["${K1}"]\n`).files.size, 4)
})

test('"a" and "a.sig/b" conflict in versions/, where "a" keeps its envelope', () => {
  onlyProblem(`[files]\n"a" = ["${K1}"]\n"a.sig/b" = ["${K1}"]\n`, /files\."a": its envelope is the file versions\/a\.sig/)
  // Without "a" itself, "a.sig/b" is an ordinary name.
  assert.equal(parseConfig(`[files]\n"a.sig/b" = ["${K1}"]\n"a.sig2" = ["${K1}"]\n`).files.size, 2)
})

test('bootstrap addresses must end in /p2p/<peer id>; listen addresses need not (shape check)', () => {
  onlyProblem('[network]\nbootstrap = ["/ip4/10.0.0.1/tcp/7946"]\n', /network\.bootstrap\[0\]: .* must end in \/p2p\/<peer id>/)
  onlyProblem('[network]\nbootstrap = ["/ip4/10.0.0.1/tcp/7946/p2p/"]\n', /network\.bootstrap\[0\]: .* must end in \/p2p\/<peer id>/)
  onlyProblem('[network]\nbootstrap = ["/ip4/10.0.0.1/tcp/7946/p2p/0OIl"]\n', /network\.bootstrap\[0\]: .* must end in \/p2p\/<peer id>/)
  onlyProblem('[network]\nbootstrap = ["10.0.0.1:7946"]\n', /network\.bootstrap\[0\]: .* is not a multiaddr/)
  onlyProblem('[network]\nlisten = ["0.0.0.0:7946"]\n', /network\.listen\[0\]: .* is not a multiaddr/)
  onlyProblem('[network]\nlisten = "/ip4/0.0.0.0/tcp/1"\n', /network\.listen: must be a list/)
  assert.deepEqual(parseConfig('[network]\nlisten = ["/ip4/127.0.0.1/tcp/0"]\n').network.listen, ['/ip4/127.0.0.1/tcp/0'])
})

test('checkAddresses parses every multiaddr and peer id fully', async () => {
  const parsed = (toml: string) => parseConfig(toml, '/etc/dm/dm.toml')
  await checkAddresses(parsed(`[network]\nlisten = ["/ip4/0.0.0.0/tcp/7946", "/ip6/::/tcp/7946"]\nbootstrap = ["/dns4/a.example/tcp/1/p2p/${PEER}"]\n`))
  await checkAddresses(defaultConfig())
  const cfg = parsed(`[network]\nlisten = ["/ip4/999.0.0.1/tcp/1", "/ip4/0.0.0.0/tcp/1"]\nbootstrap = ["/ip4/10.0.0.1/tcp/7946/p2p/notapeer", "/ip4/10.0.0.1/tcp/7946/p2p/${PEER}"]\n`)
  await assert.rejects(checkAddresses(cfg, '/etc/dm/dm.toml'), (err: unknown) => {
    assert.ok(err instanceof ConfigError)
    assert.equal(err.code, 'ERR_CONFIG')
    assert.equal(err.problems.length, 2, err.problems.join('\n'))
    assert.match(err.problems[0], /^network\.listen\[0\]: "\/ip4\/999\.0\.0\.1\/tcp\/1" is not a multiaddr/)
    assert.match(err.problems[1], /^network\.bootstrap\[0\]: .*notapeer/)
    return true
  })
})

test('scalar fields: types, ranges and enumerations', () => {
  onlyProblem('log_level = "loud"\n', /log_level: must be one of fatal, error/)
  onlyProblem('max_clock_skew_ms = -1\n', /max_clock_skew_ms: must be a whole number/)
  onlyProblem('max_clock_skew_ms = 1.5\n', /max_clock_skew_ms: must be a whole number/)
  onlyProblem('[network]\npush_fanout = 0\n', /network\.push_fanout: must be a whole number from 1 to 64/)
  onlyProblem('[network]\npush_pull_interval_ms = 99\n', /network\.push_pull_interval_ms/)
  onlyProblem('[network]\ntarget_peers = 257\n', /network\.target_peers/)
  onlyProblem('[network]\nmdns = "yes"\n', /network\.mdns: must be true or false/)
  onlyProblem('[network]\nprofile = "wan"\n', /network\.profile: must be one of lan, local/)
  onlyProblem('[network]\nid = ""\n', /network\.id: must not be empty/)
  onlyProblem('state_dir = 5\n', /state_dir: must be a string/)
  onlyProblem('network = 5\n', /"network" must be a table/)
  onlyProblem('[metrics]\nlisten = "9464"\n', /metrics\.listen: .* must be host:port/)
  // A central Prometheus may need another address: allowed when set explicitly (dm config check warns).
  assert.equal(parseConfig('[metrics]\nlisten = "0.0.0.0:9464"\n').metrics.listen, '0.0.0.0:9464')
  for (const ok of ['127.0.0.1:9464', 'localhost:1', '[::1]:9464', '']) {
    assert.equal(parseConfig(`[metrics]\nlisten = ${JSON.stringify(ok)}\n`).metrics.listen, ok)
  }
})

test('every problem is reported together', () => {
  const toml = `
bogus = 1
log_level = "loud"
[network]
bootstrap = ["/ip4/10.0.0.1/tcp/7946"]
push_fanout = 1000
[files]
"../x" = ["${K1}"]
"good" = ["AAAA"]
"dup" = ["${K1}", "${K1}"]
"p" = ["${K1}"]
"p/q" = ["${K1}"]
`
  const ps = problems(toml)
  const expected = [
    /unknown key "bogus"/,
    /log_level: must be one of/,
    /network\.bootstrap\[0\]/,
    /network\.push_fanout/,
    /files\."\.\.\/x": bad name/,
    /files\."good"\[0\]: key decodes to 3 bytes/,
    /files\."dup"\[1\]: duplicate signer/,
    /files\."p": is a file/
  ]
  assert.equal(ps.length, expected.length, ps.join('\n'))
  for (const re of expected) assert.ok(ps.some(p => re.test(p)), `no problem matches ${String(re)}:\n${ps.join('\n')}`)
})

test('loadConfig resolves relative paths against the config file\'s directory', () => {
  const { dir, cleanup } = tempDir()
  try {
    const sub = path.join(dir, 'etc', 'dm')
    fs.mkdirSync(sub, { recursive: true })
    const file = path.join(sub, 'dm.toml')
    fs.writeFileSync(file, 'state_dir = "state"\n[api]\nsocket = "../run/api.sock"\n')
    const cfg = loadConfig(file)
    assert.equal(cfg.stateDir, path.join(sub, 'state'))
    assert.equal(cfg.api.socket, path.join(dir, 'etc', 'run', 'api.sock'))
    // Absolute paths are kept.
    fs.writeFileSync(file, 'state_dir = "/var/lib/x"\n')
    assert.equal(loadConfig(file).stateDir, '/var/lib/x')
  } finally {
    cleanup()
  }
})

test('loadConfig: a missing file is ERR_CONFIG', () => {
  const { dir, cleanup } = tempDir()
  try {
    const file = path.join(dir, 'missing.toml')
    assert.throws(() => loadConfig(file), (err: unknown) => {
      assert.ok(err instanceof ConfigError)
      assert.equal(err.code, 'ERR_CONFIG')
      assert.match(err.problems[0], /no such file/)
      return true
    })
  } finally {
    cleanup()
  }
})

test('[[hooks]]: exactly one of name or prefix, an absolute program, a bounded timeout', () => {
  const cfg = parseConfig('[[hooks]]\nname = "dns/cnames"\nexec = ["/usr/bin/unbound-control", "reload"]\n[[hooks]]\nprefix = "deploy/"\nexec = ["/bin/true"]\ntimeout_ms = 500\n')
  assert.deepEqual(cfg.hooks, [
    { name: 'dns/cnames', prefix: undefined, exec: ['/usr/bin/unbound-control', 'reload'], timeoutMs: 60_000 },
    { name: undefined, prefix: 'deploy/', exec: ['/bin/true'], timeoutMs: 500 }
  ])
  onlyProblem('[[hooks]]\nexec = ["/bin/true"]\n', /hooks\[0\]: give exactly one of name or prefix/)
  onlyProblem('[[hooks]]\nname = "a"\nprefix = "b/"\nexec = ["/bin/true"]\n', /hooks\[0\]: give exactly one/)
  onlyProblem('[[hooks]]\nname = "a"\nexec = ["reload.sh"]\n', /hooks\[0\]\.exec: must start with the program's absolute path/)
  onlyProblem('[[hooks]]\nname = "../a"\nexec = ["/bin/true"]\n', /hooks\[0\]\.name: bad name/)
  onlyProblem('[[hooks]]\nname = "a"\nexec = ["/bin/true"]\ntimeout_ms = 1\n', /hooks\[0\]\.timeout_ms: must be a whole number/)
  onlyProblem('[[hooks]]\nname = "a"\nexec = ["/bin/true"]\nshell = true\n', /unknown key "hooks\[0\]\.shell"/)
})
