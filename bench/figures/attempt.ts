/**
 * One measurement step of a report: a failure is noted in `errors` (the
 * report lists the steps that did not complete) and gives `fallback`, so the
 * rest of the run goes on.
 */
export function attemptInto(errors: string[]) {
  return async <T>(what: string, f: () => Promise<T>, fallback: T): Promise<T> => {
    try {
      return await f();
    } catch (e) {
      errors.push(`${what}: ${(e as Error).message.split('\n').slice(-3).join(' ').slice(0, 300)}`);
      return fallback;
    }
  };
}
