import { test } from 'node:test'
import assert from 'node:assert/strict'
import { editDistance, nearest, parse, type Command } from '../../src/cli/command.js'
import { parseDuration } from '../../src/cli/duration.js'
import { EXIT, exitStatus } from '../../src/cli/exit.js'
import { dialableAddrs, type Interfaces } from '../../src/cli/addrs.js'
import { rootOnlyDefaults } from '../../src/cli/config-check.js'
import { explainAccessError } from '../../src/cli/access.js'
import { defaultConfig, DEFAULT_CONFIG_PATH } from '../../src/config/config.js'
import { DmError } from '../../src/errors.js'
import { configOption } from '../../src/cli/command.js'
import { dmError } from './helpers.js'

const cmd: Command = {
  summary: 's',
  usage: 'dm x',
  options: { ...configOption, name: { type: 'string', short: 'n', description: 'd' }, force: { type: 'boolean', short: 'f', description: 'd' } },
  positionals: { min: 0, max: 1 },
  run: async () => 0
}

test('an unknown option is refused with the nearest known one suggested', () => {
  assert.equal(editDistance('nmae', 'name'), 1, 'a swap is one step')
  assert.equal(nearest('nmae', ['name', 'network', 'config']), 'name')
  assert.equal(nearest('zzzzzz', ['name', 'config']), undefined)
  assert.throws(() => parse(cmd, ['--nmae', 'x']), dmError('ERR_USAGE', /did you mean --name\?/))
  assert.throws(() => parse(cmd, ['--confg=x']), dmError('ERR_USAGE', /did you mean --config\?/))
  assert.throws(() => parse(cmd, ['--frobnicate']), (err: unknown) => err instanceof DmError && err.code === 'ERR_USAGE' && !/did you mean/.test(err.message))
  assert.throws(() => parse(cmd, ['-x']), dmError('ERR_USAGE'))
  assert.equal(parse(cmd, ['-fn', 'a']).values.name, 'a', 'short flags combine; a string short takes the rest')
  assert.equal(parse(cmd, ['--', '--nmae']).positionals[0], '--nmae', 'after -- nothing is an option')
})

test('DM_CONFIG is the default for --config; --config wins over it', () => {
  const saved = process.env.DM_CONFIG
  try {
    delete process.env.DM_CONFIG
    assert.equal(parse(cmd, []).values.config, DEFAULT_CONFIG_PATH)
    process.env.DM_CONFIG = '/home/me/dm.toml'
    assert.equal(parse(cmd, []).values.config, '/home/me/dm.toml')
    assert.equal(parse(cmd, ['-c', '/x.toml']).values.config, '/x.toml')
  } finally {
    if (saved === undefined) delete process.env.DM_CONFIG
    else process.env.DM_CONFIG = saved
  }
})

test('durations: plain seconds and units', () => {
  const table: Array<[string, number]> = [['30', 30], ['30s', 30], ['15m', 900], ['4h', 14_400], ['90d', 7_776_000], ['2w', 1_209_600], ['1h30m', 5400]]
  for (const [text, s] of table) assert.equal(parseDuration(text, 'ttl'), s, text)
  for (const bad of ['', '0', '0s', '4x', 'h', '-5', '1.5h', '4 h']) assert.throws(() => parseDuration(bad, 'ttl'), dmError('ERR_USAGE', /--ttl/), bad)
})

test('exit statuses follow the one table', () => {
  assert.equal(exitStatus(new DmError('ERR_USAGE', '')), EXIT.usage)
  assert.equal(exitStatus(new DmError('ERR_DAEMON_UNREACHABLE', '')), EXIT.noDaemon)
  assert.equal(exitStatus(new DmError('ERR_NOT_FOUND', '')), EXIT.notFound)
  assert.equal(exitStatus(new DmError('ERR_STALE', '')), EXIT.failed)
  assert.equal(exitStatus(new Error('x')), EXIT.failed)
  assert.deepEqual(Object.values(EXIT), [0, 1, 2, 3, 4, 5, 6])
})

