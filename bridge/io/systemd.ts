/** systemd notifications (Type=notify units): a no-op where systemd did not ask for them. */
import { load } from './nfqueue.js';

export function sdNotify(message: string): boolean {
  if (!process.env.NOTIFY_SOCKET) return false;
  try {
    return (load() as unknown as { sdNotify(m: string): boolean }).sdNotify(message);
  } catch {
    return false;
  }
}
