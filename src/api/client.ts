import http from 'node:http'
import { DmError } from '../errors.js'

/** Calls the local API; maps "no daemon" and "no permission" to clear errors. */
export async function apiRequest<T> (socketPath: string, method: 'GET' | 'POST', path: string, body?: Uint8Array): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const req = http.request({ socketPath, method, path, headers: body !== undefined ? { 'content-type': 'application/octet-stream', 'content-length': body.length } : {} }, res => {
      const parts: Buffer[] = []
      res.on('data', (c: Buffer) => parts.push(c))
      res.on('end', () => {
        let json: unknown
        try {
          json = JSON.parse(Buffer.concat(parts).toString('utf8'))
        } catch {
          reject(new DmError('ERR_API', `daemon sent a malformed answer (HTTP ${res.statusCode ?? '?'})`))
          return
        }
        const err = json as { ok?: boolean, code?: string, reason?: string }
        if ((res.statusCode ?? 500) >= 400 || err.ok === false) {
          reject(new DmError((err.code ?? 'ERR_API') as DmError['code'], err.reason ?? `HTTP ${res.statusCode ?? '?'}`))
        } else {
          resolve(json as T)
        }
      })
      res.on('error', reject)
    })
    req.setTimeout(120_000, () => req.destroy(new Error('the daemon did not answer within 120 s')))
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') {
        reject(new DmError('ERR_DAEMON_UNREACHABLE', `no daemon is running (nothing listens on ${socketPath}); start it with dm daemon`))
      } else if (err.code === 'EACCES') {
        reject(new DmError('ERR_DAEMON_UNREACHABLE', `permission denied on ${socketPath}; run as the daemon's user or a member of its group`))
      } else {
        reject(new DmError('ERR_DAEMON_UNREACHABLE', `cannot reach the daemon at ${socketPath}: ${err.message}`))
      }
    })
    req.end(body)
  })
}
