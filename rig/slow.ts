/**
 * How much slower than this machine the rig runs: TCPFO_RIG_TIME_SCALE (≥ 1,
 * default 1). scripts/kernel-vm.sh sets it under emulation, where every
 * process start and packet costs ten times more; the rig's waits for a
 * bridge, a capture or a server to come up are multiplied by it. What a
 * test asserts about time is not.
 */
export const TIME_SCALE = ((): number => {
  const v = Number(process.env.TCPFO_RIG_TIME_SCALE ?? '1');
  return Number.isFinite(v) && v >= 1 ? v : 1;
})();

/** `ms` of this machine's time, scaled for the machine the rig runs on. */
export function slow(ms: number): number {
  return Math.round(ms * TIME_SCALE);
}
