import type { RequestBody } from '../api/client.js'
import { apiRequest } from '../api/client.js'
import type { Config } from '../config/config.js'
import { loadConfig } from '../config/load.js'
import type { ParsedArgs } from './command.js'
import { str } from './command.js'

/* What every client verb shares: the config it names, and requests to the daemon's API socket. */

export function config (args: ParsedArgs): Config {
  return loadConfig(str(args, 'config') as string)
}

export async function get<T> (cfg: Config, route: string): Promise<T> {
  return await apiRequest<T>(cfg.api.socket, 'GET', route, undefined, { stateDir: cfg.stateDir })
}

export async function post (cfg: Config, body: RequestBody): Promise<void> {
  await apiRequest(cfg.api.socket, 'POST', '/v1/versions', body, { stateDir: cfg.stateDir })
}
