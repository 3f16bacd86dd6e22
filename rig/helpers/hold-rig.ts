/** Run by the rig tests: creates a rig with a process in it, prints its id, and waits to be signalled. */
import { Rig } from '../rig.js';

const rig = await Rig.create();
rig.host('primary').spawn(['sleep', '600']);
process.stdout.write(`${rig.id} ${rig.tmpdir}\n`);
setInterval(() => {}, 1 << 30);
