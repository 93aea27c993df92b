import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseConfig } from '../../src/config/load.ts'
import { defaultConfig } from '../../src/config/config.ts'

const example = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../config.example.toml')
const text = fs.readFileSync(example, 'utf8')

test('config.example.toml is a valid config whose values are the defaults', () => {
  const cfg = parseConfig(text, example)
  const def = defaultConfig()
  assert.equal(cfg.stateDir, def.stateDir)
  assert.equal(cfg.logLevel, def.logLevel)
  assert.equal(cfg.maxClockSkewMs, def.maxClockSkewMs)
  assert.deepEqual(cfg.network, def.network)
  assert.deepEqual(cfg.api, def.api)
  assert.deepEqual(cfg.metrics, def.metrics)
})

test('config.example.toml documents every key the loader knows', () => {
  // Every key the loader accepts must appear (set or commented) in the example.
  const source = fs.readFileSync(path.resolve(path.dirname(example), 'src/config/load.ts'), 'utf8')
  const known = [...source.matchAll(/v\.known\([^,]+, '[^']*', \[([^\]]+)\]\)/g)].flatMap(m => [...m[1].matchAll(/'([a-z_]+)'/g)].map(k => k[1]))
  assert.ok(known.length >= 12, `found ${known.length} keys in the loader`)
  for (const key of known) assert.match(text, new RegExp(`^(# )?(\\[${key}\\]|${key} =)`, 'm'), `${key} is not in config.example.toml`)
})
