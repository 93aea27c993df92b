import fs from 'node:fs'
import path from 'node:path'
import { DEFAULT_API_SOCKET, DEFAULT_STATE_DIR, type Config } from '../config/config.js'
import { checkAddresses, isLoopbackListen, loadConfig } from '../config/load.js'
import { configOption, str, type Command } from './command.js'
import { warn } from './output.js'

export interface Who {
  uid: number
  /** Whether this user may create entries in `dir`. */
  canWrite: (dir: string) => boolean
}

function canWriteDir (dir: string): boolean {
  try { fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK); return true } catch { return false }
}

const currentUser: Who = { uid: process.getuid?.() ?? 0, canWrite: canWriteDir }

/** The directory that would have to be written to create `p`: `p` itself if it exists, else its nearest existing parent. */
function nearestExisting (p: string): string {
  for (let d = p; ; d = path.dirname(d)) {
    if (fs.existsSync(d) || d === path.dirname(d)) return d
  }
}

/**
 * Warnings for a non-root user whose config keeps a default path only root
 * can create (state_dir, api.socket): the daemon would fail with EACCES.
 */
export function rootOnlyDefaults (cfg: Config, configPath: string, who: Who = currentUser): string[] {
  if (who.uid === 0) return []
  const out: string[] = []
  const check = (key: string, value: string, def: string, dir: string, example: string): void => {
    if (value === def && !who.canWrite(nearestExisting(dir))) {
      out.push(`${key} is the default ${def}, which needs root; to try without root set ${example} in ${configPath}`)
    }
  }
  check('state_dir', cfg.stateDir, DEFAULT_STATE_DIR, cfg.stateDir, 'state_dir = "state"')
  check('api.socket', cfg.api.socket, DEFAULT_API_SOCKET, path.dirname(cfg.api.socket), 'socket = "run/api.sock" under [api]')
  return out
}

export const configCheck: Command = {
  summary: 'validate a config file',
  usage: 'dm config check [--config PATH]',
  details: 'Prints one line per mistake, naming the key, and exits 1 if there is any.\nWarns (exit 0) when a default path needs root and you are not root, or about risky\npermissions of an existing state directory; exits 1 on one the daemon would refuse.',
  options: configOption,
  positionals: { min: 0, max: 0 },
  async run (args) {
    const file = str(args, 'config') as string
    const cfg = loadConfig(file)
    await checkAddresses(cfg, file)
    for (const w of rootOnlyDefaults(cfg, file)) warn(w)
    if (cfg.metrics.listen !== '' && !isLoopbackListen(cfg.metrics.listen)) {
      warn(`metrics.listen: ${cfg.metrics.listen} is reachable from other machines: /metrics shows the names held, their ages and the peer counts; let only your Prometheus reach it (firewall)`)
    }
    // Permissions and filesystems of an existing state directory: what the daemon would refuse (exit 1) or warn about.
    let fatal = false
    if (fs.existsSync(cfg.stateDir)) {
      const { inspectStateDir } = await import('../store/state-dir.js')
      for (const f of await inspectStateDir(cfg.stateDir)) {
        fatal ||= f.fatal
        warn(`${f.fatal ? 'error' : 'warning'}: ${f.message}`)
      }
    }
    process.stdout.write(`${file}: OK (network "${cfg.network.id}", ${cfg.files.size} file name${cfg.files.size === 1 ? '' : 's'} allowed${cfg.namespaces.size > 0 ? `, ${cfg.namespaces.size} namespace${cfg.namespaces.size === 1 ? '' : 's'}` : ''})\n`)
    process.stdout.write(cfg.network.key === undefined
      ? 'mesh: open: no [network] key, so any node that knows the network id may join, read every file and learn every member\n'
      : `mesh: private: network key ${Buffer.from(cfg.network.key).toString('base64')}: only nodes with a membership certificate it signed are admitted, and it certifies namespace signers\n`)
    if (cfg.network.key !== undefined && cfg.network.certificate === '') warn('network.certificate: not set, so the daemon will not start: a private mesh admits only certified nodes (dm network admit)')
    return fatal ? 1 : 0
  }
}
