import { execFile } from 'node:child_process'

/*
 * systemd readiness (Type=notify). Node cannot send on a Unix datagram socket,
 * so this runs systemd-notify, which since systemd 246 waits for the manager to
 * process the message (sd_notify_barrier), so the unit needs NotifyAccess=all.
 * Outside systemd (no NOTIFY_SOCKET) it does nothing.
 */
export async function notifySystemd (...assignments: string[]): Promise<void> {
  if (process.env.NOTIFY_SOCKET === undefined) return
  await new Promise<void>((resolve, reject) => {
    execFile('systemd-notify', assignments, { timeout: 5000 }, err => err === null ? resolve() : reject(err))
  })
}
