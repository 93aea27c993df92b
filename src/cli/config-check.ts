import { checkAddresses, loadConfig } from '../config/load.js'
import { configOption, str, type Command } from './command.js'

export const configCheck: Command = {
  summary: 'validate a config file',
  usage: 'dm config check [--config PATH]',
  details: 'Prints one line per mistake, naming the key, and exits 1 if there is any.',
  options: configOption,
  positionals: { min: 0, max: 0 },
  async run (args) {
    const path = str(args, 'config') as string
    const cfg = loadConfig(path)
    await checkAddresses(cfg, path)
    process.stdout.write(`${path}: OK (network "${cfg.network.id}", ${cfg.files.size} file name${cfg.files.size === 1 ? '' : 's'} allowed)\n`)
    return 0
  }
}
