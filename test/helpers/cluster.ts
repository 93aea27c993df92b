import { spawn, execFile, type ChildProcess } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { generateKeyPairSync, createPublicKey } from 'node:crypto'
import { rawPublicKey, publicKeyToBase64, type SigningKey } from '../../src/crypto/keys.ts'
import { encodePublishBody } from '../../src/api/wire.ts'
import { apiRequest } from '../../src/api/client.ts'
import { networkIdFrom, newVersion, type SignedVersion } from '../../src/format/version.ts'
import { loadConfig } from '../../src/config/load.ts'
import { loadOrCreateIdentity } from '../../src/net/identity.ts'
import { waitFor } from './wait.ts'

/*
 * Real daemons as separate processes (the compiled bin/dm), on 127.0.0.1.
 * A daemon binds port 0 and reports the port it got over its API, so no port
 * is chosen in advance (no free-port race). Nothing here is mocked.
 */

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..')
export const DM = path.join(ROOT, 'bin/dm')

export function newSigningKey (dir: string, name: string): SigningKey & { path: string, base64: string } {
  const { privateKey } = generateKeyPairSync('ed25519')
  const file = path.join(dir, `${name}.pem`)
  fs.writeFileSync(file, privateKey.export({ format: 'pem', type: 'pkcs8' }), { mode: 0o600 })
  const publicKey = rawPublicKey(createPublicKey(privateKey))
  return { privateKey, publicKey, path: file, base64: publicKeyToBase64(publicKey) }
}

export interface RunResult { code: number, stdout: string, stderr: string }

export async function runDm (args: string[], opts: { cwd?: string } = {}): Promise<RunResult> {
  return await new Promise(resolve => {
    execFile(process.execPath, [DM, ...args], { cwd: opts.cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1
      resolve({ code, stdout, stderr })
    })
  })
}

export interface NodeOptions {
  /** [files] table: name -> base64 keys */
  files: Record<string, string[]>
  /** Nodes to bootstrap from, resolved to their addresses once they are listening. */
  bootstrapNodes?: TestNode[]
  networkId?: string
  pushPullIntervalMs?: number
  bootstrap?: string[]
  extra?: string
  maxClockSkewMs?: number
  /** Address to listen on (default 127.0.0.1), e.g. a test host's address inside a network namespace. */
  host?: string
  /** Command prefix for the daemon, e.g. ['ip', 'netns', 'exec', 'ns1'] or ['faketime', '+2m']. */
  wrap?: string[]
  /** Extra environment for the daemon. */
  env?: Record<string, string>
}

export class TestNode {
  /** The TCP port: 0 until the daemon first listens, then kept for restarts. */
  port: number
  readonly dir: string
  readonly configPath: string
  readonly socket: string
  proc: ChildProcess | undefined
  peerId = ''
  log = ''
  private exited: Promise<void> | undefined

  constructor (readonly name: string, port: number, root: string, private opts: NodeOptions) {
    this.port = port
    this.dir = path.join(root, name)
    fs.mkdirSync(this.dir, { recursive: true })
    this.configPath = path.join(this.dir, 'dm.toml')
    this.socket = path.join(this.dir, 'api.sock')
    this.writeConfig()
  }

  get addr (): string {
    if (this.port === 0) throw new Error(`${this.name} has not listened yet`)
    return `/ip4/${this.opts.host ?? '127.0.0.1'}/tcp/${this.port}/p2p/${this.peerId}`
  }
  get filesDir (): string { return path.join(this.dir, 'state', 'files') }
  get pid (): number | undefined { return this.proc?.pid }

  setOptions (patch: Partial<NodeOptions>): void {
    this.opts = { ...this.opts, ...patch }
    this.writeConfig()
  }

  writeConfig (): void {
    const o = this.opts
    const files = Object.entries(o.files).map(([n, keys]) => `${JSON.stringify(n)} = ${JSON.stringify(keys)}`).join('\n')
    fs.writeFileSync(this.configPath, [
      'state_dir = "state"',
      'log_level = "debug"',
      o.maxClockSkewMs !== undefined ? `max_clock_skew_ms = ${o.maxClockSkewMs}` : '',
      '[network]',
      `id = ${JSON.stringify(o.networkId ?? 'test-net')}`,
      `listen = ["/ip4/${o.host ?? '127.0.0.1'}/tcp/${this.port}"]`,
      `bootstrap = ${JSON.stringify([...(o.bootstrap ?? []), ...(o.bootstrapNodes ?? []).filter(n => n.port !== 0).map(n => n.addr)])}`,
      'profile = "local"',
      `push_pull_interval_ms = ${o.pushPullIntervalMs ?? 60_000}`,
      o.extra ?? '',
      '[api]',
      'socket = "api.sock"',
      '[files]',
      files,
      ''
    ].join('\n'))
  }

  /**
   * Creates the node's identity and learns its peer id before it starts, with the
   * code `dm id` runs, in this process: a `dm id` process per node cost every
   * start half a second (ops.test.ts covers `dm id` itself).
   */
  async identify (): Promise<void> {
    this.peerId = (await loadOrCreateIdentity(loadConfig(this.configPath).stateDir)).peerId.toString()
  }

