// Syncthing devices (Debian's `syncthing`, 1.19) as a same-run baseline for
// bigfile.mjs: devices on 127.0.0.1 that share one folder, every device
// knowing every other by address; discovery, relays, NAT traversal, usage
// and crash reporting and the file-system watcher are off, and rescans are
// hourly, so a change is picked up only by the scan the benchmark asks for
// over REST: Syncthing's best case. Install: scripts/install-system-deps.sh.
import { execFileSync, spawn } from 'node:child_process'
import crypto from 'node:crypto'
import fs from 'node:fs'
import http from 'node:http'
import path from 'node:path'
import { CHILD_ENV, freePort, missed, track, waitFor } from './lib.mjs'

export const FOLDER = 'bench'

export function syncthingBinary () {
  try { return fs.realpathSync(execFileSync('sh', ['-c', 'command -v syncthing'], { encoding: 'utf8' }).trim()) } catch {
    throw new Error('syncthing is not installed: run scripts/install-system-deps.sh (Debian package syncthing)')
  }
}

const xml = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

export class SyncthingDevice {
  constructor (root, index) {
    this.index = index
    this.name = `st${index}`
    this.home = path.join(root, this.name)
    this.filesDir = path.join(this.home, 'folder')
    this.apiKey = crypto.randomBytes(16).toString('hex')
    this.proc = undefined
    this.output = ''
  }

  get pid () { return this.proc?.pid }
  get running () { return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null }
  file (name) {
    try { return fs.readFileSync(path.join(this.filesDir, name)) } catch { return undefined }
  }

  /** Keys and certificate (`syncthing generate`), ports; reads the device ID. */
  async generate (bin) {
    fs.mkdirSync(this.filesDir, { recursive: true })
    fs.mkdirSync(path.join(this.filesDir, '.stfolder'))
    execFileSync(bin, ['generate', `--home=${this.home}`], { env: { ...CHILD_ENV, STNODEFAULTFOLDER: '1' }, stdio: 'ignore' })
    const out = execFileSync(bin, ['--device-id', `--home=${this.home}`], { encoding: 'utf8', env: CHILD_ENV })
    const id = out.match(/[A-Z2-7]{7}(?:-[A-Z2-7]{7}){7}/)
    if (id === null) throw new Error(`no device ID from syncthing --device-id:\n${out}`)
    this.id = id[0]
    this.port = await freePort()
    this.guiPort = await freePort()
  }

  /** Replaces the generated config with one that shares FOLDER with all `devices`. */
  writeConfig (devices) {
    const deviceXml = devices.map(d =>
      `  <device id="${d.id}" name="${d.name}" compression="metadata" introducer="false" skipIntroductionRemovals="false" introducedBy="">\n` +
      `    <address>tcp://127.0.0.1:${d.port}</address>\n    <paused>false</paused>\n    <autoAcceptFolders>false</autoAcceptFolders>\n  </device>`).join('\n')
    const folderDevices = devices.map(d => `    <device id="${d.id}" introducedBy=""></device>`).join('\n')
    fs.writeFileSync(path.join(this.home, 'config.xml'), `<configuration version="36">
  <folder id="${FOLDER}" label="${FOLDER}" path="${xml(this.filesDir)}" type="sendreceive" rescanIntervalS="3600" fsWatcherEnabled="false" fsWatcherDelayS="10" ignorePerms="false" autoNormalize="true">
${folderDevices}
    <minDiskFree unit="%">0</minDiskFree>
  </folder>
${deviceXml}
  <gui enabled="true" tls="false" debugging="false">
    <address>127.0.0.1:${this.guiPort}</address>
    <apikey>${this.apiKey}</apikey>
  </gui>
  <options>
    <listenAddress>tcp://127.0.0.1:${this.port}</listenAddress>
    <globalAnnounceEnabled>false</globalAnnounceEnabled>
    <localAnnounceEnabled>false</localAnnounceEnabled>
    <relaysEnabled>false</relaysEnabled>
    <natEnabled>false</natEnabled>
    <startBrowser>false</startBrowser>
    <urAccepted>-1</urAccepted>
    <autoUpgradeIntervalH>0</autoUpgradeIntervalH>
    <crashReportingEnabled>false</crashReportingEnabled>
  </options>
</configuration>
`)
  }

