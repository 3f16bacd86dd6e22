/**
 * Run inside a rig host: the active node's presence on the LAN
 * (bridge/io/presence.ts) answering for VIP4 and VIP6 on DEV with MAC, for
 * MS milliseconds; prints its counters as JSON at the end.
 *
 *   node presence.js DEV VIP4 VIP6 MAC MS
 */
import { LanPresence } from '../../bridge/io/presence.js';
import { ipAddr, ipv4, mac } from '../../net/addr.js';

const [dev, vip4, vip6, own, ms] = process.argv.slice(2);
if (!dev || !vip4 || !vip6 || !own || !ms) {
  console.error('usage: presence DEV VIP4 VIP6 MAC MS');
  process.exit(2);
}
const p = new LanPresence(dev, { v4: ipv4(vip4), v6: ipAddr(vip6) as string }, mac(own), 60_000, 'presence');
p.answer(true);
p.arm();
process.stdout.write('ready\n');
await new Promise((r) => setTimeout(r, Number(ms)));
process.stdout.write(JSON.stringify(p.stats) + '\n');
p.close();