  async start (): Promise<void> {
    if (this.peerId === '') await this.identify()
    const from = this.opts.bootstrapNodes ?? []
    await waitFor(`${this.name}'s bootstrap nodes listening`, () => from.every(n => n.port !== 0))
    this.writeConfig()
    this.log = ''
    const [cmd, ...args] = [...(this.opts.wrap ?? []), process.execPath, DM, 'daemon', '--config', this.configPath, '--log-format', 'json']
    const proc = spawn(cmd, args, { cwd: this.dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...this.opts.env } })
    this.proc = proc
    proc.stdout.on('data', (d: Buffer) => { this.log += d.toString() })
    proc.stderr.on('data', (d: Buffer) => { this.log += d.toString() })
    this.exited = new Promise(resolve => proc.once('exit', () => resolve()))
    // Ready when the API answers: the daemon opens it last.
    const status = await waitFor(`${this.name} ready`, async () => {
      if (proc.exitCode !== null) throw new Error(`${this.name} exited: ${this.log}`)
      return await this.api<{ listen: string[] }>('/v1/status').catch(() => undefined)
    }, 20_000)
    if (this.port === 0) {
      this.port = Number(/\/tcp\/(\d+)/.exec(status.listen[0])?.[1])
      this.writeConfig()
    }
  }

  /** SIGTERM and wait, or SIGKILL when `hard`. */
  async stop (hard = false): Promise<void> {
    if (this.proc === undefined || this.proc.exitCode !== null || this.proc.signalCode !== null) return
    this.proc.kill(hard ? 'SIGKILL' : 'SIGTERM')
    await this.exited
  }

  file (name: string): Buffer | undefined {
    try { return fs.readFileSync(path.join(this.filesDir, name)) } catch { return undefined }
  }

  async hasFile (name: string, content: Uint8Array): Promise<boolean> {
    return this.file(name)?.equals(content) === true
  }

  async api<T> (route: string): Promise<T> {
    return await apiRequest<T>(this.socket, 'GET', route)
  }

  /** Hands an already signed version to this daemon's API (as dm publish does). */
  async submit (v: SignedVersion, content: Uint8Array): Promise<void> {
    await apiRequest(this.socket, 'POST', '/v1/versions', encodePublishBody(v, content))
  }

  /** The daemon's JSON log lines since offset `from` of `log`: tests read their fields (code, name), not their text. */
  logLines (from = 0): LogLine[] {
    return this.log.slice(from).split('\n').flatMap(l => {
      try { return [JSON.parse(l) as LogLine] } catch { return [] }
    })
  }

  async connectedPeers (): Promise<number> {
    return (await this.api<{ peersConnected: number }>('/v1/status')).peersConnected
  }
}

export type LogLine = Record<string, unknown> & { msg?: string, code?: string, err?: string }

export class Cluster {
  readonly root: string
  readonly nodes: TestNode[] = []
  readonly key: ReturnType<typeof newSigningKey>

  constructor (prefix = 'dm-test-') {
    // One level below a private directory, so a test can check that nothing escaped even one level up.
    this.root = path.join(fs.mkdtempSync(path.join(os.tmpdir(), prefix)), 'cluster')
    fs.mkdirSync(this.root)
    this.key = newSigningKey(this.root, 'publisher')
  }

  /** Adds a node; it bootstraps from the first node unless told otherwise. */
  async add (opts: Partial<NodeOptions> = {}): Promise<TestNode> {
    const node = new TestNode(`n${this.nodes.length}`, 0, this.root, {
      files: opts.files ?? { 'hello.txt': [this.key.base64], 'dns/cnames': [this.key.base64] },
      ...opts,
      bootstrapNodes: opts.bootstrap === undefined && this.nodes.length > 0 ? [this.nodes[0]] : opts.bootstrapNodes
    })
    await node.identify()
    this.nodes.push(node)
    return node
  }

  /** Starts n nodes bootstrapping from the first and waits until each has a peer. */
  static async start (n: number, opts: Partial<NodeOptions> = {}): Promise<Cluster> {
    const c = new Cluster()
    for (let i = 0; i < n; i++) await c.add(opts)
    await Promise.all(c.nodes.map(async node => await node.start()))
    await Promise.all(c.nodes.map(async node => await waitFor(`${node.name} connected`, async () => (await node.connectedPeers()) > 0)))
    return c
  }

  sign (name: string, content: Uint8Array | undefined, timestampMs = Date.now(), key = this.key, networkId = 'test-net'): SignedVersion {
    return newVersion({ name, content, networkId: networkIdFrom(networkId), privateKey: key.privateKey, signer: key.publicKey, timestampMs })
  }

  async waitAll (name: string, content: Uint8Array, nodes = this.nodes, timeoutMs = 15_000): Promise<void> {
    await Promise.all(nodes.map(async n => await waitFor(`${name} on ${n.name}`, async () => await n.hasFile(name, content), timeoutMs)))
  }

  async stop (): Promise<void> {
    await Promise.all(this.nodes.map(async n => await n.stop()))
    fs.rmSync(path.dirname(this.root), { recursive: true, force: true })
  }
}