test('dm id: 0.0.0.0 and :: become the interface addresses; no usable address is reported, not hidden', () => {
  const ifaces: Interfaces = {
    lo: [{ address: '127.0.0.1', family: 'IPv4', internal: true }, { address: '::1', family: 'IPv6', internal: true }],
    eth0: [{ address: '10.0.0.5', family: 'IPv4', internal: false }, { address: 'fe80::1', family: 'IPv6', internal: false }, { address: '2001:db8::5', family: 6, internal: false }],
    wlan0: [{ address: '192.168.1.9', family: 4, internal: false }]
  }
  const { addrs, unresolved } = dialableAddrs(['/ip4/0.0.0.0/tcp/7946', '/ip6/::/tcp/7946', '/ip4/127.0.0.1/tcp/9'], 'PEER', ifaces)
  assert.deepEqual(addrs, [
    '/ip4/10.0.0.5/tcp/7946/p2p/PEER',
    '/ip4/192.168.1.9/tcp/7946/p2p/PEER',
    '/ip6/2001:db8::5/tcp/7946/p2p/PEER',
    '/ip4/127.0.0.1/tcp/9/p2p/PEER'
  ])
  assert.deepEqual(unresolved, [])
  const none = dialableAddrs(['/ip4/0.0.0.0/tcp/7946'], 'PEER', { lo: ifaces.lo })
  assert.deepEqual(none.unresolved, ['/ip4/0.0.0.0/tcp/7946'])
  assert.deepEqual(none.addrs, ['/ip4/0.0.0.0/tcp/7946/p2p/PEER'])
})

test('dm config check warns a non-root user about defaults only root can create', () => {
  const cfg = defaultConfig()
  const cannot = { uid: 1000, canWrite: () => false }
  const warnings = rootOnlyDefaults(cfg, 'dm.toml', cannot)
  assert.equal(warnings.length, 2)
  assert.match(warnings[0], /^state_dir /)
  assert.match(warnings[1], /^api\.socket /)
  assert.deepEqual(rootOnlyDefaults(cfg, 'dm.toml', { uid: 0, canWrite: () => false }), [], 'root needs no warning')
  assert.deepEqual(rootOnlyDefaults(cfg, 'dm.toml', { uid: 1000, canWrite: () => true }), [], 'a user who can write there needs none')
  const mine = { ...cfg, stateDir: '/home/me/dm/state', api: { socket: '/home/me/dm/api.sock' } }
  assert.deepEqual(rootOnlyDefaults(mine, 'dm.toml', cannot), [], 'paths set in the config are not defaults')
})

test('EACCES on state_dir or the socket directory names the config key', () => {
  const cfg = { ...defaultConfig(), stateDir: '/var/lib/data-mesher', api: { socket: '/run/data-mesher/api.sock' } }
  const eacces = (p: string): NodeJS.ErrnoException => Object.assign(new Error(`EACCES: permission denied, mkdir '${p}'`), { code: 'EACCES', path: p, syscall: 'mkdir' })
  const state = explainAccessError(eacces('/var/lib/data-mesher'), cfg, 'dm.toml')
  assert.ok(state instanceof DmError && state.code === 'ERR_PERMISSION' && state.message.startsWith('state_dir: '))
  const inside = explainAccessError(eacces('/var/lib/data-mesher/files'), cfg, 'dm.toml')
  assert.ok(inside instanceof DmError && inside.message.startsWith('state_dir: '))
  const sock = explainAccessError(eacces('/run/data-mesher'), cfg, 'dm.toml')
  assert.ok(sock instanceof DmError && sock.code === 'ERR_PERMISSION' && sock.message.startsWith('api.socket: '))
  const other = eacces('/etc/shadow')
  assert.equal(explainAccessError(other, cfg, 'dm.toml'), other, 'unrelated paths pass through')
})
