/** A difference as the reports print it: "+12", "-3", "+0". */
export const signed = (x: number): string => (x >= 0 ? `+${x}` : `${x}`);
