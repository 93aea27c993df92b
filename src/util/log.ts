/** The logging surface components need; a pino logger satisfies it. */
export interface Log {
  error: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
  info: (obj: object, msg: string) => void
  debug: (obj: object, msg: string) => void
}

export const silentLog: Log = { error () {}, warn () {}, info () {}, debug () {} }
