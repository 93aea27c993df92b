import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { knownKeys, parseConfig } from '../../src/config/load.ts'
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
  assert.deepEqual(cfg.tuning, def.tuning)
})

test('config.example.toml documents every key the loader knows', () => {
  // Every key the schema accepts must appear (set or commented) in the example, under its table.
  const known = knownKeys()
  assert.ok(known.length >= 15, `found ${known.length} keys in the schema`)
  for (const key of known) {
    const leaf = key.split('.').at(-1) as string
    assert.match(text, new RegExp(`^(# )?(\\[\\[?${leaf}\\]\\]?|${leaf} =)`, 'm'), `${key} is not in config.example.toml`)
  }
})
