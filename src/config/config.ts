/**
 * The one configuration type. Field names carry their units. Each default is a
 * named constant with the reason for its value; config.example.toml documents
 * the TOML spelling of every field.
 */
import { LAN_PROFILE, type ProfileName, type Tuning } from './tuning.js'

/** Where the upstream tool keeps its config; every command defaults to it. */
export const DEFAULT_CONFIG_PATH = '/etc/data-mesher/dm.toml'
export const DEFAULT_STATE_DIR = '/var/lib/data-mesher'
export const DEFAULT_API_SOCKET = '/run/data-mesher/api.sock'
/** 7946 is the port memberlist and upstream data-mesher use. */
export const DEFAULT_LISTEN = ['/ip4/0.0.0.0/tcp/7946']
/** How far ahead of the local clock a timestamp may be before it is refused for now. */
export const DEFAULT_MAX_CLOCK_SKEW_MS = 10 * 60 * 1000

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
/**
 * `json`: one JSON object per line on stdout (journald keeps them).
 * `pretty`: human lines. `auto`: pretty when stdout is a terminal, else json.
 */
export type LogFormat = 'json' | 'pretty' | 'auto'
export const LOG_FORMATS: readonly LogFormat[] = ['json', 'pretty', 'auto']

export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

export interface NetworkConfig {
  /** Names the mesh; its SHA-256 is signed into every version, so signatures cannot cross meshes. */
  id: string
  /** Multiaddrs to listen on. */
  listen: string[]
  /** Multiaddrs ending in /p2p/<peer id>, dialled at start and whenever no peer is connected. */
  bootstrap: string[]
  /** Discover peers on the LAN with mDNS. Off: most fleets span networks, and it announces the node. */
  mdns: boolean
  /** The tuning profile the knobs start from (src/config/tuning.ts); `lan` unless testing on one machine. */
  profile: ProfileName
  /**
   * The network key's raw public half ([network] key): it certifies members and
   * namespace signers. Undefined: an open mesh, as before certificates.
   */
  key?: Uint8Array
  /** This node's membership certificate (dm network admit); empty for none. */
  certificate: string
}

export interface ApiConfig {
  /** Unix socket of the local API; created mode 0660 in a directory the daemon owns. */
  socket: string
}

export interface MetricsConfig {
  /** host:port of the Prometheus endpoint; empty for off. Only loopback hosts are accepted. */
  listen: string
}

/** How long a hook may run before it is stopped (SIGTERM, then SIGKILL after 5 s). */
export const DEFAULT_HOOK_TIMEOUT_MS = 60_000

/**
 * A command run after each accepted version of a name (or of every name under
 * a prefix), as Serf's event handlers: no shell, the version in environment
 * variables, one run at a time per name.
 */
export interface HookConfig {
  /** Exactly one of name and prefix. */
  name: string | undefined
  prefix: string | undefined
  /** The program (absolute path) and its arguments. */
  exec: string[]
  timeoutMs: number
}

export interface Config {
  /** Holds identity.key, files/, versions/ and staging/. */
  stateDir: string
  logLevel: LogLevel
  /** Versions dated further ahead than this are refused until the clock catches up. */
  maxClockSkewMs: number
  network: NetworkConfig
  api: ApiConfig
  metrics: MetricsConfig
  /** The allowlist: file name to its signers' raw 32-byte public keys. */
  files: Map<string, Uint8Array[]>
  /** Declared namespaces ([namespaces]): prefix to issuer keys trusted besides the network key. */
  namespaces: Map<string, Uint8Array[]>
  /** Every knob of the sync core and the mesh: the profile with the TOML overrides applied. */
  tuning: Tuning
  /** Commands run after accepted versions ([[hooks]]). */
  hooks: HookConfig[]
}

export function defaultConfig (): Config {
  return {
    stateDir: DEFAULT_STATE_DIR,
    logLevel: 'info',
    maxClockSkewMs: DEFAULT_MAX_CLOCK_SKEW_MS,
    network: {
      id: 'data-mesher',
      listen: [...DEFAULT_LISTEN],
      bootstrap: [],
      mdns: false,
      profile: 'lan',
      certificate: ''
    },
    api: { socket: DEFAULT_API_SOCKET },
    metrics: { listen: '' },
    files: new Map(),
    namespaces: new Map(),
    tuning: { ...LAN_PROFILE },
    hooks: []
  }
}
