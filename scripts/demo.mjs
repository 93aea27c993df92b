#!/usr/bin/env node
// The README's demo: three daemons on 127.0.0.1 in a temporary directory,
// a file signed and published on one, shown arriving on the other two.
// Uses only the `dm` CLI, exactly as an operator would. Cleans up on exit.
import { spawn, execFileSync } from 'node:child_process'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'

const DM = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'bin', 'dm')
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dm-demo-'))
const daemons = []
const dm = (...args) => execFileSync(process.execPath, [DM, ...args], { encoding: 'utf8' }).trim()
const say = (s) => console.log(`\n== ${s}`)

function cleanup () {
  for (const d of daemons) d.kill('SIGTERM')
  fs.rmSync(root, { recursive: true, force: true })
}
process.on('exit', cleanup)
process.on('SIGINT', () => process.exit(130))

async function freePort () {
  return await new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)) })
  })
}

async function until (what, check, ms = 15000) {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await new Promise(r => setTimeout(r, 20))
  }
}

say(`working in ${root}`)
const keyFile = path.join(root, 'publisher.pem')
const pub = dm('keygen', '--out', keyFile)
console.log(`signing key ${keyFile}, public key ${pub}`)

const nodes = []
for (let i = 1; i <= 3; i++) {
  const dir = path.join(root, `node${i}`)
  fs.mkdirSync(dir)
  nodes.push({ dir, config: path.join(dir, 'dm.toml'), port: await freePort() })
}
const writeConfig = (n, bootstrap) => fs.writeFileSync(n.config, `state_dir = "state"
log_level = "warn"
[network]
id = "demo"
listen = ["/ip4/127.0.0.1/tcp/${n.port}"]
bootstrap = ${JSON.stringify(bootstrap)}
[api]
socket = "api.sock"
[files]
"motd.txt" = ["${pub}"]
`)
writeConfig(nodes[0], [])
const first = JSON.parse(dm('id', '--config', nodes[0].config, '--json')).addrs[0]
for (const n of nodes.slice(1)) writeConfig(n, [first])
say(`node1 is ${first}; node2 and node3 bootstrap from it`)

for (const n of nodes) {
  const p = spawn(process.execPath, [DM, 'daemon', '--config', n.config], { cwd: n.dir, stdio: ['ignore', 'ignore', 'inherit'] })
  daemons.push(p)
}
await until('the daemons', () => nodes.every(n => fs.existsSync(path.join(n.dir, 'api.sock'))))
await until('the mesh', () => nodes.every(n => JSON.parse(dm('status', '--config', n.config, '--json')).peersConnected > 0))
console.log(dm('status', '--config', nodes[1].config))

const motd = path.join(root, 'motd.txt')
fs.writeFileSync(motd, `Hello from the mesh, ${new Date().toISOString()}\n`)
say('dm publish motd.txt on node1')
const t0 = Date.now()
console.log(dm('publish', motd, '--key', keyFile, '--config', nodes[0].config))
await until('replication', () => nodes.every(n => {
  try { return fs.readFileSync(path.join(n.dir, 'state/files/motd.txt'), 'utf8') === fs.readFileSync(motd, 'utf8') } catch { return false }
}))
say(`present on all three nodes ${Date.now() - t0} ms after publishing started`)
for (const [i, n] of nodes.entries()) {
  console.log(`node${i + 1}: ${path.join(n.dir, 'state/files/motd.txt')}: ${fs.readFileSync(path.join(n.dir, 'state/files/motd.txt'), 'utf8').trim()}`)
}
say('dm list on node3')
console.log(dm('list', '--config', nodes[2].config))
say('done; stopping the daemons and removing the temporary directory')
process.exit(0)
