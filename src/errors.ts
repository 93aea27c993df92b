/**
 * Every failure the project reports has a stable code. Code and tests match on
 * `code`, never on message text; the CLI maps codes to exit statuses.
 */
export type ErrorCode =
  // config
  | 'ERR_CONFIG'
  // keys
  | 'ERR_KEY'
  // names
  | 'ERR_NAME_INVALID'
  // envelope / wire decoding
  | 'ERR_DECODE'
  // a peer or a stream too slow: honest peers hit it too, so it is not logged like an attack
  | 'ERR_TIMEOUT'
  // content relayed onward before its commit: the transfer to us failed midway, the downstream fetches again elsewhere
  | 'ERR_UPSTREAM_FAILED'
  // a bounded queue is full: the work is dropped, and the next anti-entropy round asks again
  | 'ERR_BUSY'
  // acceptance policy (see src/policy/accept.ts)
  | 'ERR_NAME_NOT_ALLOWED'
  | 'ERR_SIGNER_NOT_ALLOWED'
  | 'ERR_BAD_SIGNATURE'
  | 'ERR_WRONG_NETWORK'
  | 'ERR_TOO_LARGE'
  | 'ERR_CONTENT_MISMATCH'
  | 'ERR_STALE'
  | 'ERR_ALREADY_HELD'
  | 'ERR_FUTURE_TIMESTAMP'
  | 'ERR_EXPIRED'
  // certificates and signed namespaces (src/format/certificate.ts, docs/PROTOCOL.md section 11)
  /** a name under a declared namespace came with no certificate for its signer */
  | 'ERR_CERT_MISSING'
  /** a certificate that does not decode, is for another key or purpose, or is not signed by a trusted issuer */
  | 'ERR_CERT_INVALID'
  /** a genuine certificate whose window does not contain the instant checked */
  | 'ERR_CERT_EXPIRED'
  /** a genuine namespace certificate for another namespace */
  | 'ERR_CERT_WRONG_NAMESPACE'
  /** a peer without a valid membership certificate on a private mesh (src/net/admission.ts) */
  | 'ERR_NOT_ADMITTED'
  /** a signer key or node identity listed in the network's revocation list (src/policy/revocation.ts) */
  | 'ERR_REVOKED'
  /** dm fleet / dm wait on a mesh without [network] key: there are no node reports to build a view from */
  | 'ERR_OPEN_MESH'
  // store
  | 'ERR_STORE_IO'
  /** state_dir or one of its directories is a symlink, writable by others, or owned by another user */
  | 'ERR_STATE_DIR_UNSAFE'
  /** state_dir's directories are not all on one filesystem, so renames between them would fail */
  | 'ERR_STATE_DIR_CROSS_DEVICE'
  /** another daemon holds the state directory's lock */
  | 'ERR_STATE_DIR_LOCKED'
  /** a name needs a path that a file or directory left by an older allowlist occupies */
  | 'ERR_NAME_COLLISION'
  // network
  | 'ERR_LISTEN'
  // local API
  | 'ERR_DAEMON_UNREACHABLE'
  | 'ERR_API'
  /** The API is at its connection or upload-byte cap (HTTP 503); try again. */
  | 'ERR_API_BUSY'
  /** A socket, or its directory, that others could have planted or could swap. */
  | 'ERR_SOCKET_UNSAFE'
  /** Something else already occupies the API socket path. */
  | 'ERR_SOCKET_IN_USE'
  /** The daemon holds no such name (or no content for it). */
  | 'ERR_NOT_FOUND'
  /** The OS refused access to a path the config names; the message names the key. */
  | 'ERR_PERMISSION'
  | 'ERR_USAGE'

export class DmError extends Error {
  readonly code: ErrorCode
  constructor (code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = 'DmError'
  }
}

/** A short, single-line description of any thrown value. */
export function describeError (err: unknown): string {
  if (err instanceof Error) return err.message
  return String(err)
}
