/** systemd notifications (Type=notify units): a no-op where systemd did not ask for them. */
import { native } from './native.js';

export function sdNotify(message: string): boolean {
  if (!process.env.NOTIFY_SOCKET) return false;
  try {
    return native().sdNotify(message);
  } catch {
    return false;
  }
}

/** The addon's part for systemd (native/systemd.cc). */
export interface SystemdNative {
  sdNotify(message: string): boolean;
}