  start (bin) {
    // STMONITORED: run as one process. Without it Syncthing forks a worker
    // under a monitor process (even with --no-restart), and the worker's CPU
    // would count as other people's load here.
    const env = { ...CHILD_ENV, STNOUPGRADE: '1', STNODEFAULTFOLDER: '1', STMONITORED: 'yes' }
    this.proc = track(spawn(bin, ['serve', `--home=${this.home}`, '--no-browser', '--no-restart', '--no-upgrade'], { env, stdio: ['ignore', 'pipe', 'pipe'] }))
    const keep = (d) => { this.output = (this.output + d).slice(-16384) }
    this.proc.stdout.on('data', keep)
    this.proc.stderr.on('data', keep)
    this.exited = new Promise(resolve => this.proc.once('exit', () => resolve()))
  }

  /** One REST call; resolves to the parsed JSON answer (or the text). */
  async rest (method, route, timeoutMs = 10_000) {
    return await new Promise((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port: this.guiPort, method, path: route, headers: { 'X-API-Key': this.apiKey }, agent: false }, res => {
        const parts = []
        res.on('data', c => parts.push(c))
        res.on('end', () => {
          const text = Buffer.concat(parts).toString('utf8')
          if (res.statusCode >= 400) { reject(new Error(`${this.name} ${method} ${route}: HTTP ${res.statusCode}: ${text.slice(0, 200)}`)); return }
          try { resolve(JSON.parse(text)) } catch { resolve(text) }
        })
        res.on('error', reject)
      })
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${this.name} ${method} ${route}: no answer within ${timeoutMs} ms`)))
      req.on('error', reject)
      req.end()
    })
  }

  /** Asks for a scan of one file of the folder, as soon as it is there. */
  async scan (file) { await this.rest('POST', `/rest/db/scan?folder=${FOLDER}&sub=${encodeURIComponent(file)}`) }

  async stop () {
    if (!this.running) return
    this.proc.kill('SIGTERM')
    const late = await missed(this.exited, 10_000)
    if (late) { this.proc.kill('SIGKILL'); await this.exited }
  }
}

/** `n` devices sharing FOLDER, started, connected to each other, their folder idle. */
export async function startSyncthing (root, n) {
  const bin = syncthingBinary()
  const devices = Array.from({ length: n }, (_, i) => new SyncthingDevice(root, i))
  for (const d of devices) await d.generate(bin)
  for (const d of devices) d.writeConfig(devices)
  for (const d of devices) d.start(bin)
  const alive = (d) => { if (!d.running) throw new Error(`syncthing ${d.name} exited:\n${d.output}`) }
  for (const d of devices) {
    await waitFor(`syncthing ${d.name} REST`, async () => { alive(d); return (await d.rest('GET', '/rest/system/ping').catch(() => undefined))?.ping === 'pong' }, { timeoutMs: 60_000, pollMs: 100 })
  }
  for (const d of devices) {
    await waitFor(`syncthing ${d.name} connected to all`, async () => {
      alive(d)
      const c = (await d.rest('GET', '/rest/system/connections')).connections
      return devices.filter(o => o !== d).every(o => c[o.id]?.connected === true)
    }, { timeoutMs: 60_000, pollMs: 200 })
    await waitFor(`syncthing ${d.name} folder idle`, async () => (await d.rest('GET', `/rest/db/status?folder=${FOLDER}`)).state === 'idle', { timeoutMs: 60_000, pollMs: 200 })
  }
  return { devices, version: execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim() }
}
