import { checkAddresses, loadConfig } from '../config/load.js'
import { DmError } from '../errors.js'
import { notifySystemd } from '../daemon/notify.js'
import { LOG_FORMATS, type LogFormat } from '../config/config.js'
import { explainAccessError } from './access.js'
import { dialableAddrs } from './addrs.js'
import { configOption, jsonOption, str, type Command } from './command.js'
import { printJson, warn } from './output.js'

/** How often the systemd status line is brought up to date. */
const STATUS_REFRESH_MS = 5000

function statusLine (d: { files: () => number, health: () => { state: string, reasons: string[] } }): string {
  const h = d.health()
  return h.state === 'ok' ? `serving ${d.files()} files` : `degraded: ${h.reasons.join('; ')}`
}

export const daemon: Command = {
  summary: 'run the mesh daemon (systemd runs this)',
  usage: 'dm daemon [--config PATH] [--log-format FORMAT]',
  details: 'Joins the mesh, replicates the files listed in [files] into <state_dir>/files/,\nand serves the local API on [api] socket. Stops cleanly on SIGTERM or SIGINT;\nSIGHUP re-reads [files], log_level and max_clock_skew_ms.',
  options: { ...configOption, 'log-format': { type: 'string', value: 'FORMAT', default: 'auto', description: 'json (one object per line; time in ms since the epoch), pretty, or auto (pretty on a terminal)' } },
  positionals: { min: 0, max: 0 },
  async run (args) {
    const format = str(args, 'log-format') as LogFormat
    if (!LOG_FORMATS.includes(format)) throw new DmError('ERR_USAGE', `--log-format must be one of ${LOG_FORMATS.join(', ')}`)
    const path = str(args, 'config') as string
    const config = loadConfig(path)
    await checkAddresses(config, path)
    await import('../polyfill.js')
    const { startDaemon } = await import('../daemon/daemon.js')
    const d = await startDaemon(config, format).catch(err => { throw explainAccessError(err, config, path) })
    const stopped = new Promise<void>(resolve => {
      const stop = (): void => { void d.stop().finally(resolve) }
      process.once('SIGTERM', stop)
      process.once('SIGINT', stop)
    })
    process.on('SIGHUP', () => d.reload(path))
    // Ready only once the handlers are in place: systemd may send reload or stop right after.
    await notifySystemd('--ready', `--status=${statusLine(d)}`).catch(err => warn(`cannot notify systemd: ${(err as Error).message}`))
    // The status line follows the health judgement, so `systemctl status` shows a degraded node as such.
    let shown = statusLine(d)
    const watch = setInterval(() => {
      const line = statusLine(d)
      if (line !== shown) { shown = line; void notifySystemd(`--status=${line}`).catch(() => {}) }
    }, STATUS_REFRESH_MS)
    watch.unref()
    await stopped
    clearInterval(watch)
    return 0
  }
}

export const id: Command = {
  summary: 'print this node\'s peer id and dialable addresses (creates the identity if missing)',
  usage: 'dm id [--config PATH] [--json]',
  details: 'Prints the addresses other nodes should list in [network] bootstrap: a listen\naddress on 0.0.0.0 or :: is replaced by this machine\'s interface addresses.\nWorks before the daemon has ever run.',
  options: { ...configOption, ...jsonOption },
  positionals: { min: 0, max: 0 },
  async run (args) {
    const path = str(args, 'config') as string
    const config = loadConfig(path)
    await import('../polyfill.js')
    const { loadOrCreateIdentity } = await import('../net/identity.js')
    const identity = await loadOrCreateIdentity(config.stateDir).catch(err => { throw explainAccessError(err, config, path) })
    const peerId = identity.peerId.toString()
    const { addrs, unresolved } = dialableAddrs(config.network.listen, peerId)
    for (const a of unresolved) warn(`${a} listens on every interface but none has an address; replace the host with this node's reachable address`)
    if (args.values.json === true) printJson({ peerId, addrs })
    else process.stdout.write(`${peerId}\n${addrs.map(a => `  ${a}\n`).join('')}`)
    return 0
  }
}
