import { test } from 'node:test'
import assert from 'node:assert/strict'
import { createReloadRecord } from '../../src/daemon/reload-record.ts'
import { ConfigError } from '../../src/config/load.ts'
import { DmError } from '../../src/errors.ts'

test('the reload record: a reload that takes counts and clears the failure; one refused whole keeps the config in force; a certificate that does not load is kept with its code', () => {
  let now = 1000
  const r = createReloadRecord(() => now)
  assert.deepEqual(r.info(), { loadedAtMs: 1000, reloads: 0, lastReloadError: null })

  now = 2000
  r.failed(new ConfigError('dm.toml', ['bad TOML at line 2', 'files."x": must be a list']))
  assert.deepEqual(r.info(), { loadedAtMs: 1000, reloads: 0, lastReloadError: { code: 'ERR_CONFIG', reason: 'dm.toml: bad TOML at line 2\ndm.toml: files."x": must be a list', atMs: 2000 } })

  now = 3000
  r.took(new DmError('ERR_CERT_INVALID', 'vouches for another key'))
  assert.deepEqual(r.info(), { loadedAtMs: 3000, reloads: 1, lastReloadError: { code: 'ERR_CERT_INVALID', reason: 'vouches for another key', atMs: 3000 } })

  now = 4000
  r.took()
  assert.deepEqual(r.info(), { loadedAtMs: 4000, reloads: 2, lastReloadError: null })
})
